import Broker
import Foundation
import TernCore
import Testing

@Suite("Broker contract: run a delayed job now")
struct BrokerPromoteTests {
    @Test("promote queues a scheduled or retrying job now, behind the jobs already queued; other states are left", arguments: BrokerKind.allCases)
    func promote(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        // A job retrying in an hour, one scheduled in an hour, then one queued.
        let retried = try await broker.enqueue([contractRequest()])[0].id
        let first = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
        #expect(try await broker.fail(first.lease, message: "later", retryAfter: .seconds(3600)) == .retrying)
        let scheduled = try await broker.enqueue([contractRequest(timing: .after(.seconds(3600)))])[0].id
        let queued = try await broker.enqueue([contractRequest()])[0].id
        let before = Int64(Date().timeIntervalSince1970 * 1000) - 60_000

        #expect(try await broker.promote(scheduled) == .promoted(from: .scheduled))
        let record = try #require(try await broker.job(scheduled))
        #expect(record.state == .queued)
        #expect((record.dueMilliseconds ?? 0) > before && (record.dueMilliseconds ?? 0) < before + 120_000, "due now, not in an hour")
        #expect(try await broker.promote(retried) == .promoted(from: .retrying))
        #expect(try await broker.promote(queued) == .notDelayed(.queued))
        #expect(try await broker.promote(scheduled) == .notDelayed(.queued), "promoting twice changes nothing")
        #expect(try await broker.promote(JobID.generate(queue: .default)) == nil)
        let stats = try await broker.stats(.default)
        #expect(stats.scheduled == 0 && stats.pending == 3)

        // In order: the job queued first, then the promoted ones in the order they were promoted.
        let claimed = try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30))
        #expect(claimed.map(\.id) == [queued, scheduled, retried])
        #expect(claimed.last?.attempt == 2)
        #expect(try await broker.promote(scheduled) == .notDelayed(.running))
    }
}
