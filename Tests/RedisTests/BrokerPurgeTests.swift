import Broker
import Foundation
import TernCore
import Testing

@Suite("Broker contract: purge")
struct BrokerPurgeTests {
    @Test("purge deletes the jobs of one state and no other, in batches", arguments: BrokerKind.allCases)
    func purgeStates(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        // 3 failed, 1 running, 2 retrying, 2 scheduled, 4 queued.
        _ = try await broker.enqueue((0..<6).map { _ in contractRequest(maxAttempts: 1) })
        let first = try await broker.claim(queue: .default, limit: 6, worker: "w", lease: .seconds(30))
        #expect(first.count == 6)
        for job in first.prefix(3) { #expect(try await broker.fail(job.lease, message: "x", retryAfter: nil) == .failed) }
        for job in first[3..<5] { #expect(try await broker.fail(job.lease, message: "x", retryAfter: .seconds(3600)) == .retrying) }
        let running = first[5]
        _ = try await broker.enqueue((0..<2).map { _ in contractRequest(timing: .after(.seconds(3600))) })
        let waiting = try await broker.enqueue((0..<4).map { _ in contractRequest() })

        #expect(try await broker.purge(.default, state: .failed, limit: 2) == 2)
        #expect(try await broker.purge(.default, state: .failed, limit: 1_000) == 1)
        #expect(try await broker.purge(.default, state: .failed, limit: 1_000) == 0)
        #expect(try await broker.purge(.default, state: .retrying, limit: 1_000) == 2)
        var stats = try await broker.stats(.default)
        #expect(stats.failed == 0 && stats.scheduled == 2 && stats.pending == 4 && stats.running == 1)
        #expect(try await broker.purge(.default, state: .scheduled, limit: 1_000) == 2)
        #expect(try await broker.purge(.default, state: .queued, limit: 1_000) == 4)
        stats = try await broker.stats(.default)
        #expect(stats.scheduled == 0 && stats.pending == 0 && stats.running == 1)
        #expect(try await broker.job(waiting[0].id) == nil, "a purged job is gone")
        #expect(try await broker.job(first[0].id) == nil)
        // The running job was left alone and still completes.
        #expect(try await broker.complete(running.lease, result: Data("null".utf8)))
        #expect(try await broker.purge(.default, state: .succeeded, limit: 10) == 1)
        #expect(try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30)).isEmpty)
    }

    @Test("the jobs waiting for a purged job learn that it is gone, on its queue and on another", arguments: BrokerKind.allCases)
    func purgeTellsDependents(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let parent = try await broker.enqueue([contractRequest()])[0]
        var dependents: [EnqueueReceipt] = []
        for queue in [QueueName.default, "other"] {
            var request = contractRequest(queue: queue)
            request.dependencies = JobDependencies(parents: [parent.id])
            dependents.append(try await broker.enqueue([request])[0])
        }
        #expect(dependents.map(\.state) == [.waiting, .waiting])
        #expect(try await broker.purge(.default, state: .queued, limit: 10) == 1)
        #expect(try await broker.job(parent.id) == nil)
        for dependent in dependents {
            let record = try await broker.job(dependent.id)
            #expect(record?.state == .cancelled && record?.error?.contains("\(parent.id) gone") == true, "\(String(describing: record?.error))")
        }

        // A finished job's dependents have its outcome: purging it tells them nothing new.
        let done = try await broker.enqueue([contractRequest()])[0]
        let pending = try await broker.enqueue([contractRequest(timing: .after(.seconds(3600)))])[0]
        var request = contractRequest()
        request.dependencies = JobDependencies(parents: [done.id, pending.id])
        let waiting = try await broker.enqueue([request])[0]
        #expect(waiting.state == .waiting)
        let job = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
        #expect(job.id == done.id)
        #expect(try await broker.complete(job.lease, result: Data("1".utf8)))
        #expect(try await broker.job(waiting.id)?.state == .waiting)
        #expect(try await broker.purge(.default, state: .succeeded, limit: 10) == 1)
        #expect(try await broker.job(waiting.id)?.state == .waiting)
    }

    @Test("delete removes one finished job before its retention, and leaves a job that has not finished", arguments: BrokerKind.allCases)
    func deleteOne(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        // succeeded, failed, running; a cancelled one and a queued one.
        _ = try await broker.enqueue((0..<3).map { _ in contractRequest(maxAttempts: 1) })
        let claimed = try await broker.claim(queue: .default, limit: 3, worker: "w", lease: .seconds(30))
        #expect(claimed.count == 3)
        #expect(try await broker.complete(claimed[0].lease, result: Data("1".utf8)))
        #expect(try await broker.fail(claimed[1].lease, message: "x", retryAfter: nil) == .failed)
        let running = claimed[2]
        let later = try await broker.enqueue((0..<2).map { _ in contractRequest() })
        #expect(try await broker.cancel(later[0].id) == .cancelled)
        let queued = later[1]

        for (id, state) in [(claimed[0].id, JobState.succeeded), (claimed[1].id, .failed), (later[0].id, .cancelled)] {
            #expect(try await broker.delete(id) == .deleted(state))
            #expect(try await broker.job(id) == nil, "a deleted job is gone")
            #expect(try await broker.delete(id) == nil, "deleting it again finds nothing")
        }
        let stats = try await broker.stats(.default)
        #expect(stats.succeeded == 0 && stats.failed == 0 && stats.cancelled == 0)
        #expect(try await broker.jobs(queue: .default, state: .succeeded, cursor: nil, limit: 10).jobs.isEmpty)

        // Not finished: left as it is.
        #expect(try await broker.delete(running.id) == .notFinished(.running))
        #expect(try await broker.delete(queued.id) == .notFinished(.queued))
        #expect(try await broker.complete(running.lease, result: Data("2".utf8)))
        #expect(try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30)).map(\.id) == [queued.id])
        #expect(try await broker.delete(JobID.generate(queue: .default)) == nil)
    }
}
