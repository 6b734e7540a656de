import Foundation
import TernCore

/// A request to enqueue one job.
public struct EnqueueRequest: Sendable, Hashable {
    /// When the job should run.
    public enum Timing: Sendable, Hashable {
        /// As soon as a worker is free.
        case now
        /// After a delay, measured on the broker's clock.
        case after(Duration)
        /// At a time, in milliseconds since 1970.
        case at(milliseconds: Int64)

        /// The delay of `.after`, else `nil`.
        public var delay: Duration? {
            if case .after(let delay) = self { return delay }
            return nil
        }
    }

    public var task: String
    /// The input as JSON (already validated against the task's input type).
    public var input: Data
    public var queue: QueueName
    public var priority: Int
    public var maxAttempts: Int
    public var timing: Timing
    /// Expire the job if it has not started this long after it was due.
    public var expiresAfter: Duration?
    /// How long the finished job is kept.
    public var retention: Duration
    /// How long the job is kept if it fails; `nil` for the broker's default (7 days unless
    /// configured with `queues.failed_retention_seconds`).
    public var failedRetention: Duration?
    /// The caller's idempotency key: enqueues with the same key map to one job while the key lives.
    public var idempotencyKey: String?
    /// How long an idempotency key lives (default 24 h).
    public var idempotencyTTL: Duration
    /// The unique key the job takes, and the rule it is held by (from the task's
    /// ``TaskOptions/unique``); `nil` for none.
    public var unique: UniqueLock?
    /// The jobs this one waits for (``JobDependencies``); `nil` for none. A job with dependencies
    /// takes no idempotency or unique key and is never refused by its queue's cap.
    public var dependencies: JobDependencies?
    /// The job's headers (``JobHeaders``), checked against their limits by whoever builds the
    /// request. Not part of the ``fingerprint``: a repeat of an idempotency key with other headers
    /// (another `traceparent`) is the same request.
    public var headers: [String: String] = [:]
    /// The job's limit key (see ``JobLimit``): from the task's limit's key fields, or given.
    public var limitKey: String?
    /// The digest of the workflow this job begins (``WorkflowPlan``), part of the ``fingerprint``:
    /// a workflow's idempotency key, held by its first job, is bound to the whole plan.
    var workflowDigest: String?

    /// Creates a request with the task's options.
    public init(
        task: String, input: Data, options: TaskOptions, timing: Timing = .now, idempotencyKey: String? = nil,
        idempotencyTTL: Duration = .seconds(86_400)
    ) {
        self.task = task
        self.input = input
        self.queue = options.queue
        self.priority = options.priority
        self.maxAttempts = options.maxAttempts
        self.timing = timing
        self.expiresAfter = options.expiresAfter
        self.retention = options.resultRetention
        self.failedRetention = options.failedRetention
        self.idempotencyKey = idempotencyKey
        self.idempotencyTTL = idempotencyTTL
        self.unique = options.unique.map { UniqueLock(key: $0.key(task: task, input: input), mode: $0.mode) }
        self.limitKey = options.limit?.key(input: input)
    }
}

extension EnqueueRequest {
    /// The headers as stored in the job hash: a JSON object with sorted keys, or empty for none.
    var storedHeaders: String { JobHeaders.encode(headers) }
}

/// A job's unique key (see ``UniquePolicy``): while it is held, enqueues with the same key in the
/// same queue create nothing and answer the job that holds it.
public struct UniqueLock: Sendable, Hashable {
    /// 32 hex digits (``UniquePolicy/key(task:input:)`` or ``UniquePolicy/key(task:explicit:)``).
    public var key: String
    public var mode: UniquePolicy.Mode

    /// Creates a lock of `mode` on `key`.
    public init(key: String, mode: UniquePolicy.Mode) {
        (self.key, self.mode) = (key, mode)
    }

    /// The stored form, `<a|u|d> <key>` (the job hash's `unique` field).
    var stored: String {
        switch mode {
        case .whileActive: "a \(key)"
        case .until: "u \(key)"
        case .debounce: "d \(key)"
        }
    }

