import Foundation
import TernCore

/// Enqueues typed jobs and reads their state and results: the Swift client of Tern.
///
/// ```swift
/// let tern = TernClient(broker: broker)
/// let handle = try await tern.enqueue(Resize.self, Resize.Input(url: "https://x/y.png", width: 100))
/// let output = try await handle.result(timeout: .seconds(30))  // a Resize.Output
/// ```
public struct TernClient: Sendable {
    /// The broker jobs go through.
    public let broker: any JobBroker
    /// The enqueue middleware every job goes through (``Middleware/enqueue``).
    public let middleware: Middleware

    /// Creates a client on `broker`, whose enqueues run `middleware`'s enqueue middleware.
    public init(broker: any JobBroker, middleware: Middleware = Middleware()) {
        self.broker = broker
        self.middleware = middleware
    }

    /// Runs the enqueue middleware on `request` and checks its headers (``JobHeaders``).
    /// - Throws: what a middleware throws; ``TernClientError/invalidOption(_:)`` for headers
    ///   beyond their limits.
    public func prepare(_ request: inout EnqueueRequest) async throws {
        if !middleware.enqueue.isEmpty {
            var job = OutgoingJob(task: request.task, queue: request.queue, input: request.input, headers: request.headers)
            try await middleware.prepare(&job)
            request.headers = job.headers
        }
        if let problem = JobHeaders.problem(request.headers) { throw TernClientError.invalidOption(problem) }
    }

    /// Per-job overrides of a task's options.
    public struct JobOptions: Sendable {
        public var queue: QueueName?
        public var priority: Int?
        public var maxAttempts: Int?
        public var timing: EnqueueRequest.Timing = .now
        public var expiresAfter: Duration?
        /// Enqueues with the same key map to one job for ``idempotencyTTL``.
        public var idempotencyKey: String?
        public var idempotencyTTL: Duration = .seconds(86_400)
        /// Overrides the task's ``TaskOptions/unique`` for this job.
        public var unique: UniquePolicy?
        /// The job's unique key, given by the caller instead of built from the input (1 to 255
        /// bytes), held under the task's unique rule, else ``UniquePolicy/Mode/whileActive``.
        public var uniqueKey: String?
        /// Jobs that must finish before this one runs (see ``JobDependencies``): it waits
        /// (``JobState/waiting``) until they succeeded, with the input given here; if one fails,
        /// it is cancelled, unless ``runIfDependencyFails``. At most 10,000.
        public var dependsOn: [JobID] = []
        /// Run once the ``dependsOn`` jobs finished, however they did (default `false`).
        public var runIfDependencyFails = false
        /// The job's headers (``JobHeaders``); enqueue middleware may add more.
        public var headers: [String: String] = [:]
        /// The job's limit key (1 to 128 bytes, no control characters), instead of the one the
        /// task's limit builds from the input (see ``JobLimit``).
        public var limitKey: String?

        public init(
            queue: QueueName? = nil, priority: Int? = nil, maxAttempts: Int? = nil, timing: EnqueueRequest.Timing = .now,
            expiresAfter: Duration? = nil, idempotencyKey: String? = nil, unique: UniquePolicy? = nil, uniqueKey: String? = nil
        ) {
            self.unique = unique
            self.uniqueKey = uniqueKey
            self.queue = queue
            self.priority = priority
            self.maxAttempts = maxAttempts
            self.timing = timing
            self.expiresAfter = expiresAfter
            self.idempotencyKey = idempotencyKey
        }
    }

    /// Builds the broker request for one typed job.
    public static func request<T: TernTask>(
        _ task: T.Type, _ input: T.Input, options: JobOptions = JobOptions()
    ) throws -> EnqueueRequest {
        try request(task, encoded: try TaskCodec.encoder.encode(input), options: options)
    }

