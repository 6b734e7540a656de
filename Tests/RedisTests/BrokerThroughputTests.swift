import Broker
import Foundation
import TernCore
import Testing

@Suite("Broker contract: jobs finished per minute")
struct BrokerThroughputTests {
    @Test("successes and final failures are counted per minute; retries, cancels and other queues are not", arguments: BrokerKind.allCases)
    func perMinute(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        _ = try await broker.enqueue((0..<5).map { _ in contractRequest(maxAttempts: 1) })
        _ = try await broker.enqueue([contractRequest(queue: "other")])
        let jobs = try await broker.claim(queue: .default, limit: 5, worker: "w", lease: .seconds(30))
        #expect(jobs.count == 5)
        for job in jobs.prefix(2) { #expect(try await broker.complete(job.lease, result: Data("null".utf8))) }
        #expect(try await broker.fail(jobs[2].lease, message: "for good", retryAfter: nil) == .failed)
        #expect(try await broker.fail(jobs[3].lease, message: "again", retryAfter: .seconds(60)) == .retrying)
        #expect(try await broker.cancel(jobs[4].id) == .running)
        #expect(try await broker.cancelled(jobs[4].lease))
        let other = try await claimOne(broker, queue: "other")
        #expect(try await broker.complete(other.lease, result: Data("null".utf8)))

        // The minute may turn during the test: add up the last two.
        let minutes = try await broker.throughput(.default, minutes: 2)
        #expect(minutes.count == 2)
        #expect(minutes.map(\.succeeded).reduce(0, +) == 2)
        #expect(minutes.map(\.failed).reduce(0, +) == 1)
        #expect(minutes[1].minuteMilliseconds - minutes[0].minuteMilliseconds == 60_000)
        #expect(minutes[1].minuteMilliseconds % 60_000 == 0)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(abs(minutes[1].minuteMilliseconds - now) < 5 * 60_000, "the current minute comes last")

        #expect(try await broker.throughput(.default, minutes: 1_000).count == JobLimits.throughputMinutes)
        #expect(try await broker.throughput(.default, minutes: 0).count == 1)
        #expect(try await broker.throughput("never-used", minutes: 3).allSatisfy { $0.succeeded == 0 && $0.failed == 0 })
    }
}