    /// The mode's name (``UniquePolicy/Mode/name``) of a stored letter.
    static func modeName(stored letter: Substring) -> String? {
        switch letter {
        case "a": "while_active"
        case "u": "until"
        case "d": "debounce"
        default: nil
        }
    }
}

extension EnqueueRequest {
    /// A digest of everything that defines the job: task, queue, priority, attempts, timing,
    /// expiry, retention, and the input as canonical JSON (keys sorted, numbers as doubles, so
    /// `{"a":1,"b":2}` and `{ "b": 2.0, "a": 1 }` are the same input; integers beyond 2^53 that
    /// round to the same double are too). It is stored with an idempotency key: a repeat of the
    /// key with another fingerprint is refused (``EnqueueReceipt/keyReused``).
    public var fingerprint: String {
        var text = "\(task)\n\(queue.rawValue)\n\(priority)\n\(maxAttempts)\n"
        switch timing {
        case .now: text += "now"
        case .after(let delay): text += "after \(delay.nanoseconds / 1_000_000)"
        case .at(let milliseconds): text += "at \(milliseconds)"
        }
        text += "\n\(expiresAfter.map { "\($0.nanoseconds / 1_000_000)" } ?? "-")\n\(retention.nanoseconds / 1_000_000)\n"
        text += "\(failedRetention.map { "\($0.nanoseconds / 1_000_000)" } ?? "-")\n"
        if let unique { text += "unique \(unique.stored) \(unique.mode.windowMilliseconds ?? 0)\n" }
        if let workflowDigest { text += "workflow \(workflowDigest)\n" }
        var bytes = Array(text.utf8)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let value = try? JSONDecoder().decode(JSONValue.self, from: input), let canonical = try? encoder.encode(value) {
            bytes += canonical
        } else {
            bytes += input
        }
        return String(SHA256.hex(bytes: bytes).prefix(32))
    }
}

/// What enqueueing one job did.
public struct EnqueueReceipt: Sendable, Hashable {
    /// The job's id: new, or the existing job's for a repeated idempotency key.
    public var id: JobID
    /// Whether this call created the job.
    public var created: Bool
    /// The job's state after the call; `nil` if an idempotency key points at a job already removed,
    /// or if the job was refused.
    public var state: JobState?
    /// The queue was at its cap (``QueueCaps``): the job was not created and `id` names nothing.
    public var refused = false
    /// The idempotency key is held by another request (another task, queue, input or options; see
    /// ``EnqueueRequest/fingerprint``): no job was created, and `id` names the job the key holds.
    public var keyReused = false
    /// The job's unique key is held (``UniqueLock``): no job was created, and `id` names the job
    /// that holds the key (`state` is `nil` if it is gone already).
    public var duplicate = false
    /// The job's debounce key is held by a job not yet started: that job, named by `id`, now has
    /// this request's input and is due one window from now. Nothing was created.
    public var debounced = false
}

/// Caps on the jobs waiting in each queue (queued, scheduled and retrying), checked atomically at
/// enqueue: above its cap a queue refuses new jobs (``EnqueueReceipt/refused``) until workers
/// drain it. A repeated idempotency key is never refused; retries and scheduler ticks are not capped.
public struct QueueCaps: Sendable, Hashable {
    /// The cap of a queue not named in ``byQueue``; `nil` for none (default 1,000,000).
    public var maxPending: Int?
    /// Caps of named queues; 0 means none for that queue.
    public var byQueue: [QueueName: Int]

    /// The default cap on a queue's waiting jobs.
    public static let defaultMaxPending = 1_000_000

    /// Creates caps; every queue gets `maxPending` unless `byQueue` names it.
    public init(maxPending: Int? = QueueCaps.defaultMaxPending, byQueue: [QueueName: Int] = [:]) {
        self.maxPending = maxPending
        self.byQueue = byQueue
    }

    /// The cap of `queue`, if it has one.
    public func cap(_ queue: QueueName) -> Int? {
        guard let own = byQueue[queue] else { return maxPending }
        return own > 0 ? own : nil
    }
}

/// A worker's hold on a running job: the token fences every write about it.
public struct JobLease: Sendable, Hashable {
    public var id: JobID
    public var token: String

