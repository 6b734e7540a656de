import Foundation
import Synchronization
import TernCore

/// A ``JobBroker`` that keeps every job in this process's memory.
///
/// It is for tests (Tern's own, and users' tests of their tasks with a real ``TernClient`` and
/// worker but no Redis) and for an embedded mode where one process enqueues and runs its own jobs
/// and losing them on exit is acceptable. It is not the production path: nothing is persisted or
/// shared between processes.
///
/// It keeps the same contract as ``RedisJobBroker``, operation by operation, as the Redis Functions
/// in ``JobFunctions`` define it: the same states and transitions, priority then FIFO order, due
/// times and expiry, idempotency keys (stored hashed, per queue, for their TTL), lease tokens
/// (`<worker>/<batch>/<index>`) that fence every worker write, stale-write and lost-lease counters,
/// the failed-jobs cap, retention, and the reaper's repairs. Every operation is atomic: all state
/// lives behind one lock.
///
/// ```swift
/// let broker = MemoryJobBroker()
/// let tern = TernClient(broker: broker)
/// let handle = try await tern.enqueue(Resize.self, input)
/// ```
///
/// Time comes from `clock` (milliseconds since 1970) where Redis would use its `TIME`; tests may
/// pass a clock they advance by hand.
public final class MemoryJobBroker: JobBroker {
    /// The most failed jobs kept per queue.
    public let failedCap: Int
    /// How long a failed job is kept when its task sets no ``TaskOptions/failedRetention``.
    public let failedRetention: Duration
    let clock: @Sendable () -> Int64
    private let state = Mutex(MemoryBrokerState())
    let workerTable = MemoryWorkerTable()
    /// The most jobs one claim hands out, as in one Redis Function call.
    static let maxJobsPerCall = 1000

    /// Creates an empty broker.
    /// - Parameters:
    ///   - clock: now, in milliseconds since 1970 (default: the system's wall clock).
    ///   - failedCap: the most failed jobs kept per queue; those due to be dropped first go first.
    ///   - failedRetention: how long a failed job is kept unless its task says otherwise.
    ///   - caps: the caps on waiting jobs per queue, checked at enqueue.
    public init(
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
        failedCap: Int = JobLimits.defaultFailedCap, failedRetention: Duration = JobLimits.defaultFailedRetention,
        caps: QueueCaps = QueueCaps()
    ) {
        self.clock = clock
        self.failedCap = failedCap
        self.failedRetention = failedRetention
        self.caps = caps
    }

    /// The caps on waiting jobs per queue.
    public let caps: QueueCaps

    // MARK: Locking

    /// Runs `body` under the lock with the current time, then resumes the waiters it woke.
    private func withState<T: Sendable>(_ body: (inout MemoryBrokerState, Int64) -> T) -> T {
        let (value, resumptions) = state.withLock { locked in
            let now = clock()
            let value = body(&locked, now)
            locked.drainRelays(now: now)
            let resumptions = locked.resumptions
            locked.resumptions = []
            return (value, resumptions)
        }
        for continuation in resumptions { continuation.resume() }
        return value
    }

    /// Runs `body` on one queue under the lock (creating the queue's state if needed).
    private func withQueue<T: Sendable>(_ name: QueueName, _ body: (inout MemoryQueueState, Int64) -> T) -> T {
        withState { locked, now in locked.update(name) { queue in body(&queue, now) } }
    }

    private static func milliseconds(_ duration: Duration) -> Int64 { duration.nanoseconds / 1_000_000 }

    /// Leases grouped by queue, queues in order of first appearance.
    private static func grouped(_ leases: [JobLease]) -> [(queue: QueueName, leases: [JobLease])] {
        var order: [QueueName] = []
        var groups: [QueueName: [JobLease]] = [:]
        for lease in leases {
            if groups[lease.id.queue] == nil { order.append(lease.id.queue) }
            groups[lease.id.queue, default: []].append(lease)
        }
        return order.map { (queue: $0, leases: groups[$0] ?? []) }
    }

    // MARK: JobBroker

