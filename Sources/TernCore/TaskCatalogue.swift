import Foundation

/// A task as a worker publishes it, so that an API without the task's code can accept its jobs:
/// the options jobs are enqueued with and the JSON Schemas of its input and output.
public struct PublishedTask: Sendable, Hashable, Codable {
    public var name: String
    public var queue: QueueName
    public var priority: Int
    public var maxAttempts: Int
    public var softTimeLimitMilliseconds: Int64?
    public var hardTimeLimitMilliseconds: Int64?
    public var isolated: Bool
    public var resultRetentionMilliseconds: Int64
    /// `nil` when the task leaves it to the deployment (and in catalogues of older workers).
    public var failedRetentionMilliseconds: Int64?
    public var expiresAfterMilliseconds: Int64?
    /// The task's ``UniquePolicy``; `nil` for none (and in catalogues of older workers).
    public var unique: PublishedUnique?
    /// The task's ``JobLimit``; `nil` for none (and in catalogues of older workers).
    public var limit: PublishedLimit?
    public var inputSchema: JSONValue
    public var outputSchema: JSONValue

    enum CodingKeys: String, CodingKey {
        case name, queue, priority, isolated
        case maxAttempts = "max_attempts"
        case softTimeLimitMilliseconds = "soft_time_limit_ms"
        case hardTimeLimitMilliseconds = "hard_time_limit_ms"
        case resultRetentionMilliseconds = "result_retention_ms"
        case failedRetentionMilliseconds = "failed_retention_ms"
        case expiresAfterMilliseconds = "expires_after_ms"
        case unique, limit
        case inputSchema = "input_schema"
        case outputSchema = "output_schema"
    }

    /// The published form of a registered task.
    public init(_ entry: TaskRegistry.Entry) {
        let options = entry.options
        name = entry.name
        queue = options.queue
        priority = options.priority
        maxAttempts = options.maxAttempts
        softTimeLimitMilliseconds = options.softTimeLimit.map(Self.milliseconds)
        hardTimeLimitMilliseconds = options.hardTimeLimit.map(Self.milliseconds)
        isolated = options.isolated
        resultRetentionMilliseconds = Self.milliseconds(options.resultRetention)
        failedRetentionMilliseconds = options.failedRetention.map(Self.milliseconds)
        expiresAfterMilliseconds = options.expiresAfter.map(Self.milliseconds)
        unique = options.unique.map(PublishedUnique.init)
        limit = options.limit.map(PublishedLimit.init)
        inputSchema = entry.inputSchema
        outputSchema = entry.outputSchema
    }

    /// The options an API enqueues this task's jobs with (the retry backoff is the worker's
    /// business and is not published).
    public var options: TaskOptions {
        TaskOptions(
            queue: queue, priority: priority, maxAttempts: maxAttempts,
            softTimeLimit: softTimeLimitMilliseconds.map { .milliseconds($0) },
            resultRetention: .milliseconds(resultRetentionMilliseconds),
            expiresAfter: expiresAfterMilliseconds.map { .milliseconds($0) },
            hardTimeLimit: hardTimeLimitMilliseconds.map { .milliseconds($0) }, isolated: isolated,
            failedRetention: failedRetentionMilliseconds.map { .milliseconds($0) }, unique: unique?.policy,
            limit: limit?.limit)
    }

    private static func milliseconds(_ duration: Duration) -> Int64 { duration.nanoseconds / 1_000_000 }
}

/// A ``JobLimit`` as a catalogue publishes it: `{"rate": {"count": 10, "per_ms": 1000}, "burst": 1,
/// "concurrency": 3, "key_fields": ["customer_id"]}`.
public struct PublishedLimit: Sendable, Hashable, Codable {
    public struct Rate: Sendable, Hashable, Codable {
        public var count: Int
        public var perMilliseconds: Int64

