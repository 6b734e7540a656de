import Broker
import Foundation
import Synchronization
import TernCore
import TernTesting
import Testing

/// The brokers that must keep the ``JobBroker`` contract.
enum BrokerKind: String, CaseIterable, CustomStringConvertible {
    case memory, redis, cluster
    var description: String { rawValue }
}

/// A fresh broker of one kind, and how to stop what it runs on.
struct ContractBroker {
    let broker: any JobBroker
    let stop: @Sendable () -> Void

    /// A new broker; `nil` for Redis when redis-server is not installed outside CI (under `CI=true`,
    /// ``TestRedis/enabled`` is true, so a missing server fails the test instead).
    static func make(
        _ kind: BrokerKind, failedCap: Int = JobLimits.defaultFailedCap,
        failedRetention: Duration = JobLimits.defaultFailedRetention, caps: QueueCaps = QueueCaps()
    ) async throws -> ContractBroker? {
        switch kind {
        case .memory:
            return ContractBroker(broker: MemoryJobBroker(failedCap: failedCap, failedRetention: failedRetention, caps: caps), stop: {})
        case .redis:
            guard TestRedis.enabled else { return nil }
            let server = try await TestRedis.start()
            let client: RedisClient
            do {
                client = RedisClient(configuration: try TestRedis.configuration(server))
            } catch {
                server.stop()
                throw error
            }
            return try await redis(client, failedCap: failedCap, failedRetention: failedRetention, caps: caps) {
                client.close()
                server.stop()
            }
        case .cluster:
            // One cluster for the whole suite (each test has its own key prefix).
            guard TestRedis.enabled else { return nil }
            let client = RedisClient(configuration: try await TestCluster.shared.value.configuration())
            return try await redis(client, failedCap: failedCap, failedRetention: failedRetention, caps: caps) { client.close() }
        }
    }

    private static func redis(
        _ client: RedisClient, failedCap: Int, failedRetention: Duration, caps: QueueCaps, stop: @escaping @Sendable () -> Void
    ) async throws -> ContractBroker {
        do {
            let broker = try RedisJobBroker(
                client: client, prefix: "c" + String(UUID().uuidString.prefix(8)), failedCap: failedCap,
                failedRetention: failedRetention, caps: caps)
            try await broker.prepare()
            return ContractBroker(broker: broker, stop: stop)
        } catch {
            stop()
            throw error
        }
    }
}

/// A request for a job of a task no worker runs: these tests drive the broker by hand.
func contractRequest(
    queue: QueueName = .default, priority: Int = 5, maxAttempts: Int = 3, timing: EnqueueRequest.Timing = .now,
    expiresAfter: Duration? = nil, retention: Duration = .seconds(86_400), failedRetention: Duration? = nil,
    key: String? = nil, keyTTL: Duration = .seconds(86_400), input: String = "null"
) -> EnqueueRequest {
    let options = TaskOptions(
        queue: queue, priority: priority, maxAttempts: maxAttempts, resultRetention: retention,
        expiresAfter: expiresAfter, failedRetention: failedRetention)
    return EnqueueRequest(
        task: "contract.echo", input: Data(input.utf8), options: options, timing: timing, idempotencyKey: key,
        idempotencyTTL: keyTTL)
}

/// Claims the one job expected to be available.
func claimOne(
    _ broker: any JobBroker, queue: QueueName = .default, worker: String = "w", lease: Duration = .seconds(30)
) async throws -> ClaimedJob {
    let claimed = try await broker.claim(queue: queue, limit: 1, worker: worker, lease: lease)
    return try #require(claimed.first)
}

/// Claims one job of the default queue as soon as one is due (up to 20 s).
private func claimWhenDue(_ broker: any JobBroker, _ waiting: String) async throws -> ClaimedJob {
    try await eventually(within: .seconds(20)) {
        guard let job = try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first
        else { throw WaitError(waiting) }
        return job
    }
}

/// A clock the test moves by hand, in milliseconds since 1970.
private final class ManualClock: Sendable {
    private let time = Mutex<Int64>(1_700_000_000_000)
    var now: Int64 { time.withLock { $0 } }
    func advance(by milliseconds: Int64) { time.withLock { $0 += milliseconds } }
}