    public func enqueue(_ requests: [EnqueueRequest]) async throws -> [EnqueueReceipt] {
        guard !requests.isEmpty else { return [] }
        if requests.contains(where: { $0.dependencies != nil }) {
            // The others first, as usual; then those that wait for jobs (theirs, perhaps).
            let plain = requests.indices.filter { requests[$0].dependencies == nil }
            var receipts = [EnqueueReceipt?](repeating: nil, count: requests.count)
            for (index, receipt) in zip(plain, try await enqueue(plain.map { requests[$0] })) { receipts[index] = receipt }
            let failedRetention = failedRetention
            for index in requests.indices where requests[index].dependencies != nil {
                let outcome = withState { locked, now in
                    Result { try locked.enqueueWaiting(requests[index], now: now, failedRetention: failedRetention) }
                }
                receipts[index] = try outcome.get()
            }
            return receipts.map { $0! }
        }
        var order: [QueueName] = []
        var groups: [QueueName: [Int]] = [:]
        for (index, request) in requests.enumerated() {
            if groups[request.queue] == nil { order.append(request.queue) }
            groups[request.queue, default: []].append(index)
        }
        let indicesByQueue = groups
        return withState { (locked, now) -> [EnqueueReceipt] in
            var receipts = [EnqueueReceipt?](repeating: nil, count: requests.count)
            for name in order {
                locked.used.insert(name)
                let cap = caps.cap(name)
                var reusedElsewhere: [Int: JobID] = [:]
                for index in indicesByQueue[name] ?? [] {
                    if let held = locked.reserveKey(requests[index], now: now), held.queue != name {
                        // The job the key holds in its own queue, else the reserving request's id.
                        let hash = SHA256.hex(requests[index].idempotencyKey!)
                        reusedElsewhere[index] = locked.queues[held.queue]?.idempotency[hash]?.id ?? held
                    }
                }
                locked.update(name) { queue in
                    var created = false
                    var room = cap.map { $0 - queue.waiting }
                    for index in indicesByQueue[name] ?? [] {
                        if let held = reusedElsewhere[index] {
                            receipts[index] = EnqueueReceipt(id: held, created: false, state: nil, keyReused: true)
                            continue
                        }
                        let receipt = queue.enqueue(requests[index], now: now, room: &room, failedRetention: failedRetention)
                        created = created || receipt.created
                        receipts[index] = receipt
                    }
                    // Idle workers wake for a scheduled job too, to wait for its due time instead.
                    if created { queue.wakes += 1 }
                }
            }
            return receipts.compactMap { $0 }
        }
    }

    public func claim(queue: QueueName, limit: Int, worker: String, lease: Duration) async throws -> [ClaimedJob] {
        guard limit > 0 else { return [] }
        let limit = min(limit, Self.maxJobsPerCall)
        let leaseMilliseconds = Self.milliseconds(lease)
        return withQueue(queue) { queue, now in
            queue.claim(limit: limit, worker: worker, leaseMilliseconds: leaseMilliseconds, now: now)
        }
    }

    public func nextDue(queues: [QueueName]) async throws -> Duration? {
        guard !queues.isEmpty else { return nil }
        return withState { (locked, now) -> Duration? in
            var earliest: Int64?
            for name in queues {
                // A limit bucket's next held-back job counts as due then.
                let limited = locked.queues[name]?.limitBuckets.values.compactMap(\.due).filter { $0 < .max }.min()
                let scheduled = locked.queues[name]?.scheduled.peekMin()?.score
                for due in [scheduled, limited].compactMap({ $0 }) { earliest = min(earliest ?? due, due) }
            }
            return earliest.map { Duration.milliseconds(max(0, $0 - now)) }
        }
    }

