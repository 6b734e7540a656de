import Broker
import Foundation
import Logging
import Synchronization
import TernCore
import Testing
import Worker

/// Records which jobs started, by test run.
private let starts = Mutex<[String: [Int]]>([:])

/// Records its input's number under its run, and returns at once.
private struct Mark: TernTask {
    struct Input: Codable, Sendable {
        var run: String
        var number: Int
    }
    typealias Output = Int
    static let name = "mark"
    func run(_ input: Input, context: JobContext) async throws -> Int {
        starts.withLock { $0[input.run, default: []].append(input.number) }
        return input.number
    }
}

/// The memory broker, with every `complete` held at a gate until ``open()``: a Redis slow to
/// answer the worker's reports. Every other call goes straight through.
private final class HeldReports: JobBroker {
    let inner = MemoryJobBroker()
    private let gate = Mutex<(open: Bool, held: Int, waiters: [CheckedContinuation<Void, Never>])>((false, 0, []))

    /// How many completions wait at the gate.
    var held: Int { gate.withLock { $0.held } }

    func open() {
        let waiters = gate.withLock { gate in
            gate.open = true
            defer { gate.waiters = [] }
            return gate.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func complete(_ lease: JobLease, result: Data) async throws -> Bool {
        await withCheckedContinuation { continuation in
            let passes = gate.withLock { gate in
                guard !gate.open else { return true }
                gate.held += 1
                gate.waiters.append(continuation)
                return false
            }
            if passes { continuation.resume() }
        }
        return try await inner.complete(lease, result: result)
    }

    func enqueue(_ requests: [EnqueueRequest]) async throws -> [EnqueueReceipt] { try await inner.enqueue(requests) }
    func claim(queue: QueueName, limit: Int, worker: String, lease: Duration) async throws -> [ClaimedJob] {
        try await inner.claim(queue: queue, limit: limit, worker: worker, lease: lease)
    }
    func nextDue(queues: [QueueName]) async throws -> Duration? { try await inner.nextDue(queues: queues) }
    func waitForWork(queues: [QueueName], timeout: Duration) async throws -> Bool {
        try await inner.waitForWork(queues: queues, timeout: timeout)
    }
    func heartbeat(_ leases: [JobLease], lease: Duration) async throws -> HeartbeatOutcome {
        try await inner.heartbeat(leases, lease: lease)
    }
    func fail(_ lease: JobLease, message: String, retryAfter: Duration?) async throws -> JobState? {
        try await inner.fail(lease, message: message, retryAfter: retryAfter)
    }
    func cancelled(_ lease: JobLease) async throws -> Bool { try await inner.cancelled(lease) }
    func release(_ leases: [JobLease]) async throws { try await inner.release(leases) }
    func crashed(_ lease: JobLease, reason: String, maxCrashes: Int, shared: Bool) async throws -> JobState? {
        try await inner.crashed(lease, reason: reason, maxCrashes: maxCrashes, shared: shared)
    }
    func progress(_ lease: JobLease, value: Double, message: String?) async throws -> Bool {
        try await inner.progress(lease, value: value, message: message)
    }
    func cancel(_ id: JobID) async throws -> JobState? { try await inner.cancel(id) }
    func retry(_ id: JobID) async throws -> JobState? { try await inner.retry(id) }
    func delete(_ id: JobID) async throws -> JobDeletion? { try await inner.delete(id) }
    func promote(_ id: JobID) async throws -> JobPromotion? { try await inner.promote(id) }
    func purge(_ queue: QueueName, state: JobState, limit: Int) async throws -> Int {
        try await inner.purge(queue, state: state, limit: limit)
    }
    func retryFailed(_ queue: QueueName, limit: Int) async throws -> Int { try await inner.retryFailed(queue, limit: limit) }
    func job(_ id: JobID) async throws -> JobRecord? { try await inner.job(id) }
    func jobs(queue: QueueName, state: JobState, cursor: String?, limit: Int) async throws -> JobPage {
        try await inner.jobs(queue: queue, state: state, cursor: cursor, limit: limit)
    }
    func stats(_ queue: QueueName) async throws -> QueueStats { try await inner.stats(queue) }
    func throughput(_ queue: QueueName, minutes: Int) async throws -> [MinuteCount] {
        try await inner.throughput(queue, minutes: minutes)
    }
    func latency(_ queue: QueueName, minutes: Int?) async throws -> LatencyHistogram {
        try await inner.latency(queue, minutes: minutes)
    }
    func setPaused(_ queue: QueueName, _ paused: Bool) async throws { try await inner.setPaused(queue, paused) }
    func queues() async throws -> [QueueName] { try await inner.queues() }
    func limits(_ queue: QueueName) async throws -> [QueueLimit] { try await inner.limits(queue) }
    func setLimit(_ limit: JobLimit??, scope: LimitScope, queue: QueueName, declared: Bool) async throws {
        try await inner.setLimit(limit, scope: scope, queue: queue, declared: declared)
    }
    func reap(_ queue: QueueName, limit: Int) async throws -> ReapReport { try await inner.reap(queue, limit: limit) }
}

@Suite("A job's slot while its outcome is reported")
struct ReportingSlotTests {
    /// Enqueues `jobs` `mark` jobs (numbered from 1) under a run of their own, and a worker of the
    /// `mark` task on `broker`; returns the run's name (its key in `starts`) and the worker.
    private func markJobs(_ jobs: Int, on broker: any JobBroker, configuration: WorkerConfiguration) async throws -> (String, JobWorker) {
        let run = UUID().uuidString
        let tern = TernClient(broker: broker)
        for number in 1...jobs { _ = try await tern.enqueue(Mark.self, Mark.Input(run: run, number: number)) }
        var registry = TaskRegistry()
        try registry.register(Mark.self)
        let worker = JobWorker(
            broker: broker, registry: registry, configuration: configuration,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        return (run, worker)
    }

    @Test("a finished task frees its slot while its outcome is reported; at most one concurrency's worth waits")
    func slotFreedBeforeReport() async throws {
        let broker = HeldReports()
        let (run, worker) = try await markJobs(3, on: broker, configuration: .forTests(concurrency: 1))
        let running = Task { try await worker.run() }
        defer { running.cancel() }

        // Concurrency 1: the second job starts while the first one's report waits at the gate.
        let deadline = ContinuousClock.now + .seconds(60)
        while broker.held < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(broker.held == 2)
        #expect(starts.withLock { $0[run] } == [1, 2])
        #expect(worker.busy == 0)
        // Two outcomes wait (two concurrencies' worth held in all): the third job does not start.
        try await Task.sleep(for: .milliseconds(300))
        #expect(starts.withLock { $0[run] } == [1, 2])
        #expect(try await broker.stats(.default).running == 2)

        broker.open()
        while try await broker.stats(.default).succeeded < 3 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try await broker.stats(.default).succeeded == 3)
        #expect(starts.withLock { $0[run] } == [1, 2, 3])
        worker.shutdown()
        try await running.value
    }

    @Test("a worker with maxJobs claims that many jobs in all, even with slots free")
    func maxJobs() async throws {
        let broker = MemoryJobBroker()
        var configuration = WorkerConfiguration.forTests(concurrency: 4)
        configuration.maxJobs = 2
        let (run, worker) = try await markJobs(5, on: broker, configuration: configuration)
        let running = Task { try await worker.run() }
        defer { running.cancel() }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await broker.stats(.default).succeeded < 2 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .milliseconds(300))
        let stats = try await broker.stats(.default)
        #expect(stats.succeeded == 2)
        #expect(stats.pending == 3)
        // The first two claimed, in either order: with 4 slots they run at once.
        #expect(starts.withLock { $0[run]?.sorted() } == [1, 2])
        worker.shutdown()
        try await running.value
    }
}