    public init(id: JobID, token: String) {
        self.id = id
        self.token = token
    }
}

/// A job handed to a worker.
public struct ClaimedJob: Sendable, Hashable {
    public var lease: JobLease
    public var task: String
    public var input: Data
    /// This attempt, from 1.
    public var attempt: Int
    public var maxAttempts: Int
    /// A process died while running this job together with others: the job is suspected of the
    /// crash, and a worker runs it alone in a process of its own (see ``JobBroker/crashed(_:reason:maxCrashes:shared:)``).
    public var suspect = false
    /// The job's headers (``JobHeaders``).
    public var headers: [String: String] = [:]
    public var id: JobID { lease.id }
}

/// What a heartbeat learned.
public struct HeartbeatOutcome: Sendable, Hashable {
    /// Jobs whose lease is no longer this worker's: stop reporting on them.
    public var lost: [JobID] = []
    /// Jobs whose cancellation was asked: stop them and report ``JobBroker/cancelled(_:)``.
    public var cancelRequested: [JobID] = []

    public init(lost: [JobID] = [], cancelRequested: [JobID] = []) {
        self.lost = lost
        self.cancelRequested = cancelRequested
    }
}

/// What one reaper pass did on a queue.
public struct ReapReport: Sendable, Hashable {
    /// Jobs whose lease expired that went back to the queue.
    public var requeued = 0
    /// Jobs whose lease expired with no attempt left, now failed.
    public var failed = 0
    /// Scheduled or retrying jobs that became due.
    public var promoted = 0
    /// Active entries without a running job, removed.
    public var repaired = 0
    /// Finished jobs past their retention deleted, in the terminal state with the most (at most
    /// the reap's limit each: a value at the limit means more may be due).
    public var dropped = 0

    public init() {}
}

/// Counts for one queue.
public struct QueueStats: Sendable, Hashable, Codable {
    public var queue: QueueName
    public var pending = 0
    /// Scheduled and retrying jobs.
    public var scheduled = 0
    public var running = 0
    public var succeeded = 0
    public var failed = 0
    public var cancelled = 0
    public var expired = 0
    /// Jobs waiting for the jobs they depend on.
    public var waiting = 0
    /// Queued jobs held back by a limit (counted in none of the other counts).
    public var throttled = 0
    public var paused = false
    /// How long the next job in line has waited, in milliseconds (0 when none is pending).
    public var oldestPendingMilliseconds: Int64 = 0
    /// Writes rejected for a stale lease token since the queue was created.
    public var staleWrites = 0
    /// Leases lost since the queue was created.
    public var lostLeases = 0

    public init(queue: QueueName) { self.queue = queue }
}

/// Jobs of one queue that finished in one minute.
public struct MinuteCount: Sendable, Hashable {
    /// The minute's start, in milliseconds since 1970.
    public var minuteMilliseconds: Int64
    public var succeeded: Int
    /// Jobs that failed for good (not retried).
    public var failed: Int

    public init(minuteMilliseconds: Int64, succeeded: Int = 0, failed: Int = 0) {
        (self.minuteMilliseconds, self.succeeded, self.failed) = (minuteMilliseconds, succeeded, failed)
    }
}

/// How long jobs waited from their due time to their first start (enqueue→start), counted in
/// buckets. A job counts once, when its first attempt starts.
public struct LatencyHistogram: Sendable, Hashable {
    /// The buckets' upper bounds, in milliseconds: a wait of `w` counts in the first bucket with
    /// `w <= bound`, or in the last, open one above 300 s.
    public static let boundsMilliseconds: [Int64] = [
        1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
    ]
    /// The field names in Redis: `lat:<bound>`, then `lat:inf`, then `lat:sum`.
    public static let fields = boundsMilliseconds.map { "lat:\($0)" } + ["lat:inf", "lat:sum"]

    /// Jobs per bucket (not cumulative): one per bound, then the open bucket.
    public var counts: [Int]
    /// The waits added up, in milliseconds: kept since the queue began, not per minute (0 in a
    /// histogram of the last minutes).
    public var sumMilliseconds: Int64