    public func waitForWork(queues: [QueueName], timeout: Duration) async throws -> Bool {
        guard !queues.isEmpty else { return false }
        let registered = withState { (locked, _) -> UInt64? in
            if locked.takeWakeToken(queues) { return nil }
            locked.lastWaiter += 1
            locked.waiters[locked.lastWaiter] = MemoryWorkWaiter(queues: queues)
            return locked.lastWaiter
        }
        guard let id = registered else { return true }
        if timeout > .zero {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.suspend(id) }
                group.addTask { _ = try? await Task.sleep(for: timeout) }
                _ = await group.next()
                group.cancelAll()
            }
        }
        // Both children have ended, so the waiter's continuation (if any) was resumed.
        return withState { locked, _ in locked.waiters.removeValue(forKey: id)?.woken ?? false }
    }

    /// Suspends until waiter `id` is woken or closed; cancellation closes it.
    private func suspend(_ id: UInt64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { locked -> Bool in
                    guard let waiter = locked.waiters[id], !waiter.woken, !waiter.closed else { return true }
                    locked.waiters[id]?.continuation = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.close(id)
        }
    }

    /// Stops waiter `id` from taking wakes and resumes it.
    private func close(_ id: UInt64) {
        let continuation = state.withLock { locked -> CheckedContinuation<Void, Never>? in
            locked.waiters[id]?.closed = true
            let continuation = locked.waiters[id]?.continuation
            locked.waiters[id]?.continuation = nil
            return continuation
        }
        continuation?.resume()
    }

    public func heartbeat(_ leases: [JobLease], lease: Duration) async throws -> HeartbeatOutcome {
        guard !leases.isEmpty else { return HeartbeatOutcome() }
        let leaseMilliseconds = Self.milliseconds(lease)
        let groups = Self.grouped(leases)
        return withState { (locked, now) -> HeartbeatOutcome in
            var outcome = HeartbeatOutcome()
            for group in groups {
                let part = locked.update(group.queue) { queue in
                    queue.heartbeat(group.leases, leaseMilliseconds: leaseMilliseconds, now: now)
                }
                outcome.lost += part.lost
                outcome.cancelRequested += part.cancelRequested
            }
            return outcome
        }
    }

    public func complete(_ lease: JobLease, result: Data) async throws -> Bool {
        withQueue(lease.id.queue) { queue, now in queue.complete(lease, result: result, now: now) }
    }

    public func crashed(_ lease: JobLease, reason: String, maxCrashes: Int, shared: Bool) async throws -> JobState? {
        let cap = failedCap
        let message = "worker_crashed: " + String(reason.prefix(500))
        return withQueue(lease.id.queue) { queue, now in
            queue.crashed(lease, message: message, maxCrashes: max(1, maxCrashes), shared: shared, failedCap: cap, now: now)
        }
    }

    public func fail(_ lease: JobLease, message: String, retryAfter: Duration?) async throws -> JobState? {
        let delay = retryAfter.map { max(0, Self.milliseconds($0)) }
        let message = String(message.prefix(4096))
        let cap = failedCap
        return withQueue(lease.id.queue) { queue, now in
            queue.fail(lease, message: message, retryDelay: delay, failedCap: cap, now: now)
        }
    }

    public func cancelled(_ lease: JobLease) async throws -> Bool {
        withQueue(lease.id.queue) { queue, now in queue.cancelled(lease, now: now) }
    }

    public func release(_ leases: [JobLease]) async throws {
        let groups = Self.grouped(leases)
        guard !groups.isEmpty else { return }
        withState { locked, now in
            for group in groups {
                locked.update(group.queue) { queue in queue.release(group.leases, now: now) }
            }
        }
    }

    public func progress(_ lease: JobLease, value: Double, message: String?) async throws -> Bool {
        withQueue(lease.id.queue) { queue, now in queue.progress(lease, value: value, message: message, now: now) }
    }

    public func cancel(_ id: JobID) async throws -> JobState? {
        withQueue(id.queue) { queue, now in queue.cancel(id, now: now) }
    }

    public func retry(_ id: JobID) async throws -> JobState? {
        withQueue(id.queue) { queue, now in queue.retry(id, now: now) }
    }

    public func delete(_ id: JobID) async throws -> JobDeletion? {
        withQueue(id.queue) { queue, now in queue.delete(id, now: now) }
    }

    public func promote(_ id: JobID) async throws -> JobPromotion? {
        withQueue(id.queue) { queue, now in queue.promote(id, now: now) }
    }

    public func purge(_ queue: QueueName, state: JobState, limit: Int) async throws -> Int {
        precondition(state != .running, "running jobs are cancelled, not purged")
        return withQueue(queue) { queueState, now in queueState.purge(state, limit: max(1, min(limit, 1_000)), now: now) }
    }

    public func retryFailed(_ queue: QueueName, limit: Int) async throws -> Int {
        withQueue(queue) { state, now in state.retryFailed(limit: max(1, limit), now: now) }
    }

    public func job(_ id: JobID) async throws -> JobRecord? {
        withState { locked, now in locked.queues[id.queue]?.stored(id, now: now)?.record }
    }

    public func jobs(queue: QueueName, state: JobState, cursor: String?, limit: Int) async throws -> JobPage {
        let limit = min(max(limit, 1), 1000)
        let offset = cursor.flatMap { Int($0) }.flatMap { (0...10_000_000).contains($0) ? $0 : nil } ?? 0
        return withState { locked, now in
            locked.queues[queue]?.list(state, offset: offset, limit: limit, now: now)
                ?? JobPage(jobs: [], nextCursor: nil)
        }
    }

    public func stats(_ queue: QueueName) async throws -> QueueStats {
        withState { locked, now in locked.queues[queue]?.stats(queue, now: now) ?? QueueStats(queue: queue) }
    }

    public func latency(_ queue: QueueName, minutes: Int?) async throws -> LatencyHistogram {
        let count = minutes.map { min(max($0, 1), JobLimits.throughputMinutes) }
        return withState { locked, now in (locked.queues[queue] ?? MemoryQueueState()).latency(minutes: count, now: now) }
    }

    public func throughput(_ queue: QueueName, minutes: Int) async throws -> [MinuteCount] {
        let count = min(max(minutes, 1), JobLimits.throughputMinutes)
        return withState { locked, now in
            (locked.queues[queue] ?? MemoryQueueState()).throughput(minutes: count, now: now)
        }
    }

    public func setPaused(_ queue: QueueName, _ paused: Bool) async throws {
        withState { locked, _ in
            locked.used.insert(queue)
            locked.update(queue) { state in
                state.paused = paused
                if !paused { state.wakes += 1 }
            }
        }
    }

    public func queues() async throws -> [QueueName] {
        withState { locked, _ in locked.used.sorted { $0.rawValue < $1.rawValue } }
    }

    public func limits(_ queue: QueueName) async throws -> [QueueLimit] {
        withState { locked, _ in
            (locked.queues[queue]?.limits ?? [:]).sorted { $0.key < $1.key }.map(\.value)
        }
    }

    public func setLimit(_ limit: JobLimit??, scope: LimitScope, queue: QueueName, declared: Bool) async throws {
        withState { locked, now in
            locked.used.insert(queue)
            locked.update(queue) { state in
                state.setLimit(limit, scope: scope, declared: declared, now: now)
                state.wakes += 1
            }
        }
    }

    public func reap(_ queue: QueueName, limit: Int) async throws -> ReapReport {
        let limit = limit < 0 ? Int.max : limit
        let cap = failedCap
        return withQueue(queue) { queue, now in queue.reap(limit: limit, failedCap: cap, now: now) }
    }
}

