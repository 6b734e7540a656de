import Broker
import Foundation
import TernCore
import Testing

@Suite("Broker contract: retrying finished jobs")
struct BrokerRetryTests {
    @Test("a failed job retried is queued as new, its error history kept", arguments: BrokerKind.allCases)
    func retryOne(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest(maxAttempts: 1)])[0]
        let job = try await claimOne(broker)
        #expect(try await broker.fail(job.lease, message: "boom", retryAfter: nil) == .failed)

        #expect(try await broker.retry(receipt.id) == .queued)
        let record = try #require(try await broker.job(receipt.id))
        #expect(record.state == .queued)
        #expect(record.attempts == 0)
        #expect(record.error == nil)
        #expect(record.finishedMilliseconds == nil)
        #expect(record.errors.map(\.message) == ["boom"])
        let stats = try await broker.stats(.default)
        #expect(stats.failed == 0)
        #expect(stats.pending == 1)

        let again = try await claimOne(broker)
        #expect(again.id == receipt.id)
        #expect(again.attempt == 1)
        #expect(try await broker.complete(again.lease, result: Data("2".utf8)))
        #expect(try await broker.job(receipt.id)?.state == .succeeded)
        // A job that has not finished, or succeeded, keeps its state; an unknown id is nil.
        #expect(try await broker.retry(receipt.id) == .succeeded)
        let queued = try await broker.enqueue([contractRequest()])[0]
        #expect(try await broker.retry(queued.id) == .queued)
        #expect(try await broker.stats(.default).pending == 1)
        #expect(try await broker.retry(JobID.generate(queue: .default)) == nil)
    }

    @Test("a cancelled job can be retried", arguments: BrokerKind.allCases)
    func retryCancelled(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest(timing: .after(.seconds(60)))])[0]
        #expect(try await broker.cancel(receipt.id) == .cancelled)
        #expect(try await broker.retry(receipt.id) == .queued)
        #expect(try await claimOne(broker).id == receipt.id)
    }

    @Test("retrying a queue's failed jobs requeues them oldest first, up to the limit", arguments: BrokerKind.allCases)
    func retryAllFailed(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipts = try await broker.enqueue(
            (0..<5).map { contractRequest(maxAttempts: 1, failedRetention: .seconds(3600 + $0)) })
        for job in try await broker.claim(queue: .default, limit: 5, worker: "w", lease: .seconds(30)) {
            #expect(try await broker.fail(job.lease, message: "no", retryAfter: nil) == .failed)
        }
        #expect(try await broker.retryFailed(.default, limit: 3) == 3)
        #expect(try await broker.stats(.default).failed == 2)
        #expect(try await broker.retryFailed(.default, limit: 100) == 2)
        #expect(try await broker.retryFailed(.default, limit: 100) == 0)
        let claimed = try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30))
        #expect(claimed.map(\.id) == receipts.map(\.id))
    }
}

@Suite("Broker contract: crashed processes")
struct BrokerCrashTests {
    @Test("a job whose process died is queued again at once without using an attempt, and fails at the crash limit", arguments: BrokerKind.allCases)
    func crashes(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest(maxAttempts: 5)])[0]
        for crash in 1...2 {
            let job = try await claimOne(broker)
            #expect(job.attempt == 1)
            #expect(try await broker.crashed(job.lease, reason: "signal 4", maxCrashes: 3, shared: false) == .queued)
            let record = try #require(try await broker.job(receipt.id))
            #expect(record.crashes == crash)
            #expect(record.state == .queued)
            #expect(record.attempts == 0)
            // The lease is gone: a late write from the dead process is stale.
            #expect(try await broker.complete(job.lease, result: Data("1".utf8)) == false)
        }
        let job = try await claimOne(broker)
        #expect(try await broker.crashed(job.lease, reason: "signal 4", maxCrashes: 3, shared: false) == .failed)
        let record = try #require(try await broker.job(receipt.id))
        #expect(record.state == .failed)
        #expect(record.error == "worker_crashed: signal 4")
        #expect(record.errors.count == 3)
        #expect(try await broker.crashed(job.lease, reason: "signal 4", maxCrashes: 3, shared: false) == nil)
    }

    @Test("a crash shared with other jobs charges none of them: each becomes a suspect, whose own crashes count", arguments: BrokerKind.allCases)
    func sharedCrash(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let receipt = try await broker.enqueue([contractRequest(maxAttempts: 5)])[0]
        let first = try await claimOne(broker)
        #expect(!first.suspect)
        #expect(try await broker.crashed(first.lease, reason: "signal 4", maxCrashes: 2, shared: true) == .queued)
        var record = try #require(try await broker.job(receipt.id))
        #expect(record.crashes == 0 && record.suspect && record.attempts == 0 && record.state == .queued)
        #expect(record.error?.hasPrefix("worker_crashed: signal 4 (the process ran other jobs too") == true)
        // A suspect is claimed as one, and from now on its crashes count, shared or not.
        let second = try await claimOne(broker)
        #expect(second.suspect)
        #expect(try await broker.crashed(second.lease, reason: "signal 11", maxCrashes: 2, shared: true) == .queued)
        let third = try await claimOne(broker)
        #expect(try await broker.crashed(third.lease, reason: "signal 11", maxCrashes: 2, shared: false) == .failed)
        record = try #require(try await broker.job(receipt.id))
        #expect(record.crashes == 2 && record.state == .failed && record.error == "worker_crashed: signal 11")
        #expect(record.errors.count == 3)
    }
}