        enum CodingKeys: String, CodingKey {
            case count
            case perMilliseconds = "per_ms"
        }
    }

    public var rate: Rate?
    public var burst: Int
    public var concurrency: Int?
    public var keyFields: [String]

    enum CodingKeys: String, CodingKey {
        case rate, burst, concurrency
        case keyFields = "key_fields"
    }

    /// The published form of `limit`.
    public init(_ limit: JobLimit) {
        rate = limit.rate.map { Rate(count: $0.count, perMilliseconds: $0.period.nanoseconds / 1_000_000) }
        burst = limit.burst
        concurrency = limit.concurrency
        keyFields = limit.keyFields
    }

    /// The limit.
    public var limit: JobLimit {
        JobLimit(
            rate: rate.map { JobLimit.Rate(count: $0.count, period: .milliseconds($0.perMilliseconds)) }, burst: burst,
            concurrency: concurrency, keyFields: keyFields)
    }
}

/// A ``UniquePolicy`` as a catalogue publishes it: `{"mode": "until", "window_ms": 60000,
/// "key_fields": ["customer_id"]}`.
public struct PublishedUnique: Sendable, Hashable, Codable {
    /// `while_active`, `until` or `debounce`.
    public var mode: String
    /// The window of `until` and `debounce`, in milliseconds.
    public var windowMilliseconds: Int64?
    public var keyFields: [String]

    enum CodingKeys: String, CodingKey {
        case mode
        case windowMilliseconds = "window_ms"
        case keyFields = "key_fields"
    }

    /// The published form of `policy`.
    public init(_ policy: UniquePolicy) {
        mode = policy.mode.name
        windowMilliseconds = policy.mode.windowMilliseconds
        keyFields = policy.keyFields
    }

    /// The policy; `nil` for a mode this build does not know.
    public var policy: UniquePolicy? {
        UniquePolicy.Mode(name: mode, windowMilliseconds: windowMilliseconds).map { UniquePolicy($0, keyFields: keyFields) }
    }
}

/// Every task a worker runs, as it publishes them in Redis when it starts: how the plain `tern api`
/// learns an application's tasks without their code. Identified by ``version``, a hash of its
/// contents, so workers of one build share one stored catalogue.
public struct TaskCatalogue: Sendable, Hashable, Codable {
    /// The tasks, by name.
    public var tasks: [PublishedTask]
    /// The first 16 hex digits of the SHA-256 of ``tasks`` as JSON with sorted keys.
    public var version: String

    /// The catalogue of `registry`'s tasks.
    public init(_ registry: TaskRegistry) {
        tasks = registry.names.compactMap { registry[$0].map(PublishedTask.init) }
        version = Self.version(of: tasks)
    }

    /// The version `tasks` would have.
    public static func version(of tasks: [PublishedTask]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = (try? encoder.encode(tasks)) ?? Data()
        return String(SHA256.digest(bytes).map { String(format: "%02x", $0) }.joined().prefix(16))
    }
}

extension TaskRegistry {
    /// Adds `task`, published by a worker elsewhere, unless a task of that name is registered here:
    /// the compiled Swift type wins. Its input is then validated against the published schema
    /// (``SchemaValidator``); it cannot run in this process. Returns whether it was added.
    @discardableResult
    public mutating func add(published task: PublishedTask) -> Bool {
        guard self[task.name] == nil, Self.isValidName(task.name) else { return false }
        let schema = task.inputSchema
        insert(
            Entry(
                name: task.name, options: task.options, inputSchema: task.inputSchema, outputSchema: task.outputSchema,
                validate: { input in
                    try SchemaValidator.validate(try TaskCodec.decoder.decode(JSONValue.self, from: input), against: schema)
                },
                run: { _, _ in throw PermanentError("task '\(task.name)' is only published here: no code in this process runs it") },
                isPermanent: { _ in true }, retryDelay: { _, _ in .zero }, isPublished: true))
        return true
    }
}
