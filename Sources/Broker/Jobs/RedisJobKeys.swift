import TernCore

/// Every Redis key name Tern uses, built in this one place.
///
/// Per-queue keys carry the queue as a hash tag, `<prefix>:{<queue>}:...`, so each queue lives in
/// one Cluster slot; the prefix and queue names are validated so that no name can escape them.
public struct RedisJobKeys: Sendable, Hashable {
    /// The prefix every key starts with (default ``defaultPrefix``).
    public let prefix: String

    /// The prefix when none is configured: `tern`.
    public static let defaultPrefix = "tern"

    /// Creates the key layout for `prefix`: 1 to 64 characters of `a-z A-Z 0-9 _ . -`.
    public init(prefix: String = RedisJobKeys.defaultPrefix) throws(RedisError) {
        let allowed = prefix.utf8.allSatisfy {
            switch $0 {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                true
            default: false
            }
        }
        guard allowed && (1...64).contains(prefix.utf8.count) else {
            throw .invalidConfiguration("key prefix '\(prefix)' must be 1-64 characters of a-z A-Z 0-9 _ . -")
        }
        self.prefix = prefix
    }

    /// The base of a queue's keys, passed to every Function as `KEYS[1]`.
    public func base(_ queue: QueueName) -> String { "\(prefix):{\(queue.rawValue)}:" }
    /// A job's hash.
    public func job(_ id: JobID) -> String { base(id.queue) + QueueItemKey.job.rawValue + id.rawValue }
    /// One of a queue's keys.
    public func queueKey(_ queue: QueueName, _ suffix: QueueKey) -> String { base(queue) + suffix.rawValue }
    /// Ends `worker`'s blocked wait for `queue`'s work (a list it pops beside `wake`; see
    /// ``RedisJobBroker/interruptWait(worker:queue:)``).
    public func interrupt(_ queue: QueueName, worker: String) -> String { base(queue) + "stop:" + worker }
    /// Where a schedule records its last tick on `queue` (a hash: `mark`, `tick`, `job`).
    public func scheduleMark(_ queue: QueueName, _ schedule: String) -> String { base(queue) + QueueItemKey.schedule.rawValue + schedule }
    /// Which queue an idempotency key belongs to: the id of the first job made with it (a string,
    /// for the key's time to live). Outside any queue's slot.
    public func idempotencyQueue(_ hash: String) -> String { "\(prefix):idemq:\(hash)" }
    /// The pub/sub channel (not a key) of a queue's job changes: `<base>events` (see
    /// ``JobFunctions``).
    public func events(_ queue: QueueName) -> String { base(queue) + Self.eventsSuffix }
    /// The pattern of every queue's events channel, for `PSUBSCRIBE`.
    public var eventsPattern: String { "\(prefix):{*}:" + Self.eventsSuffix }
    /// The events channel after a queue's base.
    public static let eventsSuffix = "events"
    /// The set of queue names ever used.
    public var queues: String { "\(prefix):queues" }
    /// The sorted set of worker ids by last heartbeat (milliseconds).
    public var workers: String { "\(prefix):workers" }
    /// One worker's description.
    public func worker(_ id: String) -> String { "\(prefix):worker:\(id)" }
    /// What an operator asked worker `id` to do (``WorkerOrder``), if anything.
    public func workerOrder(_ id: String) -> String { "\(prefix):worker-order:\(id)" }
    /// The sorted set of published task catalogue versions by when a worker last announced one
    /// (milliseconds).
    public var catalogues: String { "\(prefix):catalogues" }
    /// One published task catalogue, as JSON.
    public func catalogue(_ version: String) -> String { "\(prefix):catalogue:\(version)" }
    /// The schedules stored over the API (a hash: name → definition as JSON).
    public var schedules: String { "\(prefix):schedules" }
    /// A counter that every change of a stored schedule increments.
    public var schedulesVersion: String { "\(prefix):schedules:version" }
}

/// The keys of one queue after its base (``RedisJobKeys/base(_:)``); the Redis Functions in
/// ``JobFunctions`` use the same names.
public enum QueueKey: String, Sendable, CaseIterable {
    /// Jobs ready to run, by priority then order (sorted set).
    case pending
    /// Jobs waiting for their due time: delayed and retrying (sorted set).
    case scheduled
    /// Running jobs by lease expiry (sorted set).
    case active
    /// The queue's settings and counters (hash).
    case meta
    /// Wake-ups for blocked workers (list, at most 64 entries).
    case wake
    /// Finished jobs by state, by finish time (sorted sets).
    case succeeded, failed, cancelled, expired
    /// Jobs waiting for the jobs they depend on, by creation time (sorted set).
    case waiting
    /// Jobs whose dependents must learn of a change (they finished, or were retried), by the
    /// time of the change (sorted set): see ``RedisJobBroker`` and docs/workflows.md.
    case relay
    /// The queue's limits (hash): `d:<scope>` declared by workers, `o:<scope>` set by operators
    /// (wins), each `<count> <period ms> <burst> <concurrency>` (see ``JobLimit``).
    case limits
    /// Queued jobs held back by a limit, by when (sorted set).
    case throttled
    /// Limit buckets whose first held-back job may run, by when (sorted set).
    case limitDue = "limit_due"

    /// The key holding jobs in `state`.
    public init(holding state: JobState) {
        switch state {
        case .queued: self = .pending
        case .scheduled, .retrying: self = .scheduled
        case .running: self = .active
        case .succeeded: self = .succeeded
        case .failed: self = .failed
        case .cancelled: self = .cancelled
        case .expired: self = .expired
        case .waiting: self = .waiting
        }
    }
}

/// The per-item keys of one queue after its base, each followed by the item's name; the Redis
/// Functions in ``JobFunctions`` use the same names.
public enum QueueItemKey: String, Sendable, CaseIterable {
    /// A job's hash: `job:<id>`.
    case job = "job:"
    /// An idempotency key's job id: `idem:<key>`.
    case idempotency = "idem:"
    /// A schedule's last tick: `schedule:<name>`.
    case schedule = "schedule:"
    /// Jobs finished in one minute: `minute:<minutes since 1970>`, a hash of `succeeded` and
    /// `failed` counts that expires after ``JobLimits/throughputMinutes`` minutes.
    case minute = "minute:"
    /// The outcomes of a waiting job's dependencies: `deps:<id>`, a hash from the dependency's
    /// index to `o<output JSON>` or `e<error message>`.
    case dependencies = "deps:"
    /// A unique key's holder: `unique:<key>`, the id of the job that took it (see ``UniqueLock``).
    case unique = "unique:"
    /// A limit bucket's held-back jobs, in order: `lwait:<bucket>` (list).
    case limitWait = "lwait:"
    /// A limit bucket's rate state (GCRA theoretical arrival time, ms): `lrate:<bucket>`.
    case limitRate = "lrate:"
    /// The running jobs holding a limit bucket's concurrency slots: `lhold:<bucket>` (set).
    case limitHold = "lhold:"
}
