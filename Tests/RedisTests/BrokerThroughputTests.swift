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

@Suite("Broker contract: enqueue→start latency")
struct BrokerLatencyTests {
    @Test("first starts are counted, in the last minutes and since the queue began; a retry's start is not", arguments: BrokerKind.allCases)
    func firstStarts(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        #expect(try await broker.latency(.default, minutes: nil).total == 0)
        #expect(try await broker.latency(.default, minutes: 5).quantile(0.5) == nil)
        _ = try await broker.enqueue((0..<3).map { _ in contractRequest(maxAttempts: 3) })
        let jobs = try await broker.claim(queue: .default, limit: 3, worker: "w", lease: .seconds(30))
        #expect(jobs.count == 3)
        // Retried at once: its second start is not a wait from enqueue.
        #expect(try await broker.fail(jobs[0].lease, message: "again", retryAfter: .zero) == .retrying)
        let again = try await eventually(within: .seconds(20)) {
            guard let job = try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first
            else { throw WaitError("the retry is not due yet") }
            return job
        }
        #expect(again.attempt == 2)
        for histogram in [try await broker.latency(.default, minutes: nil), try await broker.latency(.default, minutes: 2)] {
            #expect(histogram.total == 3)
            #expect(histogram.counts.count == LatencyHistogram.boundsMilliseconds.count + 1)
            let median = try #require(histogram.quantile(0.5))
            #expect(median <= 30_000, "jobs claimed right after enqueue waited less than 30 s")
            #expect(histogram.sumMilliseconds >= 0 && histogram.sumMilliseconds < 3 * 30_000)
        }
        #expect(try await broker.latency(.default, minutes: 2).sumMilliseconds == 0, "the sum is kept only since the queue began")
        #expect(try await broker.latency("other", minutes: nil).total == 0)
    }

    @Test("quantiles are the bounds of the buckets that hold them")
    func quantiles() {
        var histogram = LatencyHistogram()
        for wait in [0, 1, 3, 3, 7, 400, 400, 400, 900, 400_000] as [Int64] { histogram.record(wait) }
        #expect(histogram.total == 10)
        #expect(histogram.quantile(0.1) == 1)
        #expect(histogram.quantile(0.5) == 10)
        #expect(histogram.quantile(0.8) == 500)
        #expect(histogram.quantile(0.9) == 1_000)
        #expect(histogram.quantile(0.99) == nil, "above the last bound")
        #expect(histogram.sumMilliseconds == 402_114)
        #expect(LatencyHistogram(fieldValues: histogram.counts + [Int(histogram.sumMilliseconds)]) == histogram)
    }
}