    public init(counts: [Int] = Array(repeating: 0, count: LatencyHistogram.boundsMilliseconds.count + 1), sumMilliseconds: Int64 = 0) {
        (self.counts, self.sumMilliseconds) = (counts, sumMilliseconds)
    }

    /// Jobs counted.
    public var total: Int { counts.reduce(0, +) }

    /// Counts one wait.
    public mutating func record(_ milliseconds: Int64) {
        let wait = max(0, milliseconds)
        counts[Self.boundsMilliseconds.firstIndex { wait <= $0 } ?? Self.boundsMilliseconds.count] += 1
        sumMilliseconds += wait
    }

    /// Adds another histogram's counts.
    public mutating func add(_ other: LatencyHistogram) {
        for index in counts.indices where index < other.counts.count { counts[index] += other.counts[index] }
        sumMilliseconds += other.sumMilliseconds
    }

    /// The upper bound of the bucket that holds the `q` quantile (0...1): the wait is at most this
    /// many milliseconds. `nil` when nothing was counted or it lies above the last bound.
    public func quantile(_ q: Double) -> Int64? {
        let total = total
        guard total > 0 else { return nil }
        let rank = max(1, Int((q * Double(total)).rounded(.up)))
        var seen = 0
        for (index, count) in counts.enumerated() {
            seen += count
            if seen >= rank { return index < Self.boundsMilliseconds.count ? Self.boundsMilliseconds[index] : nil }
        }
        return nil
    }

    /// A histogram from the values of ``fields``, in order (missing values count as 0).
    public init(fieldValues: [Int]) {
        let bucketCount = Self.boundsMilliseconds.count + 1
        var counts = Array(fieldValues.prefix(bucketCount))
        counts += Array(repeating: 0, count: bucketCount - counts.count)
        self.init(counts: counts, sumMilliseconds: Int64(fieldValues.count > bucketCount ? fieldValues[bucketCount] : 0))
    }
}

/// One page of a job listing.
public struct JobPage: Sendable, Hashable {
    public var jobs: [JobRecord]
    /// The cursor for the next page; `nil` on the last page.
    public var nextCursor: String?

    public init(jobs: [JobRecord], nextCursor: String?) {
        (self.jobs, self.nextCursor) = (jobs, nextCursor)
    }
}