@Suite("Broker contract")
struct BrokerContractTests {
    @Test("enqueue, claim and complete: the receipt, the claim and the record", arguments: BrokerKind.allCases)
    func roundTrip(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest(input: #"{"n":1}"#)])[0]
        #expect(receipt.created)
        #expect(receipt.state == .queued)
        #expect(receipt.id.queue == .default)
        let queued = try #require(try await broker.job(receipt.id))
        #expect(queued.state == .queued)
        #expect(queued.task == "contract.echo")
        #expect(queued.input == Data(#"{"n":1}"#.utf8))
        #expect(queued.priority == 5)
        #expect(queued.attempts == 0)
        #expect(queued.maxAttempts == 3)
        #expect(queued.dueMilliseconds == queued.createdMilliseconds)
        #expect(queued.startedMilliseconds == nil)
        #expect(queued.worker == nil)

        let job = try await claimOne(broker, worker: "w1")
        #expect(job.id == receipt.id)
        #expect(job.task == "contract.echo")
        #expect(job.input == Data(#"{"n":1}"#.utf8))
        #expect(job.attempt == 1)
        #expect(job.maxAttempts == 3)
        #expect(job.lease.token == "w1/1/0")
        let running = try #require(try await broker.job(receipt.id))
        #expect(running.state == .running)
        #expect(running.attempts == 1)
        #expect(running.worker == "w1")
        #expect((running.startedMilliseconds ?? 0) >= running.createdMilliseconds)

        #expect(try await broker.complete(job.lease, result: Data(#"{"ok":true}"#.utf8)))
        let done = try #require(try await broker.job(receipt.id))
        #expect(done.state == .succeeded)
        #expect(done.result == Data(#"{"ok":true}"#.utf8))
        #expect((done.finishedMilliseconds ?? 0) >= (done.startedMilliseconds ?? .max))
        #expect(done.errors.isEmpty)
        #expect(done.error == nil)
        var stats = try await broker.stats(.default)
        #expect(stats.succeeded == 1)
        #expect(stats.pending == 0)
        #expect(stats.running == 0)
        #expect(stats.staleWrites == 0)

        // The same completion again (its answer was lost and the worker retried): done, not stale;
        // the first result stands. Another lease's completion is stale.
        #expect(try await broker.complete(job.lease, result: Data(#"{"ok":false}"#.utf8)))
        #expect(try await broker.job(receipt.id)?.result == Data(#"{"ok":true}"#.utf8))
        #expect(try await !broker.complete(JobLease(id: receipt.id, token: "w2/1/0"), result: Data("1".utf8)))
        stats = try await broker.stats(.default)
        #expect(stats.succeeded == 1 && stats.staleWrites == 1)
    }

    @Test("claims take higher priority first, FIFO among equals", arguments: BrokerKind.allCases)
    func priorityOrder(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let priorities = [2, 8, 5, 8, 2, 5]
        let receipts = try await broker.enqueue(priorities.map { contractRequest(priority: $0) })
        let expected = [1, 3, 2, 5, 0, 4].map { receipts[$0].id }
        let claimed = try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30))
        #expect(claimed.map(\.id) == expected)
        #expect(claimed.map(\.lease.token) == (0..<6).map { "w/1/\($0)" })
    }

    @Test("a paused queue hands out nothing until it is resumed", arguments: BrokerKind.allCases)
    func pause(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        try await broker.setPaused(.default, true)
        _ = try await broker.enqueue([contractRequest(), contractRequest()])
        #expect(try await broker.claim(queue: .default, limit: 5, worker: "w", lease: .seconds(30)).isEmpty)
        var stats = try await broker.stats(.default)
        #expect(stats.paused)
        #expect(stats.pending == 2)
        try await broker.setPaused(.default, false)
        #expect(try await broker.claim(queue: .default, limit: 5, worker: "w", lease: .seconds(30)).count == 2)
        stats = try await broker.stats(.default)
        #expect(!stats.paused)
        #expect(stats.running == 2)
    }

    @Test("a delayed job is scheduled, then claimable once due", arguments: BrokerKind.allCases)
    func delayed(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        // An hour away: no machine is slow enough to make it due before the claim that must miss it.
        let later = try await broker.enqueue([contractRequest(timing: .after(.seconds(3600)))])[0]
        #expect(later.state == .scheduled)
        #expect(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).isEmpty)
        #expect(try await broker.stats(.default).scheduled == 1)
        let due = try #require(try await broker.nextDue(queues: [.default]))
        #expect(due > .seconds(3000) && due <= .seconds(3600))
        // A job due soon is claimed once due, and not before.
        let receipt = try await broker.enqueue([contractRequest(timing: .after(.milliseconds(500)))])[0]
        #expect(receipt.state == .scheduled)
        #expect(try #require(try await broker.nextDue(queues: [.default])) <= .milliseconds(500))
        let job = try await claimWhenDue(broker, "the delayed job is not due yet")
        #expect(job.id == receipt.id)
        let record = try #require(try await broker.job(receipt.id))
        #expect(record.dueMilliseconds == record.createdMilliseconds + 500)
        #expect((record.startedMilliseconds ?? 0) >= record.createdMilliseconds + 500)
        #expect(try #require(try await broker.nextDue(queues: [.default])) > .seconds(3000))
    }

    @Test("a job not started before its deadline expires at claim time", arguments: BrokerKind.allCases)
    func expiry(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let expiring = try await broker.enqueue([contractRequest(expiresAfter: .milliseconds(100))])[0]
        let lasting = try await broker.enqueue([contractRequest()])[0]
        // Only time passing expires the job: there is nothing to wait on but the clock.
        try await Task.sleep(for: .milliseconds(250))
        let claimed = try await broker.claim(queue: .default, limit: 5, worker: "w", lease: .seconds(30))
        #expect(claimed.map(\.id) == [lasting.id])
        let record = try #require(try await broker.job(expiring.id))
        #expect(record.state == .expired)
        #expect(record.attempts == 0)
        #expect(try await broker.stats(.default).expired == 1)
    }

    @Test("one idempotency key makes one job while the key lives", arguments: BrokerKind.allCases)
    func idempotency(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let first = try await broker.enqueue([contractRequest(key: "order-42")])[0]
        let batch = try await broker.enqueue([contractRequest(key: "order-42"), contractRequest(key: "order-43")])
        #expect(first.created)
        #expect(!batch[0].created)
        #expect(batch[0].id == first.id)
        #expect(batch[0].state == .queued)
        #expect(batch[1].created)
        #expect(batch[1].id != first.id)
        #expect(try await broker.stats(.default).pending == 2)

        // A repeat reports the job's current state.
        let job = try await claimOne(broker)
        #expect(job.id == first.id)
        #expect(try await broker.complete(job.lease, result: Data("1".utf8)))
        let repeated = try await broker.enqueue([contractRequest(key: "order-42")])[0]
        #expect(repeated.id == first.id)
        #expect(!repeated.created)
        #expect(repeated.state == .succeeded)

        // Once the key's time to live has passed, the key makes a new job.
        let short = try await broker.enqueue([contractRequest(key: "short", keyTTL: .milliseconds(200))])[0]
        #expect(short.created)
        let fresh = try await eventually(within: .seconds(10)) {
            let receipt = try await broker.enqueue([contractRequest(key: "short", keyTTL: .milliseconds(200))])[0]
            guard receipt.created else { throw WaitError("the key still lives") }
            return receipt
        }
        #expect(fresh.id != short.id)
    }

    @Test("an idempotency key reused with another request is refused, naming the key's job", arguments: BrokerKind.allCases)
    func idempotencyFingerprint(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let first = try await broker.enqueue([contractRequest(key: "k", input: #"{"a":1,"b":[true,null]}"#)])[0]
        #expect(first.created && !first.keyReused)
        // The same request, keys in another order and a number written otherwise: the same job.
        let same = try await broker.enqueue([contractRequest(key: "k", input: #"{ "b": [true, null], "a": 1.0 }"#)])[0]
        #expect(same.id == first.id && !same.created && !same.keyReused && same.state == .queued)
        var otherTask = contractRequest(key: "k", input: #"{"a":1,"b":[true,null]}"#)
        otherTask.task = "contract.other"
        let others = [
            contractRequest(key: "k", input: #"{"a":2,"b":[true,null]}"#),
            otherTask,
            contractRequest(priority: 7, key: "k", input: #"{"a":1,"b":[true,null]}"#),
            contractRequest(maxAttempts: 9, key: "k", input: #"{"a":1,"b":[true,null]}"#),
            contractRequest(timing: .after(.seconds(60)), key: "k", input: #"{"a":1,"b":[true,null]}"#),
            contractRequest(queue: "elsewhere", key: "k", input: #"{"a":1,"b":[true,null]}"#),
        ]
        for (index, request) in others.enumerated() {
            let receipt = try await broker.enqueue([request])[0]
            #expect(receipt.keyReused && !receipt.created && receipt.id == first.id, "request \(index): \(receipt)")
        }
        // Per item in a batch: the repeat maps to the job, the changed one is refused, a new key is made.
        let batch = try await broker.enqueue([
            contractRequest(key: "k", input: #"{"a":1,"b":[true,null]}"#), contractRequest(key: "k", input: "3"),
            contractRequest(key: "new", input: "3"),
        ])
        #expect(batch.map(\.keyReused) == [false, true, false])
        #expect(batch.map(\.created) == [false, false, true])
        #expect(try await broker.stats(.default).pending == 2)
        #expect(try await broker.stats("elsewhere").pending == 0)

        // 100 concurrent identical requests make one job; 100 differing ones, one job and 99 refusals.
        let receipts = try await withThrowingTaskGroup(of: EnqueueReceipt.self) { group in
            for index in 0..<200 {
                group.addTask {
                    let input = index < 100 ? "0" : "\(index)"
                    return try await broker.enqueue([contractRequest(key: index < 100 ? "same" : "differ", input: input)])[0]
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(receipts.filter(\.created).count == 2)
        #expect(receipts.filter(\.keyReused).count == 99)
        #expect(Set(receipts.map(\.id)).count == 2)
    }

    @Test("a failure with a retry delay retries, its error recorded", arguments: BrokerKind.allCases)
    func retry(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        // A retry an hour away is not claimable (no machine is slow enough to make it due).
        let parked = try await broker.enqueue([contractRequest(maxAttempts: 3)])[0]
        let first = try await claimOne(broker)
        #expect(try await broker.fail(first.lease, message: "boom", retryAfter: .seconds(3600)) == .retrying)
        let retrying = try #require(try await broker.job(parked.id))
        #expect(retrying.state == .retrying)
        #expect(retrying.error == "boom")
        #expect(retrying.errors.map(\.attempt) == [1])
        #expect(retrying.errors.map(\.message) == ["boom"])
        #expect(retrying.dueMilliseconds == retrying.errors[0].atMilliseconds + 3_600_000)
        #expect(try await broker.stats(.default).scheduled == 1)
        #expect(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).isEmpty)
        // A retry due soon is claimed once due, as attempt 2, its first error kept.
        let receipt = try await broker.enqueue([contractRequest(maxAttempts: 3)])[0]
        let again = try await claimOne(broker)
        #expect(again.id == receipt.id)
        #expect(try await broker.fail(again.lease, message: "boom", retryAfter: .milliseconds(300)) == .retrying)
        let second = try await claimWhenDue(broker, "the retry is not due yet")
        #expect(second.id == receipt.id)
        #expect(second.attempt == 2)
        #expect(try await broker.job(receipt.id)?.errors.count == 1)
        #expect(try await broker.job(parked.id)?.state == .retrying)
    }

    @Test("a failure without a retry fails the job for good", arguments: BrokerKind.allCases)
    func failForGood(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest()])[0]
        let job = try await claimOne(broker)
        #expect(try await broker.fail(job.lease, message: "bad input", retryAfter: nil) == .failed)
        let record = try #require(try await broker.job(receipt.id))
        #expect(record.state == .failed)
        #expect(record.error == "bad input")
        #expect(record.finishedMilliseconds != nil)
        let stats = try await broker.stats(.default)
        #expect(stats.failed == 1)
        #expect(stats.running == 0)
        let page = try await broker.jobs(queue: .default, state: .failed, cursor: nil, limit: 10)
        #expect(page.jobs.map(\.id) == [receipt.id])
    }

    @Test("only the newest failed jobs up to the cap are kept", arguments: BrokerKind.allCases)
    func failedCap(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind, failedCap: 3) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        // Growing failed retentions make the drop times distinct even within one millisecond.
        let receipts = try await broker.enqueue(
            (0..<5).map { contractRequest(maxAttempts: 1, failedRetention: .seconds(3600 + $0)) })
        let claimed = try await broker.claim(queue: .default, limit: 5, worker: "w", lease: .seconds(30))
        #expect(claimed.map(\.id) == receipts.map(\.id))
        for job in claimed {
            #expect(try await broker.fail(job.lease, message: "no", retryAfter: nil) == .failed)
        }
        #expect(try await broker.stats(.default).failed == 3)
        for receipt in receipts.prefix(2) { #expect(try await broker.job(receipt.id) == nil) }
        for receipt in receipts.suffix(3) { #expect(try await broker.job(receipt.id)?.state == .failed) }
        let page = try await broker.jobs(queue: .default, state: .failed, cursor: nil, limit: 10)
        #expect(page.jobs.map(\.id) == receipts.suffix(3).map(\.id))
    }

    @Test("cancel: queued and scheduled jobs at once, finished ones keep their state", arguments: BrokerKind.allCases)
    func cancelWaiting(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let queued = try await broker.enqueue([contractRequest()])[0]
        let scheduled = try await broker.enqueue([contractRequest(timing: .after(.seconds(60)))])[0]
        #expect(try await broker.cancel(queued.id) == .cancelled)
        #expect(try await broker.cancel(scheduled.id) == .cancelled)
        #expect(try await broker.job(queued.id)?.state == .cancelled)
        #expect(try await broker.job(scheduled.id)?.state == .cancelled)
        #expect(try await broker.cancel(queued.id) == .cancelled)
        #expect(try await broker.claim(queue: .default, limit: 5, worker: "w", lease: .seconds(30)).isEmpty)
        let stats = try await broker.stats(.default)
        #expect(stats.cancelled == 2)
        #expect(stats.pending == 0)
        #expect(stats.scheduled == 0)

        let done = try await broker.enqueue([contractRequest()])[0]
        let job = try await claimOne(broker)
        #expect(try await broker.complete(job.lease, result: Data("1".utf8)))
        #expect(try await broker.cancel(done.id) == .succeeded)
        #expect(try await broker.cancel(JobID.generate(queue: .default)) == nil)
    }

    @Test("cancel a running job: its heartbeat learns it, the worker reports it", arguments: BrokerKind.allCases)
    func cancelRunning(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest()])[0]
        let job = try await claimOne(broker)
        #expect(try await broker.cancel(receipt.id) == .running)
        let asked = try #require(try await broker.job(receipt.id))
        #expect(asked.state == .running)
        #expect(asked.cancelRequested)
        let outcome = try await broker.heartbeat([job.lease], lease: .seconds(30))
        #expect(outcome.cancelRequested == [receipt.id])
        #expect(outcome.lost.isEmpty)
        #expect(try await broker.cancelled(job.lease))
        #expect(try await broker.job(receipt.id)?.state == .cancelled)
        #expect(try await broker.cancelled(job.lease) == false)
        let stats = try await broker.stats(.default)
        #expect(stats.cancelled == 1)
        #expect(stats.running == 0)
        #expect(stats.staleWrites == 1)
    }

    @Test("writes with a stale token are rejected and counted; its heartbeat loses it", arguments: BrokerKind.allCases)
    func staleToken(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest()])[0]
        let job = try await claimOne(broker)
        let stale = JobLease(id: job.id, token: "other/9/9")
        #expect(try await broker.complete(stale, result: Data("1".utf8)) == false)
        #expect(try await broker.progress(stale, value: 0.5, message: nil) == false)
        #expect(try await broker.fail(stale, message: "x", retryAfter: nil) == nil)
        #expect(try await broker.cancelled(stale) == false)
        let outcome = try await broker.heartbeat([stale, job.lease], lease: .seconds(30))
        #expect(outcome.lost == [job.id])
        #expect(outcome.cancelRequested.isEmpty)
        #expect(try await broker.job(receipt.id)?.state == .running)
        #expect(try await broker.stats(.default).staleWrites == 4)
        #expect(try await broker.complete(job.lease, result: Data("2".utf8)))
        #expect(try await broker.job(receipt.id)?.result == Data("2".utf8))
    }

    @Test("an expired lease is reaped: requeued, then failed when attempts run out", arguments: BrokerKind.allCases)
    func leaseExpiry(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest(maxAttempts: 2)])[0]
        let first = try await claimOne(broker, lease: .milliseconds(100))
        let requeue = try await eventually(within: .seconds(10)) {
            let report = try await broker.reap(.default, limit: 100)
            guard report.requeued == 1 else { throw WaitError("the lease has not expired yet") }
            return report
        }
        #expect(requeue.failed == 0)
        let requeued = try #require(try await broker.job(receipt.id))
        #expect(requeued.state == .queued)
        #expect(requeued.lostLeases == 1)
        #expect(requeued.error == "lease expired: the worker stopped reporting")
        #expect(requeued.errors.map(\.attempt) == [1])
        #expect(try await broker.heartbeat([first.lease], lease: .seconds(30)).lost == [receipt.id])
        #expect(try await broker.stats(.default).lostLeases == 1)

        let second = try await claimOne(broker, lease: .milliseconds(100))
        #expect(second.attempt == 2)
        _ = try await eventually(within: .seconds(10)) {
            let report = try await broker.reap(.default, limit: 100)
            guard report.failed == 1 else { throw WaitError("the lease has not expired yet") }
            return report
        }
        let failed = try #require(try await broker.job(receipt.id))
        #expect(failed.state == .failed)
        #expect(failed.attempts == 2)
        #expect(failed.lostLeases == 2)
        #expect(failed.errors.map(\.attempt) == [1, 2])
        let stats = try await broker.stats(.default)
        #expect(stats.failed == 1)
        #expect(stats.lostLeases == 2)
        #expect(stats.running == 0)
    }

    @Test("release returns a running job to the queue without using an attempt", arguments: BrokerKind.allCases)
    func release(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest()])[0]
        let job = try await claimOne(broker, worker: "w1")
        try await broker.release([job.lease])
        let record = try #require(try await broker.job(receipt.id))
        #expect(record.state == .queued)
        #expect(record.attempts == 0)
        #expect(record.worker == nil)
        let again = try await claimOne(broker, worker: "w2")
        #expect(again.id == receipt.id)
        #expect(again.attempt == 1)
        #expect(try await broker.complete(job.lease, result: Data("1".utf8)) == false)
        #expect(try await broker.stats(.default).staleWrites == 1)
    }

    @Test("a released job whose cancellation was asked is cancelled, not requeued", arguments: BrokerKind.allCases)
    func releaseCancelled(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest()])[0]
        let job = try await claimOne(broker)
        #expect(try await broker.cancel(receipt.id) == .running)
        try await broker.release([job.lease])
        #expect(try await broker.job(receipt.id)?.state == .cancelled)
        #expect(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).isEmpty)
    }

    @Test("a failed attempt of a job whose cancellation was asked cancels it instead of retrying", arguments: BrokerKind.allCases)
    func failCancelled(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest()])[0]
        let job = try await claimOne(broker)
        #expect(try await broker.cancel(receipt.id) == .running)
        #expect(try await broker.fail(job.lease, message: "killed at its hard time limit", retryAfter: .zero) == .cancelled)
        let record = try await broker.job(receipt.id)
        #expect(record?.state == .cancelled && record?.errors.map(\.message) == ["killed at its hard time limit"])
        #expect(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).isEmpty)
    }

    @Test("a queue at its cap refuses new jobs, atomically per job; idempotent repeats and other queues are not refused", arguments: BrokerKind.allCases)
    func queueCap(_ kind: BrokerKind) async throws {
        let images: QueueName = "images"
        guard let subject = try await ContractBroker.make(kind, caps: QueueCaps(maxPending: 3, byQueue: [images: 0])) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let first = try await broker.enqueue([contractRequest(key: "k1"), contractRequest(timing: .after(.seconds(60)))])
        #expect(first.map(\.refused) == [false, false])
        // One room left: the first of the next three is created, the others refused.
        let next = try await broker.enqueue([contractRequest(), contractRequest(), contractRequest()])
        #expect(next.map(\.refused) == [false, true, true])
        #expect(next.map(\.created) == [true, false, false])
        for receipt in next where receipt.refused { #expect(try await broker.job(receipt.id) == nil) }
        // A repeated idempotency key answers with its job; a queue with cap 0 has none.
        let repeated = try await broker.enqueue([contractRequest(key: "k1")])[0]
        #expect(!repeated.refused && repeated.id == first[0].id)
        #expect(try await broker.enqueue([contractRequest(queue: images), contractRequest(queue: images), contractRequest(queue: images), contractRequest(queue: images)]).allSatisfy { !$0.refused })
        #expect(try await broker.stats(.default).pending + (try await broker.stats(.default).scheduled) == 3)
        // A claim makes room.
        _ = try await claimOne(broker)
        #expect(try await broker.enqueue([contractRequest()])[0].refused == false)
    }

    @Test("a retry is never expired by the first attempt's deadline", arguments: BrokerKind.allCases)
    func retriesDoNotExpire(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        // A 5 s deadline: the first claim comes right after the enqueue, and the retry is due after it.
        let receipt = try await broker.enqueue([contractRequest(expiresAfter: .seconds(5))])[0]
        let first = try await claimOne(broker)
        #expect(try await broker.fail(first.lease, message: "again", retryAfter: .milliseconds(5_500)) == .retrying)
        let second = try await claimWhenDue(broker, "the retry is not due yet")
        #expect(second.id == receipt.id)
        #expect(second.attempt == 2)
    }

    @Test("progress is stored with the job", arguments: BrokerKind.allCases)
    func progress(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest()])[0]
        let job = try await claimOne(broker)
        #expect(try await broker.progress(job.lease, value: 0.5, message: "half"))
        var record = try #require(try await broker.job(receipt.id))
        #expect(record.progress == 0.5)
        #expect(record.progressMessage == "half")
        #expect(try await broker.progress(job.lease, value: 0.75, message: nil))
        record = try #require(try await broker.job(receipt.id))
        #expect(record.progress == 0.75)
        #expect(record.progressMessage == nil)
    }

    @Test("listing pages through queued jobs in claim order", arguments: BrokerKind.allCases)
    func listing(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let requests = (0..<25).map { contractRequest(priority: [2, 5, 8][$0 % 3], input: "\($0)") }
        let receipts = try await broker.enqueue(requests)
        var listed: [JobID] = []
        var sizes: [Int] = []
        var cursor: String?
        repeat {
            let page = try await broker.jobs(queue: .default, state: .queued, cursor: cursor, limit: 10)
            sizes.append(page.jobs.count)
            listed += page.jobs.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil && sizes.count < 5
        #expect(sizes == [10, 10, 5])
        #expect(Set(listed) == Set(receipts.map(\.id)))
        let claimed = try await broker.claim(queue: .default, limit: 25, worker: "w", lease: .seconds(30))
        #expect(claimed.map(\.id) == listed)
        let running = try await broker.jobs(queue: .default, state: .running, cursor: nil, limit: 100)
        #expect(running.jobs.count == 25)
        #expect(running.nextCursor == nil)
        #expect(try await broker.jobs(queue: .default, state: .queued, cursor: nil, limit: 10).jobs.isEmpty)
    }

    @Test("stats count jobs by state; queues lists the queues used", arguments: BrokerKind.allCases)
    func statsAndQueues(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        #expect(try await broker.stats("contract-unused") == QueueStats(queue: "contract-unused"))
        _ = try await broker.enqueue([
            contractRequest(queue: "contract-b"), contractRequest(queue: "contract-b"),
            contractRequest(queue: "contract-b", timing: .after(.seconds(60))),
        ])
        let job = try await claimOne(broker, queue: "contract-b")
        var stats = try await broker.stats("contract-b")
        #expect(stats.pending == 1)
        #expect(stats.scheduled == 1)
        #expect(stats.running == 1)
        #expect(stats.succeeded == 0)
        #expect(!stats.paused)
        #expect(stats.oldestPendingMilliseconds >= 0)
        #expect(try await broker.complete(job.lease, result: Data("1".utf8)))
        stats = try await broker.stats("contract-b")
        #expect(stats.succeeded == 1)
        #expect(stats.running == 0)

        _ = try await broker.enqueue([contractRequest(queue: "contract-a")])
        try await broker.setPaused("contract-c", true)
        #expect(try await broker.queues() == ["contract-a", "contract-b", "contract-c"])
    }

    @Test("a finished job is dropped after its retention", arguments: BrokerKind.allCases)
    func retention(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        // 5 s: long enough that a loaded machine cannot drop the job before the first look.
        let receipt = try await broker.enqueue([contractRequest(retention: .seconds(5))])[0]
        let job = try await claimOne(broker)
        #expect(try await broker.complete(job.lease, result: Data("1".utf8)))
        #expect(try await broker.job(receipt.id)?.state == .succeeded)
        try await eventually(within: .seconds(20)) {
            if try await broker.job(receipt.id) != nil { throw WaitError("the job is still kept") }
        }
        _ = try await broker.reap(.default, limit: 100)
        #expect(try await broker.stats(.default).succeeded == 0)
    }

    @Test("a failed job is kept for its failed retention (the task's, else the broker's), not its result retention", arguments: BrokerKind.allCases)
    func failedRetention(_ kind: BrokerKind) async throws {
        // The broker's default: 8 s, long enough that a loaded machine cannot drop the job before the looks below.
        guard let subject = try await ContractBroker.make(kind, failedRetention: .seconds(8)) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipts = try await broker.enqueue([
            contractRequest(maxAttempts: 1, retention: .milliseconds(1)),
            contractRequest(maxAttempts: 1, retention: .seconds(3600), failedRetention: .milliseconds(300)),
        ])
        let claimed = try await broker.claim(queue: .default, limit: 2, worker: "w", lease: .seconds(30))
        #expect(claimed.count == 2)
        for job in claimed { #expect(try await broker.fail(job.lease, message: "no", retryAfter: nil) == .failed) }
        // The task's own failed retention (300 ms) drops the second, though its result retention is an hour.
        try await eventually(within: .seconds(20)) {
            if try await broker.job(receipts[1].id) != nil { throw WaitError("the job with a 300 ms failed retention is still kept") }
        }
        // The first, with a result retention of 1 ms, is kept for the broker's failed retention.
        #expect(try await broker.job(receipts[0].id)?.state == .failed)
        try await eventually(within: .seconds(30)) {
            if try await broker.job(receipts[0].id) != nil { throw WaitError("the job is still kept after the broker's failed retention") }
        }
    }

    @Test("waiting for work: woken by an enqueue or a resume, else times out", arguments: BrokerKind.allCases)
    func waitForWork(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        #expect(try await broker.waitForWork(queues: [.default], timeout: .milliseconds(100)) == false)
        async let woken = broker.waitForWork(queues: [.default], timeout: .seconds(10))
        _ = try await broker.enqueue([contractRequest()])
        #expect(try await woken)
        #expect(try await broker.waitForWork(queues: [.default], timeout: .milliseconds(100)) == false)
        try await broker.setPaused(.default, true)
        try await broker.setPaused(.default, false)
        #expect(try await broker.waitForWork(queues: [.default], timeout: .seconds(10)))
    }

    // MARK: Memory broker only

    @Test("memory: an injected clock drives due times, leases, expiry and retention")
    func memoryClock() async throws {
        let clock = ManualClock()
        let broker = MemoryJobBroker(clock: { clock.now })
        let delayed = try await broker.enqueue([contractRequest(timing: .after(.seconds(60)))])[0]
        #expect(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(10)).isEmpty)
        #expect(try await broker.nextDue(queues: [.default]) == Duration.seconds(60))
        clock.advance(by: 60_000)
        let job = try await claimOne(broker, lease: .seconds(10))
        #expect(job.id == delayed.id)
        clock.advance(by: 9_999)
        #expect(try await broker.reap(.default, limit: 10).requeued == 0)
        clock.advance(by: 2)
        #expect(try await broker.reap(.default, limit: 10).requeued == 1)

        let expiring = try await broker.enqueue([contractRequest(queue: "contract-x", expiresAfter: .seconds(1))])[0]
        clock.advance(by: 1_001)
        #expect(try await broker.claim(queue: "contract-x", limit: 1, worker: "w", lease: .seconds(10)).isEmpty)
        #expect(try await broker.job(expiring.id)?.state == .expired)

        let kept = try await broker.enqueue([contractRequest(queue: "contract-y", retention: .seconds(1))])[0]
        let running = try await claimOne(broker, queue: "contract-y")
        #expect(try await broker.complete(running.lease, result: Data("1".utf8)))
        clock.advance(by: 999)
        #expect(try await broker.job(kept.id)?.state == .succeeded)
        clock.advance(by: 1)
        #expect(try await broker.job(kept.id) == nil)
        #expect(try await broker.stats("contract-y").succeeded == 1)
        _ = try await broker.reap("contract-y", limit: 10)
        #expect(try await broker.stats("contract-y").succeeded == 0)

        // A failed job is kept 7 days by default, whatever its result retention.
        let failing = try await broker.enqueue([contractRequest(queue: "contract-z", maxAttempts: 1, retention: .seconds(1))])[0]
        let attempt = try await claimOne(broker, queue: "contract-z")
        #expect(try await broker.fail(attempt.lease, message: "no", retryAfter: nil) == .failed)
        clock.advance(by: 7 * 86_400_000 - 1)
        #expect(try await broker.job(failing.id)?.state == .failed)
        clock.advance(by: 1)
        #expect(try await broker.job(failing.id) == nil)
    }

    @Test("memory: a cancelled wait for work ends at once")
    func memoryWaitCancellation() async throws {
        let broker = MemoryJobBroker()
        // A wait of an hour: ending within the bound shows the cancellation ended it. The time is
        // mostly this process's scheduling (the parallel stage keeps its pool busy: 2.3 s seen).
        let waiting = Task { try await broker.waitForWork(queues: [.default], timeout: .seconds(3_600)) }
        waiting.cancel()
        let started = ContinuousClock.now
        let woken = try await waiting.value
        #expect(woken == false)
        recordTiming("a cancelled wait for work ends", ContinuousClock.now - started, bound: .seconds(30))
        // The cancelled waiter took no wake: the next enqueue's wake is still there.
        _ = try await broker.enqueue([contractRequest()])
        #expect(try await broker.waitForWork(queues: [.default], timeout: .milliseconds(100)))
    }
}