    /// Builds the broker request for one job of `T` whose input is JSON already.
    static func request<T: TernTask>(_ task: T.Type, encoded input: Data, options: JobOptions) throws -> EnqueueRequest {
        var taskOptions = T.options
        if let queue = options.queue { taskOptions.queue = queue }
        if let priority = options.priority { taskOptions.priority = priority }
        if let maxAttempts = options.maxAttempts { taskOptions.maxAttempts = maxAttempts }
        if let expiresAfter = options.expiresAfter { taskOptions.expiresAfter = expiresAfter }
        guard (0...9).contains(taskOptions.priority) else { throw TernClientError.invalidOption("priority must be 0...9") }
        guard taskOptions.maxAttempts >= 1 else { throw TernClientError.invalidOption("maxAttempts must be at least 1") }
        guard taskOptions.resultRetention >= .milliseconds(1), options.idempotencyTTL >= .milliseconds(1),
            taskOptions.failedRetention.map({ $0 >= .milliseconds(1) }) ?? true
        else {
            throw TernClientError.invalidOption("result retention, failed retention and idempotency TTL must be at least 1 ms")
        }
        if let expiresAfter = taskOptions.expiresAfter, expiresAfter < .zero {
            throw TernClientError.invalidOption("expiresAfter must not be negative")
        }
        if let unique = options.unique { taskOptions.unique = unique }
        if let problem = taskOptions.unique?.problem { throw TernClientError.invalidOption(problem) }
        var request = EnqueueRequest(
            task: T.name, input: input, options: taskOptions, timing: options.timing,
            idempotencyKey: options.idempotencyKey, idempotencyTTL: options.idempotencyTTL)
        request.headers = options.headers
        if let key = options.limitKey {
            guard JobLimit.isValidKey(key) else {
                throw TernClientError.invalidOption("limitKey must be 1 to \(JobLimit.maxKeyBytes) bytes without control characters")
            }
            request.limitKey = key
        }
        if let key = options.uniqueKey {
            guard (1...255).contains(key.utf8.count) else { throw TernClientError.invalidOption("uniqueKey must be 1 to 255 bytes") }
            request.unique = UniqueLock(key: UniquePolicy.key(task: T.name, explicit: key), mode: taskOptions.unique?.mode ?? .whileActive)
        }
        if !options.dependsOn.isEmpty {
            guard options.idempotencyKey == nil, options.uniqueKey == nil, options.unique == nil, options.timing == .now,
                options.expiresAfter == nil
            else {
                throw TernClientError.invalidOption("a job with dependsOn takes no idempotency key, unique key, timing or expiresAfter")
            }
            guard options.dependsOn.count <= JobDependencies.maxParents else {
                throw TernClientError.invalidOption("dependsOn names at most \(JobDependencies.maxParents) jobs")
            }
            request.dependencies = JobDependencies(parents: options.dependsOn, onFailure: options.runIfDependencyFails ? .run : .cancel)
        }
        return request
    }

    /// Enqueues one job of task `T`. With an idempotency key that already holds a job made by the
    /// same request, or a unique key that is held (``UniquePolicy``), returns that job's handle:
    /// its ``JobHandle/receipt`` tells which.
    /// - Throws: ``TernClientError/queueFull(_:)`` if its queue is at its cap;
    ///   ``TernClientError/idempotencyKeyReused(_:_:)`` if the key holds a job of another request.
    public func enqueue<T: TernTask>(
        _ task: T.Type, _ input: T.Input, options: JobOptions = JobOptions()
    ) async throws -> JobHandle<T> {
        var request = try Self.request(task, input, options: options)
        try await prepare(&request)
        let receipt = try await broker.enqueue([request])[0]
        if receipt.refused { throw TernClientError.queueFull(request.queue) }
        if receipt.keyReused { throw TernClientError.idempotencyKeyReused(options.idempotencyKey ?? "", receipt.id) }
        return JobHandle(id: receipt.id, broker: broker, receipt: receipt)
    }

    /// Enqueues many jobs of task `T` in one round trip per queue. One idempotency key in
    /// `options` covers all of them as one key would one job: the first input makes the job and the
    /// rest are reported as ``TernClientError/idempotencyKeyReused(_:_:)`` unless they are equal
    /// to it, so give a batch a key only with one input.
    /// - Throws: ``TernClientError/queueFull(_:)`` if a queue is at its cap (the jobs before the
    ///   first refused one were created); ``TernClientError/idempotencyKeyReused(_:_:)``.
    public func enqueueBatch<T: TernTask>(
        _ task: T.Type, _ inputs: [T.Input], options: JobOptions = JobOptions()
    ) async throws -> [JobHandle<T>] {
        var requests = try inputs.map { try Self.request(task, $0, options: options) }
        for index in requests.indices { try await prepare(&requests[index]) }
        let receipts = try await broker.enqueue(requests)
        // The jobs before the refused ones were created; a caller retrying the rest should resend
        // from the first refused one (idempotency keys make resending the whole batch safe).
        if let refused = receipts.firstIndex(where: \.refused) { throw TernClientError.queueFull(requests[refused].queue) }
        if let reused = receipts.first(where: \.keyReused) {
            throw TernClientError.idempotencyKeyReused(options.idempotencyKey ?? "", reused.id)
        }
        return receipts.map { JobHandle(id: $0.id, broker: broker, receipt: $0) }
    }

