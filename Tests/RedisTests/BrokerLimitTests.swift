import Broker
import Foundation
import TernCore
import Testing

/// A request of the contract task with limit key `key`.
private func keyed(_ key: String?, queue: QueueName = .default) -> EnqueueRequest {
    var request = contractRequest(queue: queue)
    request.limitKey = key
    return request
}

/// Claims what the broker hands out now, up to 100 jobs.
private func claimAll(_ broker: any JobBroker, lease: Duration = .seconds(30)) async throws -> [ClaimedJob] {
    try await broker.claim(queue: .default, limit: 100, worker: "w", lease: lease)
}

@Suite("Broker contract: rate and concurrency limits")
struct BrokerLimitTests {
    @Test("concurrency: at most N run; every way out of running gives the slot to the next held-back job, in order", arguments: BrokerKind.allCases)
    func concurrency(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        try await broker.setLimit(.some(.concurrency(2)), scope: .task("contract.echo"), queue: .default, declared: true)
        let ids = try await broker.enqueue((0..<6).map { _ in contractRequest() }).map(\.id)
        let first = try await claimAll(broker)
        #expect(first.map(\.id) == Array(ids[0..<2]))
        var stats = try await broker.stats(.default)
        #expect(stats.running == 2 && stats.throttled == 4 && stats.pending == 0)
        #expect(try await broker.job(ids[2])?.throttled == true)
        #expect(try await broker.job(ids[2])?.state == .queued, "held back, not failed, no attempt used")
        #expect(try await claimAll(broker).isEmpty)

        // Completing gives the slot to the oldest held-back job; a retry gives one too.
        #expect(try await broker.complete(first[0].lease, result: Data("1".utf8)))
        let second = try await claimAll(broker)
        #expect(second.map(\.id) == [ids[2]] && second[0].attempt == 1)
        #expect(try await broker.fail(first[1].lease, message: "x", retryAfter: .seconds(3600)) == .retrying)
        // Cancelling a held-back job takes it out of line.
        #expect(try await broker.cancel(ids[3]) == .cancelled)
        let third = try await claimAll(broker, lease: .milliseconds(300))
        #expect(third.map(\.id) == [ids[4]])
        stats = try await broker.stats(.default)
        #expect(stats.running == 2 && stats.throttled == 1)

        // A lease lost for good gives its slot back when it is reaped.
        try await Task.sleep(for: .milliseconds(400))
        _ = try await broker.reap(.default, limit: 100)
        let fourth = try await claimAll(broker)
        #expect(Set(fourth.map(\.id)) == [ids[5]] || Set(fourth.map(\.id)) == [ids[4]], "the reaped job and the last one share the slot")
        #expect(try await broker.stats(.default).running == 2)
    }

    @Test("deleting a queue's last limit lets every job it held back go", arguments: BrokerKind.allCases)
    func lastLimitDeleted(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        try await broker.setLimit(.some(.concurrency(1)), scope: .queue, queue: .default, declared: false)
        let ids = try await broker.enqueue((0..<3).map { _ in contractRequest() }).map(\.id)
        #expect(try await claimAll(broker).map(\.id) == [ids[0]])
        #expect(try await broker.stats(.default).throttled == 2)
        try await broker.setLimit(nil, scope: .queue, queue: .default, declared: false)
        #expect(try await broker.limits(.default).isEmpty)
        #expect(Set(try await claimAll(broker).map(\.id)) == Set(ids[1...]))
        #expect(try await broker.stats(.default).throttled == 0)
    }

    @Test("a per-key rate holds back one hot key without blocking the others; an operator's setting wins and applies at once", arguments: BrokerKind.allCases)
    func perKeyRate(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        try await broker.setLimit(
            .some(JobLimit.rate(1, per: .seconds(3600)).keyed(by: "customer")), scope: .perKey("contract.echo"), queue: .default,
            declared: true)
        let hot = try await broker.enqueue((0..<3).map { _ in keyed("hot") }).map(\.id)
        let others = try await broker.enqueue(["a", "b", "c"].map { keyed($0) } + [keyed(nil)]).map(\.id)
        let claimed = try await claimAll(broker)
        #expect(Set(claimed.map(\.id)) == Set([hot[0]] + others), "every other key, and jobs without a key, run at once")
        #expect(try await broker.stats(.default).throttled == 2)
        #expect(try await claimAll(broker).isEmpty)

        let limits = try await broker.limits(.default)
        #expect(limits.count == 1 && limits[0].scope == .perKey("contract.echo") && limits[0].declared?.rate?.count == 1)
        // The operator lifts it: the held-back jobs run, in order.
        try await broker.setLimit(.some(nil), scope: .perKey("contract.echo"), queue: .default, declared: false)
        #expect(try await broker.limits(.default)[0].effective == nil)
        let released = try await claimAll(broker)
        #expect(released.map(\.id) == [hot[1], hot[2]], "both at once, in order")
        #expect(try await broker.stats(.default).throttled == 0)
        // Removing the operator's setting restores the declared limit.
        try await broker.setLimit(nil, scope: .perKey("contract.echo"), queue: .default, declared: false)
        #expect(try await broker.limits(.default)[0].effective?.rate?.count == 1)
    }

    @Test("a queue's rate with a burst: that many start at once, the rest wait their turn", arguments: BrokerKind.allCases)
    func queueRate(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        try await broker.setLimit(.some(.rate(3, per: .seconds(3), burst: 2)), scope: .queue, queue: .default, declared: false)
        let ids = try await broker.enqueue((0..<5).map { _ in contractRequest() }).map(\.id)
        #expect(try await claimAll(broker).map(\.id) == Array(ids[0..<2]))
        // One per second after the burst: the third within about a second.
        let third = try await eventually(within: .seconds(10)) {
            let claimed = try await claimAll(broker)
            guard !claimed.isEmpty else { throw WaitError("the third job has not started yet") }
            return claimed
        }
        #expect(third.map(\.id) == [ids[2]])
    }
}