/// The operations on jobs that every broker provides: the Redis broker in production, the memory
/// broker in tests and embedded use. Each state change is atomic.
public protocol JobBroker: Sendable {
    /// Enqueues jobs, all of one queue or of several; receipts come back in order.
    func enqueue(_ requests: [EnqueueRequest]) async throws -> [EnqueueReceipt]
    /// Claims up to `limit` jobs of `queue` for `worker`, each under a lease of `lease`.
    func claim(queue: QueueName, limit: Int, worker: String, lease: Duration) async throws -> [ClaimedJob]
    /// How long until the earliest scheduled or retrying job of `queues` is due (zero if one is
    /// due now), or `nil` when none is scheduled. Idle workers wait no longer than this.
    func nextDue(queues: [QueueName]) async throws -> Duration?
    /// Waits until jobs may be available on any of `queues`, or `timeout` passes. Returns `true`
    /// when woken by new work.
    func waitForWork(queues: [QueueName], timeout: Duration) async throws -> Bool
    /// Whether ``waitAndClaim(queue:limit:worker:lease:timeout:)`` claims in the wait's own round
    /// trip, and ``interruptWait(worker:queue:)`` ends that wait early.
    var claimsWhileWaiting: Bool { get }
    /// Waits as ``waitForWork(queues:timeout:)`` does for one queue, then claims as
    /// ``claim(queue:limit:worker:lease:)`` does (also after the timeout).
    func waitAndClaim(queue: QueueName, limit: Int, worker: String, lease: Duration, timeout: Duration) async throws -> [ClaimedJob]
    /// Ends `worker`'s current ``waitAndClaim(queue:limit:worker:lease:timeout:)`` on `queue` early;
    /// its claim still runs, and its caller releases what it took if it is stopping.
    func interruptWait(worker: String, queue: QueueName) async throws
    /// Extends the leases by `lease` from now, in one call per queue.
    func heartbeat(_ leases: [JobLease], lease: Duration) async throws -> HeartbeatOutcome
    /// Records success with `result` (JSON). Returns `false` if the lease was stale.
    func complete(_ lease: JobLease, result: Data) async throws -> Bool
    /// Records a failed attempt; retries after `retryAfter`, or fails for good when it is `nil`. A
    /// job whose cancellation was asked while it ran becomes `cancelled` instead (the error is kept).
    /// Returns the new state, or `nil` if the lease was stale.
    func fail(_ lease: JobLease, message: String, retryAfter: Duration?) async throws -> JobState?
    /// Records that the worker stopped the job after a cancel request. `false` if the lease was stale.
    func cancelled(_ lease: JobLease) async throws -> Bool
    /// Returns running jobs to their queue at once without using up an attempt (graceful shutdown).
    func release(_ leases: [JobLease]) async throws
    /// Records that the process running the job died (`reason`: its signal or exit status). The
    /// job's crash count rises; at `maxCrashes` it fails with `worker_crashed: <reason>`, else it is
    /// queued again at once without using an attempt. Returns the new state, or `nil` if the lease was stale.
    ///
    /// With `shared` (the process ran other jobs too) the crash may be another job's: it is recorded
    /// in the job's errors but not counted, and the job becomes a ``ClaimedJob/suspect``, which
    /// workers run alone from then on, so that its next crash is surely its own. A suspect's crashes
    /// are always counted.
    func crashed(_ lease: JobLease, reason: String, maxCrashes: Int, shared: Bool) async throws -> JobState?
    /// Stores a progress update. `false` if the lease was stale.
    func progress(_ lease: JobLease, value: Double, message: String?) async throws -> Bool
    /// Cancels a job: queued and scheduled jobs at once, a running one through its worker.
    /// Returns the state after the call, or `nil` for an unknown id.
    func cancel(_ id: JobID) async throws -> JobState?
    /// Puts a failed, cancelled or expired job back in its queue as new (attempts from 0; its
    /// error history stays). Returns the state after the call (unchanged for a job that has not
    /// finished, or that succeeded), or `nil` for an unknown id.
    func retry(_ id: JobID) async throws -> JobState?
    /// Deletes a finished job (succeeded, failed, cancelled or expired) before its retention ends:
    /// every reader then finds no such job. A job that has not finished is left as it is (cancel it
    /// first). Returns what the call did, or `nil` for an unknown id.
    func delete(_ id: JobID) async throws -> JobDeletion?
    /// Makes a `scheduled` or `retrying` job due now: it is `queued` at once, behind the jobs of its
    /// priority already queued, and its due time becomes now. A job in another state is left as it
    /// is. Returns what the call did, or `nil` for an unknown id.
    func promote(_ id: JobID) async throws -> JobPromotion?
    /// Deletes up to `limit` jobs of `queue` in `state`, first in the state's order (for finished
    /// states, the soonest to be dropped); returns how many. `running` jobs cannot be purged: cancel
    /// them. `scheduled` and `retrying` jobs share one set, of which a call looks at no more than
    /// 10 × `limit` entries: call again until it returns 0.
    func purge(_ queue: QueueName, state: JobState, limit: Int) async throws -> Int
    /// Retries up to `limit` failed jobs of `queue`, oldest first; returns how many.
    func retryFailed(_ queue: QueueName, limit: Int) async throws -> Int
    /// The job with `id`, or `nil`.
    func job(_ id: JobID) async throws -> JobRecord?
    /// Jobs of `queue` in `state`, oldest first within the listing's order.
    func jobs(queue: QueueName, state: JobState, cursor: String?, limit: Int) async throws -> JobPage
    /// Counts for `queue`.
    func stats(_ queue: QueueName) async throws -> QueueStats
    /// Jobs of `queue` that succeeded or failed for good in each of the last `minutes` minutes (at
    /// most ``JobLimits/throughputMinutes``), oldest first, the current minute last.
    func throughput(_ queue: QueueName, minutes: Int) async throws -> [MinuteCount]
    /// How long the jobs of `queue` waited from due to first start: over the last `minutes`
    /// minutes (at most ``JobLimits/throughputMinutes``), or, with `nil`, since the queue began.
    func latency(_ queue: QueueName, minutes: Int?) async throws -> LatencyHistogram
    /// Pauses or resumes claiming from `queue`.
    func setPaused(_ queue: QueueName, _ paused: Bool) async throws
    /// Every queue that has been used.
    func queues() async throws -> [QueueName]
    /// The limits of `queue` (``JobLimit``), each scope's declared and set limit.
    func limits(_ queue: QueueName) async throws -> [QueueLimit]
    /// Sets the limit of `scope` in `queue`: the one declared (by workers, from task options and
    /// the config file), or the one set by an operator, which wins (`.some(nil)`: explicitly no
    /// limit). `nil` removes it. Jobs held back are looked at again at once.
    func setLimit(_ limit: JobLimit??, scope: LimitScope, queue: QueueName, declared: Bool) async throws
    /// One reaper pass on `queue`.
    func reap(_ queue: QueueName, limit: Int) async throws -> ReapReport
}