/// A caller of ``MemoryJobBroker/waitForWork(queues:timeout:)``.
struct MemoryWorkWaiter: Sendable {
    var queues: [QueueName]
    var continuation: CheckedContinuation<Void, Never>?
    /// A wake was handed to this waiter (it consumed one wake token).
    var woken = false
    /// The wait ended (timeout or cancellation): it takes no more wakes.
    var closed = false

    init(queues: [QueueName]) { self.queues = queues }
}

/// Everything ``MemoryJobBroker`` holds, behind its one lock.
struct MemoryBrokerState: Sendable {
    var queues: [QueueName: MemoryQueueState] = [:]
    /// Every queue used by an enqueue or a pause (the `queues` set).
    var used: Set<QueueName> = []
    /// Idempotency key hash → the first job id enqueued with it and when the reservation ends: a
    /// key belongs to one queue (`<prefix>:idemq:<hash>` in Redis).
    var keyQueues: [String: (id: JobID, until: Int64)] = [:]
    /// The size at which expired reservations are swept (amortised: it doubles with the live ones).
    var keyQueuesSweepAt = 1024
    var waiters: [UInt64: MemoryWorkWaiter] = [:]
    var lastWaiter: UInt64 = 0
    /// Continuations to resume once the lock is released.
    var resumptions: [CheckedContinuation<Void, Never>] = []

    /// Runs `body` on queue `name`'s state, then delivers the wakes it asked for.
    /// Reserves `request`'s idempotency key for its queue; returns the job id it was first
    /// reserved with (`nil` without a key). The id's queue is the key's.
    mutating func reserveKey(_ request: EnqueueRequest, now: Int64) -> JobID? {
        guard let key = request.idempotencyKey.map({ SHA256.hex($0) }) else { return nil }
        if let held = keyQueues[key], now < held.until { return held.id }
        let id = JobID.generate(queue: request.queue)
        keyQueues[key] = (id, now + max(1, request.idempotencyTTL.nanoseconds / 1_000_000))
        if keyQueues.count >= keyQueuesSweepAt {
            keyQueues = keyQueues.filter { now < $0.value.until }
            keyQueuesSweepAt = max(1024, keyQueues.count * 2)
        }
        return id
    }

    mutating func update<T>(_ name: QueueName, _ body: (inout MemoryQueueState) throws -> T) rethrows -> T {
        var queue = queues.removeValue(forKey: name) ?? MemoryQueueState()
        defer {
            let wakes = queue.wakes
            queue.wakes = 0
            queues[name] = queue
            for _ in 0..<wakes { wake(name) }
        }
        return try body(&queue)
    }

    /// Hands a wake to the longest-waiting caller on `name`, or keeps it as a token (at most 64),
    /// like `LPUSH` on the `wake` list that `BLPOP` pops.
    mutating func wake(_ name: QueueName) {
        let candidates = waiters.filter { !$0.value.woken && !$0.value.closed && $0.value.queues.contains(name) }
        if let id = candidates.keys.min() {
            waiters[id]?.woken = true
            if let continuation = waiters[id]?.continuation {
                waiters[id]?.continuation = nil
                resumptions.append(continuation)
            }
        } else {
            let tokens = queues[name]?.wakeTokens ?? 0
            queues[name, default: MemoryQueueState()].wakeTokens = min(64, tokens + 1)
        }
    }

    /// Takes a wake token from the first of `names` that has one.
    mutating func takeWakeToken(_ names: [QueueName]) -> Bool {
        for name in names where (queues[name]?.wakeTokens ?? 0) > 0 {
            queues[name]?.wakeTokens -= 1
            return true
        }
        return false
    }
}
