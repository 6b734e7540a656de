import Broker
import Foundation
import TernCore
import TernTesting
import Testing

/// A request of the contract task with a unique policy.
private func uniqueRequest(
    _ policy: UniquePolicy, input: String = #"{"customer":1,"page":1}"#, queue: QueueName = .default, maxAttempts: Int = 3
) -> EnqueueRequest {
    var request = contractRequest(queue: queue, maxAttempts: maxAttempts, input: input)
    request.unique = UniqueLock(key: policy.key(task: request.task, input: request.input), mode: policy.mode)
    return request
}

@Suite("Broker contract: unique jobs")
struct BrokerUniqueTests {
    @Test("while active: a held key answers its job, any finish releases it", arguments: BrokerKind.allCases)
    func whileActive(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let policy = UniquePolicy.whileActive.keyed(by: "customer")
        let first = try await broker.enqueue([uniqueRequest(policy)])[0]
        #expect(first.created && !first.duplicate)
        // Another page of the same customer is the same key; another customer is not.
        let again = try await broker.enqueue([uniqueRequest(policy, input: #"{"page":2,"customer":1}"#)])[0]
        #expect(!again.created && again.duplicate && again.id == first.id && again.state == .queued)
        let other = try await broker.enqueue([uniqueRequest(policy, input: #"{"customer":2}"#)])[0]
        #expect(other.created)
        #expect(try await broker.cancel(other.id) == .cancelled)
        let record = try #require(try await broker.job(first.id))
        #expect(record.uniqueMode == "while_active")
        #expect(record.uniqueKey == policy.key(task: "contract.echo", input: Data(#"{"customer":1}"#.utf8)))
        #expect(record.uniqueKey?.count == 32)

        // Running still holds it; succeeding releases it.
        let running = try await claimOne(broker)
        #expect(running.id == first.id)
        #expect(try await broker.enqueue([uniqueRequest(policy)])[0].duplicate)
        #expect(try await broker.complete(running.lease, result: Data("1".utf8)))
        let second = try await broker.enqueue([uniqueRequest(policy)])[0]
        #expect(second.created && second.id != first.id)

        // Failing for good releases it.
        let secondRun = try await claimOne(broker)
        #expect(secondRun.id == second.id)
        #expect(try await broker.fail(secondRun.lease, message: "boom", retryAfter: nil) == .failed)
        let third = try await broker.enqueue([uniqueRequest(policy)])[0]
        #expect(third.created)

        // Cancelling a queued job releases it.
        #expect(try await broker.cancel(third.id) == .cancelled)
        let fourth = try await broker.enqueue([uniqueRequest(policy)])[0]
        #expect(fourth.created)

        // Retrying the failed job while the fourth holds the key: the retry happens, the key stays
        // with the fourth; once the fourth is purged, a retried job takes the key back.
        #expect(try await broker.retry(second.id) == .queued)
        #expect(try await broker.enqueue([uniqueRequest(policy)])[0].id == fourth.id)
        #expect(try await broker.purge(.default, state: .queued, limit: 100) == 2)
        let fifth = try await broker.enqueue([uniqueRequest(policy)])[0]
        #expect(fifth.created, "a purged job's key is free")
        #expect(try await broker.cancel(fifth.id) == .cancelled)
        #expect(try await broker.retry(fifth.id) == .queued)
        let sixth = try await broker.enqueue([uniqueRequest(policy)])[0]
        #expect(sixth.duplicate && sixth.id == fifth.id, "a retried job takes its free key back")
    }

    @Test("while active: a lease lost for good releases the key; a retrying job keeps it", arguments: BrokerKind.allCases)
    func leaseLost(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let policy = UniquePolicy.whileActive
        let first = try await broker.enqueue([uniqueRequest(policy, maxAttempts: 2)])[0]
        let run = try await claimOne(broker)
        #expect(try await broker.fail(run.lease, message: "again", retryAfter: .seconds(3600)) == .retrying)
        #expect(try await broker.enqueue([uniqueRequest(policy, maxAttempts: 2)])[0].id == first.id)
        #expect(try await broker.cancel(first.id) == .cancelled)

        let lone = try await broker.enqueue([uniqueRequest(policy, maxAttempts: 1)])[0]
        #expect(lone.created)
        _ = try await claimOne(broker, lease: .milliseconds(100))
        _ = try await eventually(within: .seconds(10)) {
            let report = try await broker.reap(.default, limit: 100)
            guard report.failed == 1 else { throw WaitError("the lease has not expired yet") }
            return report
        }
        #expect(try await broker.job(lone.id)?.state == .failed)
        #expect(try await broker.enqueue([uniqueRequest(policy, maxAttempts: 1)])[0].created)
    }

    @Test("until: one job per key per window from its enqueue, whatever the job does", arguments: BrokerKind.allCases)
    func until(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let window = Duration.seconds(3)
        let policy = UniquePolicy.until(window)
        let started = ContinuousClock.now
        let first = try await broker.enqueue([uniqueRequest(policy)])[0]
        #expect(first.created)
        let run = try await claimOne(broker)
        #expect(try await broker.complete(run.lease, result: Data("1".utf8)))
        let again = try await broker.enqueue([uniqueRequest(policy)])[0]
        // (On a machine so loaded that these steps outlast the window, the key may be free already.)
        if ContinuousClock.now - started < window {
            #expect(again.duplicate && again.id == first.id && again.state == .succeeded, "the window outlives the job")
        }
        let next = try await eventually(within: .seconds(20)) {
            let receipt = try await broker.enqueue([uniqueRequest(policy)])[0]
            guard receipt.created else { throw WaitError("the window has not passed yet") }
            return receipt
        }
        #expect(next.id != first.id)
        #expect(try await broker.job(next.id)?.uniqueMode == "until")
    }

    @Test("debounce: a waiting job takes the last input and a new due time; a started one does not", arguments: BrokerKind.allCases)
    func debounce(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let long = UniquePolicy.debounce(.seconds(3600)).keyed(by: "customer")
        let first = try await broker.enqueue([uniqueRequest(long, input: #"{"customer":1,"n":1}"#)])[0]
        #expect(first.created && first.state == .scheduled)
        let due = try #require(try await broker.job(first.id)?.dueMilliseconds)
        let second = try await broker.enqueue([uniqueRequest(long, input: #"{"customer":1,"n":2}"#)])[0]
        #expect(!second.created && second.debounced && second.id == first.id && second.state == .scheduled)
        let record = try #require(try await broker.job(first.id))
        #expect(String(decoding: record.input, as: UTF8.self) == #"{"customer":1,"n":2}"#)
        #expect((record.dueMilliseconds ?? 0) >= due)
        #expect(try await broker.stats(.default).scheduled == 1)

        // A short window: the job runs with the last input, and the next enqueue makes a new job.
        let short = UniquePolicy.debounce(.milliseconds(200)).keyed(by: "customer")
        let a = try await broker.enqueue([uniqueRequest(short, input: #"{"customer":2,"n":1}"#)])[0]
        let b = try await broker.enqueue([uniqueRequest(short, input: #"{"customer":2,"n":2}"#)])[0]
        #expect(a.created && b.debounced && b.id == a.id)
        let run = try await eventually(within: .seconds(20)) {
            guard let job = try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first
            else { throw WaitError("the debounced job is not due yet") }
            return job
        }
        #expect(run.id == a.id)
        #expect(String(decoding: run.input, as: UTF8.self) == #"{"customer":2,"n":2}"#)
        let c = try await broker.enqueue([uniqueRequest(short, input: #"{"customer":2,"n":3}"#)])[0]
        #expect(c.created && c.id != a.id && c.state == .scheduled)
    }

    @Test("100 concurrent enqueues of one key make one job; a batch repeating a key makes one", arguments: BrokerKind.allCases)
    func concurrent(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let policy = UniquePolicy.whileActive
        let receipts = try await withThrowingTaskGroup(of: EnqueueReceipt.self) { group in
            for _ in 0..<100 { group.addTask { try await broker.enqueue([uniqueRequest(policy)])[0] } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(receipts.filter(\.created).count == 1)
        #expect(receipts.filter(\.duplicate).count == 99)
        #expect(Set(receipts.map(\.id)).count == 1)
        #expect(try await broker.stats(.default).pending == 1)

        let batch = try await broker.enqueue([
            uniqueRequest(policy, input: #"{"x":1}"#), uniqueRequest(policy, input: #"{"x":1}"#),
            uniqueRequest(policy, input: #"{"x":2}"#),
        ])
        #expect(batch.map(\.created) == [true, false, true])
        #expect(batch[1].duplicate && batch[1].id == batch[0].id)
    }

    @Test("a duplicate is not refused by a full queue; keys are per queue", arguments: BrokerKind.allCases)
    func capsAndQueues(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind, caps: QueueCaps(maxPending: 1)) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let policy = UniquePolicy.whileActive
        let first = try await broker.enqueue([uniqueRequest(policy)])[0]
        let again = try await broker.enqueue([uniqueRequest(policy)])[0]
        #expect(first.created && again.duplicate && !again.refused)
        #expect(try await broker.enqueue([uniqueRequest(policy, input: "2")])[0].refused)
        let elsewhere = try await broker.enqueue([uniqueRequest(policy, queue: "other")])[0]
        #expect(elsewhere.created && elsewhere.id != first.id)
    }
}