/// One scope's limits in a queue.
public struct QueueLimit: Sendable, Hashable {
    public var scope: LimitScope
    /// The limit workers declared (task options, config file); `nil` for none.
    public var declared: JobLimit?
    /// The limit an operator set, which wins: `.some(nil)` means explicitly none; `nil` for not set.
    public var set: JobLimit??

    public init(scope: LimitScope, declared: JobLimit? = nil, set: JobLimit?? = nil) {
        (self.scope, self.declared, self.set) = (scope, declared, set)
    }

    /// The limit in force.
    public var effective: JobLimit? {
        if let set { return set }
        return declared
    }

    /// Reads a queue's stored limits (`d:<scope>` and `o:<scope>` fields), ordered by scope.
    static func parse(_ fields: [String: String]) -> [QueueLimit] {
        var byScope: [String: QueueLimit] = [:]
        for (field, value) in fields {
            let kind = field.prefix(2)
            guard kind == "d:" || kind == "o:", let scope = LimitScope(field: String(field.dropFirst(2))) else { continue }
            var entry = byScope[scope.field] ?? QueueLimit(scope: scope)
            if kind == "d:" { entry.declared = JobLimit(stored: value) } else { entry.set = .some(JobLimit(stored: value)) }
            byScope[scope.field] = entry
        }
        return byScope.keys.sorted().map { byScope[$0]! }
    }
}

/// What deleting a job did (``JobBroker/delete(_:)``).
public enum JobDeletion: Sendable, Hashable {
    /// The job had finished in this state, and is deleted.
    case deleted(JobState)
    /// The job has not finished (it is in this state) and was left as it is.
    case notFinished(JobState)
}

/// What promoting a job did (``JobBroker/promote(_:)``).
public enum JobPromotion: Sendable, Hashable {
    /// The job was in this state (`scheduled` or `retrying`) and is `queued` now.
    case promoted(from: JobState)
    /// The job is in this state, neither `scheduled` nor `retrying`, and was left as it is.
    case notDelayed(JobState)
}

/// What emitting a schedule's tick did.
public enum TickEmission: Sendable, Hashable {
    /// The tick's job was enqueued.
    case emitted(JobID)
    /// The tick was emitted before (by this or another scheduler); the schedule's last job, if known.
    case duplicate(lastJob: JobID?)
    /// The tick was skipped: the schedule's last job has not finished (overlap policy `skip`).
    case overlapped(lastJob: JobID?)
}

extension JobBroker {
    public var claimsWhileWaiting: Bool { false }

    public func waitAndClaim(
        queue: QueueName, limit: Int, worker: String, lease: Duration, timeout: Duration
    ) async throws -> [ClaimedJob] {
        _ = try await waitForWork(queues: [queue], timeout: timeout)
        return try await claim(queue: queue, limit: limit, worker: worker, lease: lease)
    }

    public func interruptWait(worker: String, queue: QueueName) async throws {}
}