    /// A handle for an existing job of task `T`.
    public func handle<T: TernTask>(_ task: T.Type, id: JobID) -> JobHandle<T> {
        JobHandle(id: id, broker: broker)
    }
}


/// A job of task `T`: its state, its typed result, cancellation.
public struct JobHandle<T: TernTask>: Sendable {
    /// The job's id.
    public let id: JobID
    let broker: any JobBroker
    /// What the enqueue that returned this handle did (created the job, or found it by its
    /// idempotency or unique key); `nil` for a handle made with ``TernClient/handle(_:id:)``.
    public var receipt: EnqueueReceipt?

    init(id: JobID, broker: any JobBroker, receipt: EnqueueReceipt? = nil) {
        (self.id, self.broker, self.receipt) = (id, broker, receipt)
    }

    /// The job's record.
    /// - Throws: ``TernClientError/notFound(_:)`` if the job does not exist (or was removed after
    ///   its retention).
    public func status() async throws -> JobRecord {
        guard let record = try await broker.job(id) else { throw TernClientError.notFound(id) }
        return record
    }

    /// Waits until the job finishes and returns its typed output.
    /// - Throws: ``TernClientError/failed(_:_:)``, ``TernClientError/cancelled(_:)``,
    ///   ``TernClientError/expired(_:)``, or ``TernClientError/timedOut(_:)`` after `timeout`.
    public func result(timeout: Duration = .seconds(60), pollInterval: Duration = .milliseconds(20)) async throws -> T.Output {
        let deadline = ContinuousClock.now + timeout
        while true {
            let record = try await status()
            switch record.state {
            case .succeeded:
                return try TaskCodec.decoder.decode(T.Output.self, from: record.result ?? Data("null".utf8))
            case .failed: throw TernClientError.failed(id, record.error ?? "failed")
            case .cancelled: throw TernClientError.cancelled(id)
            case .expired: throw TernClientError.expired(id)
            case .scheduled, .queued, .running, .retrying, .waiting:
                guard ContinuousClock.now < deadline else { throw TernClientError.timedOut(id) }
                try await Task.sleep(for: pollInterval)
            }
        }
    }

    /// Cancels the job; a running job is stopped by its worker within about a heartbeat.
    /// - Returns: the state after the call.
    @discardableResult
    public func cancel() async throws -> JobState {
        guard let state = try await broker.cancel(id) else { throw TernClientError.notFound(id) }
        return state
    }
}

/// Errors of ``TernClient`` and ``JobHandle``.
public enum TernClientError: Error, Sendable, Hashable, CustomStringConvertible {
    case notFound(JobID)
    case failed(JobID, String)
    case cancelled(JobID)
    case expired(JobID)
    case timedOut(JobID)
    case invalidOption(String)
    /// The queue is at its cap on waiting jobs (``QueueCaps``); try again once workers drained it.
    case queueFull(QueueName)
    /// The idempotency key already holds this job, made by a different request (another task,
    /// queue, input or options): nothing was enqueued. Use a new key for a new job.
    case idempotencyKeyReused(String, JobID)
    /// An idempotency key names a workflow whose submission stopped part way (the process died
    /// or Redis failed): only some of its jobs exist, the first named here. Cancel them
    /// (``TernClient/submit(_:)`` made no final job) and submit again with a new key.
    case workflowIncomplete(JobID)

    public var description: String {
        switch self {
        case .notFound(let id): "job \(id) not found"
        case .failed(let id, let message): "job \(id) failed: \(message)"
        case .cancelled(let id): "job \(id) was cancelled"
        case .expired(let id): "job \(id) expired before it started"
        case .timedOut(let id): "job \(id) did not finish in time"
        case .invalidOption(let text): "invalid job option: \(text)"
        case .queueFull(let queue): "queue \(queue) is full: it is at its cap on waiting jobs"
        case .idempotencyKeyReused(let key, let id): "idempotency key '\(key)' already holds job \(id), made by a different request"
        case .workflowIncomplete(let id): "the idempotency key names a workflow made only in part (its first job is \(id)): cancel it and use a new key"
        }
    }
}
