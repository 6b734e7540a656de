import Foundation

/// A rate and/or concurrency limit on jobs, enforced across every worker of the fleet
/// (docs/limits.md): at most `rate.count` jobs start per `rate.period` (GCRA, with `burst` allowed
/// at once), and at most `concurrency` run at once. A job over its limit is not failed and uses no
/// attempt: it stays `queued`, held back, and starts as soon as the limit allows, while other jobs
/// of its queue run.
///
/// ```swift
/// static let options = TaskOptions(limit: .rate(100, per: .seconds(60)).concurrency(5))
/// static let options = TaskOptions(limit: .rate(10, per: .seconds(1)).keyed(by: "customer_id"))  // each customer
/// ```
public struct JobLimit: Sendable, Hashable {
    /// How many jobs may start per period.
    public struct Rate: Sendable, Hashable {
        public var count: Int
        public var period: Duration

        public init(count: Int, period: Duration) {
            (self.count, self.period) = (count, period)
        }

        /// A rate written `<count>/<period>`: `10/s`, `100/min`, `5/2h`, `3/1500ms`, or a number
        /// of seconds (`7/30`); `nil` for other text.
        public init?(text: String) {
            let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2, let count = Int(parts[0]), count > 0 else { return nil }
            var period = parts[1]
            var unit = 1_000.0
            for (suffix, scale) in [("ms", 1.0), ("min", 60_000), ("s", 1_000), ("h", 3_600_000)] where period.hasSuffix(suffix) {
                period = String(period.dropLast(suffix.count))
                unit = scale
                break
            }
            let amount = period.isEmpty ? 1 : Double(period)
            guard let amount, amount > 0, amount.isFinite, amount * unit >= 1 else { return nil }
            self.init(count: count, period: .milliseconds(Int64((amount * unit).rounded())))
        }
    }

    /// The start rate; `nil` for none.
    public var rate: Rate?
    /// How many jobs may start at once before the rate spaces them (default 1: evenly spaced); 1
    /// to ``maxCount``, and it may exceed the rate's count.
    public var burst: Int
    /// The most jobs running at once; `nil` for none.
    public var concurrency: Int?
    /// For a task's limit: the input's top-level members whose values make the limit key, so
    /// that each key (each customer, each host) has a limit of its own; empty for one limit for
    /// all the task's jobs.
    public var keyFields: [String]

    /// Creates a limit; see also ``rate(_:per:burst:)`` and ``concurrency(_:)``.
    public init(rate: Rate? = nil, burst: Int = 1, concurrency: Int? = nil, keyFields: [String] = []) {
        (self.rate, self.burst, self.concurrency, self.keyFields) = (rate, burst, concurrency, keyFields)
    }

    /// At most `count` starts per `period`, `burst` of them at once.
    public static func rate(_ count: Int, per period: Duration, burst: Int = 1) -> JobLimit {
        JobLimit(rate: Rate(count: count, period: period), burst: burst)
    }

    /// At most `count` jobs running at once.
    public static func concurrency(_ count: Int) -> JobLimit { JobLimit(concurrency: count) }

    /// This limit with at most `count` jobs running at once too.
    public func concurrency(_ count: Int) -> JobLimit {
        var limit = self
        limit.concurrency = count
        return limit
    }

    /// This limit applied to each limit key made of the input members `fields`.
    public func keyed(by fields: String...) -> JobLimit {
        var limit = self
        limit.keyFields = fields
        return limit
    }

    /// The most jobs per period, the longest period, and the most running at once a limit takes.
    public static let maxCount = 1_000_000
    public static let maxPeriod = Duration.seconds(86_400)
    public static let maxConcurrency = 1_000_000
    /// The longest limit key, in bytes.
    public static let maxKeyBytes = 128

    /// What is wrong with the limit, if anything.
    public var problem: String? {
        if let rate {
            guard (1...Self.maxCount).contains(rate.count) else { return "a rate allows 1 to \(Self.maxCount) jobs per period" }
            guard rate.period >= .milliseconds(1), rate.period <= Self.maxPeriod else { return "a rate's period is 1 ms to 1 day" }
            guard (1...Self.maxCount).contains(burst) else { return "the burst is 1 to \(Self.maxCount)" }
        } else if burst != 1 {
            return "a burst needs a rate"
        }
        if let concurrency, !(1...Self.maxConcurrency).contains(concurrency) {
            return "concurrency is 1 to \(Self.maxConcurrency)"
        }
        if rate == nil && concurrency == nil { return "a limit has a rate, a concurrency or both" }
        if keyFields.count > 16 { return "a limit key is made of at most 16 input members" }
        return nil
    }

    /// The stored form: `<count> <period ms> <burst> <concurrency>`, 0 for none.
    public var stored: String {
        "\(rate?.count ?? 0) \(rate.map { $0.period.nanoseconds / 1_000_000 } ?? 0) \(burst) \(concurrency ?? 0)"
    }

    /// A limit read from its stored form; `nil` for "no limit" (all zero) or text of another shape.
    public init?(stored: String) {
        let numbers = stored.split(separator: " ").compactMap { Int64($0) }
        guard numbers.count == 4 else { return nil }
        let rate = numbers[0] > 0 && numbers[1] > 0 ? Rate(count: Int(numbers[0]), period: .milliseconds(numbers[1])) : nil
        let concurrency = numbers[3] > 0 ? Int(numbers[3]) : nil
        guard rate != nil || concurrency != nil else { return nil }
        self.init(rate: rate, burst: max(1, Int(numbers[2])), concurrency: concurrency)
    }

    /// The limit key of a job with `input` (JSON): the key members' values joined by `|` (strings
    /// as they are, other values as JSON, a missing member as `null`); a key longer than
    /// ``maxKeyBytes`` or with control characters is its SHA-256 (32 hex digits). `nil` without
    /// key fields.
    public func key(input: Data) -> String? {
        guard !keyFields.isEmpty else { return nil }
        let members: [String: JSONValue]
        if case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: input) { members = object } else { members = [:] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let parts = keyFields.map { field -> String in
            switch members[field] ?? .null {
            case .string(let text): return text
            case let other: return (try? encoder.encode(other)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
            }
        }
        let key = parts.joined(separator: "|")
        return Self.isValidKey(key) ? key : String(SHA256.hex(bytes: Array(key.utf8)).prefix(32))
    }

    /// Whether `key` can be a limit key as it is: 1 to ``maxKeyBytes`` bytes, no control characters.
    public static func isValidKey(_ key: String) -> Bool {
        (1...maxKeyBytes).contains(key.utf8.count) && key.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
    }
}

/// What a limit applies to, within one queue (each queue keeps its own limits).
public enum LimitScope: Sendable, Hashable, CustomStringConvertible {
    /// Every job of the queue.
    case queue
    /// Every job of a task (in the queue).
    case task(String)
    /// Each limit key of a task's jobs: one limit per key.
    case perKey(String)

    /// The scope of a task's own limit (``TaskOptions/limit``).
    public static func of(task: String, _ limit: JobLimit) -> LimitScope {
        limit.keyFields.isEmpty ? .task(task) : .perKey(task)
    }

    /// The stored name: `*`, `<task>` or `<task>#`.
    public var field: String {
        switch self {
        case .queue: "*"
        case .task(let name): name
        case .perKey(let name): name + "#"
        }
    }

    /// The scope of a stored name.
    public init?(field: String) {
        if field == "*" {
            self = .queue
        } else if field.hasSuffix("#") {
            self = .perKey(String(field.dropLast()))
        } else if !field.isEmpty {
            self = .task(field)
        } else {
            return nil
        }
    }

    /// `queue`, `task <name>` or `each key of <name>`.
    public var description: String {
        switch self {
        case .queue: "queue"
        case .task(let name): "task \(name)"
        case .perKey(let name): "each key of \(name)"
        }
    }

    /// The task it names, if any.
    public var task: String? {
        switch self {
        case .queue: nil
        case .task(let name), .perKey(let name): name
        }
    }
}

/// A limit a worker declares in a queue when it starts: a task's own (``TaskOptions/limit``) or
/// one of the config file's `limits`.
public struct LimitDeclaration: Sendable, Hashable {
    public var queue: QueueName
    public var scope: LimitScope
    public var limit: JobLimit

    public init(queue: QueueName, scope: LimitScope, limit: JobLimit) {
        (self.queue, self.scope, self.limit) = (queue, scope, limit)
    }
}
