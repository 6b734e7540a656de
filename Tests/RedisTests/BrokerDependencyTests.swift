import Broker
import Foundation
import TernCore
import TernTesting
import Testing

/// `n + 1`; fails for good on a negative input.
private struct Inc: TernTask {
    typealias Input = Int
    typealias Output = Int
    static let name = "dep.inc"
    func run(_ input: Int, context: JobContext) async throws -> Int { input + 1 }
}

/// Adds a list up.
private struct Sum: TernTask {
    typealias Input = [Int]
    typealias Output = Int
    static let name = "dep.sum"
    func run(_ input: [Int], context: JobContext) async throws -> Int { input.reduce(0, +) }
}

/// Counts the members that succeeded.
private struct CountOK: TernTask {
    typealias Input = [MemberOutcome<Int>]
    typealias Output = Int
    static let name = "dep.count-ok"
    func run(_ input: Input, context: JobContext) async throws -> Int {
        input.filter { if case .ok = $0 { true } else { false } }.count
    }
}

/// Records a batch's summary.
private struct Report: TernTask {
    typealias Input = BatchSummary
    typealias Output = BatchSummary
    static let name = "dep.report"
    func run(_ input: BatchSummary, context: JobContext) async throws -> BatchSummary { input }
}

/// Runs every claimable job of `queues` by hand, as a worker would: `dep.inc` adds 1 (a negative
/// input fails for good), `dep.sum` adds a list, others echo. Returns the jobs run, in order.
@discardableResult
private func drain(_ broker: any JobBroker, _ queues: [QueueName] = [.default]) async throws -> [ClaimedJob] {
    var ran: [ClaimedJob] = []
    while true {
        var claimed: [ClaimedJob] = []
        for queue in queues { claimed += try await broker.claim(queue: queue, limit: 100, worker: "w", lease: .seconds(30)) }
        if claimed.isEmpty { return ran }
        for job in claimed {
            ran.append(job)
            switch job.task {
            case Inc.name:
                let value = try JSONDecoder().decode(Int.self, from: job.input)
                if value < 0 {
                    _ = try await broker.fail(job.lease, message: "negative", retryAfter: nil)
                } else {
                    _ = try await broker.complete(job.lease, result: Data("\(value + 1)".utf8))
                }
            case Sum.name:
                let values = try JSONDecoder().decode([Int].self, from: job.input)
                _ = try await broker.complete(job.lease, result: Data("\(values.reduce(0, +))".utf8))
            default:
                _ = try await broker.complete(job.lease, result: job.input)
            }
        }
    }
}

@Suite("Broker contract: dependencies and workflows")
struct BrokerDependencyTests {
    @Test("a chain runs each step with the previous step's output, across queues", arguments: BrokerKind.allCases)
    func chain(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let tern = TernClient(broker: subject.broker)
        let handle = try await tern.enqueue(.chain(Inc.job(1), Inc.self, Inc.self).then(Inc.self, options: .init(queue: "other")))
        #expect(handle.jobs.count == 4 && handle.id == handle.jobs[3] && handle.id.queue == "other")
        var status = try await handle.status()
        #expect(status.kind == "chain" && status.state == .running)
        #expect(status.jobs.map(\.state) == [.queued, .waiting, .waiting, .waiting])
        #expect(status.jobs.map(\.id) == handle.jobs)
        #expect(status.current.map(\.id) == [handle.jobs[0]])
        #expect(try await subject.broker.stats(.default).waiting == 2)
        let ran = try await drain(subject.broker, [.default, "other"])
        #expect(ran.map { String(decoding: $0.input, as: UTF8.self) } == ["1", "2", "3", "4"])
        #expect(try await handle.result(timeout: .seconds(10)) == 5)
        status = try await handle.status()
        #expect(status.state == .succeeded && status.jobs.allSatisfy { $0.state == .succeeded })
        #expect(status.jobs[1].dependsOn == [handle.jobs[0]] && status.jobs[0].dependents == [handle.jobs[1]])
        #expect(status.final.inputFrom == "output")
    }

    @Test("a chord's callback gets the outputs in member order, however the members finish", arguments: BrokerKind.allCases)
    func chord(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let tern = TernClient(broker: broker)
        let handle = try await tern.enqueue(.chord((0..<100).map { Inc.job($0) }, then: Sum.self))
        #expect(try await handle.status().kind == "chord")
        let members = try await broker.claim(queue: .default, limit: 100, worker: "w", lease: .seconds(30))
        #expect(members.count == 100, "the callback waits")
        // All 100 finish at once, in reverse order, from 100 concurrent tasks.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for job in members.reversed() {
                group.addTask {
                    let value = try JSONDecoder().decode(Int.self, from: job.input)
                    #expect(try await broker.complete(job.lease, result: Data("\(value + 1)".utf8)))
                }
            }
            try await group.waitForAll()
        }
        let callbacks = try await broker.claim(queue: .default, limit: 100, worker: "w", lease: .seconds(30))
        #expect(callbacks.count == 1, "the callback is released exactly once")
        let input = try JSONDecoder().decode([Int].self, from: try #require(callbacks.first).input)
        #expect(input == Array(1...100))
        #expect(try await broker.complete(callbacks[0].lease, result: Data("\(input.reduce(0, +))".utf8)))
        #expect(try await handle.result(timeout: .seconds(10)) == 5050)
        #expect(try await handle.status().jobs.count == 101)
    }

    @Test("a group's result is its members' outputs; no task runs for it", arguments: BrokerKind.allCases)
    func group(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let tern = TernClient(broker: subject.broker)
        let handle = try await tern.enqueue(.group([Inc.job(10), Inc.job(20), Inc.job(30)]))
        let ran = try await drain(subject.broker)
        #expect(ran.count == 3 && ran.allSatisfy { $0.task == Inc.name })
        #expect(try await handle.result(timeout: .seconds(10)) == [11, 21, 31])
        let status = try await handle.status()
        #expect(status.kind == "group" && status.final.isJoin && status.final.task == "tern.join")
    }

    @Test("a job made to depend on one that has failed already is cancelled; retrying the failed one resumes it", arguments: BrokerKind.allCases)
    func dependsOnFailed(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let tern = TernClient(broker: broker)
        let parent = try await tern.enqueue(Inc.self, -1)
        try await drain(broker)
        #expect(try await parent.status().state == .failed)
        var options = TernClient.JobOptions()
        options.dependsOn = [parent.id]
        let after = try await tern.enqueue(Inc.self, 40, options: options)
        #expect(try await after.status().state == .cancelled)
        #expect(try await broker.retry(after.id) == .cancelled, "resumed by its dependency's retry, not its own")
        #expect(try await broker.retry(parent.id) == .queued)
        #expect(try await after.status().state == .waiting)
    }

    @Test("a job cancelled by its dependency and past its retention stays gone when that dependency is retried", arguments: BrokerKind.allCases)
    func reopenPastRetention(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let tern = TernClient(broker: broker)
        let parent = try await tern.enqueue(Inc.self, -1)
        try await drain(broker)
        var request = contractRequest(retention: .milliseconds(1))
        request.dependencies = JobDependencies(parents: [parent.id])
        let dependent = try await broker.enqueue([request])[0]
        #expect(dependent.state == .cancelled)
        try await Task.sleep(for: .milliseconds(20))
        #expect(try await broker.job(dependent.id) == nil)
        #expect(try await broker.retry(parent.id) == .queued)
        #expect(try await broker.job(dependent.id) == nil)
    }

    @Test("a failed step cancels the rest with its reason; retrying it resumes the chain", arguments: BrokerKind.allCases)
    func failureAndResume(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let tern = TernClient(broker: broker)
        let handle = try await tern.enqueue(.chain(Inc.job(-1), Inc.self, Inc.self))
        try await drain(broker)
        var status = try await handle.status()
        #expect(status.state == .failed)
        #expect(status.jobs.map(\.state) == [.failed, .cancelled, .cancelled])
        #expect(status.jobs[1].error == "dependency \(handle.jobs[0]) failed: negative")
        #expect(status.jobs[2].error == "dependency \(handle.jobs[1]) cancelled: dependency \(handle.jobs[0]) failed: negative")
        await #expect(throws: TernClientError.failed(handle.id, status.jobs[2].error!)) { try await handle.result(timeout: .seconds(5)) }
        // A step cancelled by its dependency is not retried by itself: the failed step is.
        #expect(try await broker.retry(handle.jobs[1]) == .cancelled)
        #expect(try await broker.retry(handle.jobs[0]) == .queued)
        status = try await handle.status()
        #expect(status.jobs.map(\.state) == [.queued, .waiting, .waiting])
        // It fails again (the input is still -1): the rest is cancelled again.
        try await drain(broker)
        #expect(try await handle.status().jobs.map(\.state) == [.failed, .cancelled, .cancelled])
    }

    @Test("an outcome delivered twice, or late and out of order, counts once: the callback is released once", arguments: [BrokerKind.redis, .cluster])
    func injectedInterleaving(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = try #require(subject.broker as? RedisJobBroker)
        let tern = TernClient(broker: broker)
        // Members on another queue than the callback: their outcomes travel through the relay, and
        // the test delivers them by hand, as two racing relays (or a worker and a reaper) would.
        let handle = try await tern.enqueue(.chord([Inc.job(1, options: .init(queue: "members")), Inc.job(2, options: .init(queue: "members"))], then: Sum.self))
        let base = broker.keys.base(handle.id.queue)
        func resolve(_ index: Int, _ output: String) async throws {
            _ = try await broker.client.send(RedisCommand("FCALL", "tern_resolve", 1, base, handle.id.rawValue, index, "o", output))
        }
        try await resolve(1, "3")
        try await resolve(1, "3")
        #expect(try await broker.job(handle.id)?.state == .waiting, "one member of two counted, twice")
        try await resolve(0, "2")
        try await resolve(0, "2")
        try await resolve(1, "3")
        #expect(try await broker.job(handle.id)?.state == .queued)
        #expect(try await broker.stats(.default).pending == 1, "queued once")
        let callback = try #require(try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30)).first)
        #expect(String(decoding: callback.input, as: UTF8.self) == "[2,3]")
        // The members' real completions arrive late: nothing changes.
        try await drain(broker, ["members"])
        #expect(try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30)).isEmpty)
        #expect(try await broker.job(handle.id)?.state == .running)
    }

    @Test("two members fail; retrying one does not release the callback while the other stays failed", arguments: BrokerKind.allCases)
    func twoFailures(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let tern = TernClient(broker: broker)
        let handle = try await tern.enqueue(.chord([Inc.job(-1), Inc.job(-2)], then: Sum.self))
        try await drain(broker)
        #expect(try await handle.status().jobs.map(\.state) == [.failed, .failed, .cancelled])
        // The first member again: it fails again, and meanwhile the callback is cancelled by the second.
        #expect(try await broker.retry(handle.jobs[0]) == .queued)
        let callback = try #require(try await broker.job(handle.id))
        #expect(callback.state == .cancelled && callback.error == "dependency \(handle.jobs[1]) failed: negative")
        try await drain(broker)
        #expect(try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30)).isEmpty, "the callback never ran")
        #expect(try await handle.status().state == .failed)
    }

    @Test("a chord that allows failures gets every outcome; a batch's callbacks run by its outcome", arguments: BrokerKind.allCases)
    func allowFailuresAndBatch(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let tern = TernClient(broker: broker)
        let chord = try await tern.enqueue(.chord([Inc.job(1), Inc.job(-1), Inc.job(3)], allowingFailures: CountOK.self))
        let batch = try await tern.enqueue(.batch([Inc.job(1), Inc.job(-5)]).onComplete(Report.self).onSuccess(Report.self))
        let ran = try await drain(broker)
        let callback = try #require(ran.first { $0.task == CountOK.name })
        let outcomes = try JSONDecoder().decode([MemberOutcome<Int>].self, from: callback.input)
        #expect(outcomes.count == 3)
        if case .ok(2) = outcomes[0], case .error(let message) = outcomes[1], case .ok(4) = outcomes[2] {
            #expect(message == "\(chord.jobs[1]) failed: negative")
        } else {
            Issue.record("unexpected outcomes \(String(decoding: callback.input, as: UTF8.self))")
        }
        #expect(try await batch.result(timeout: .seconds(10)) == BatchSummary(total: 2, succeeded: 1, failed: 1))
        let reports = ran.filter { $0.task == Report.name }
        #expect(reports.count == 1, "on_complete ran, on_success did not")
        #expect(try JSONDecoder().decode(BatchSummary.self, from: try #require(reports.first).input) == BatchSummary(total: 2, succeeded: 1, failed: 1))
        #expect(try await broker.job(batch.jobs[4])?.state == .cancelled)
    }

    @Test("dependsOn: finished, failed and unknown jobs; cancelling a workflow", arguments: BrokerKind.allCases)
    func dependsOn(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let done = try await broker.enqueue([contractRequest(input: "7")])[0]
        try await drain(broker)
        func dependent(_ parents: [JobID]) -> EnqueueRequest {
            var request = contractRequest(input: #""given""#)
            request.dependencies = JobDependencies(parents: parents)
            return request
        }
        let afterDone = try await broker.enqueue([dependent([done.id])])[0]
        #expect(afterDone.state == .queued, "a finished dependency releases it at once")
        #expect(try await broker.job(afterDone.id)?.input == Data(#""given""#.utf8))
        let unknown = JobID.generate(queue: .default)
        let afterUnknown = try await broker.enqueue([dependent([unknown])])[0]
        #expect(afterUnknown.state == .cancelled)
        #expect(try await broker.job(afterUnknown.id)?.error == "dependency \(unknown) gone")
        await #expect(throws: JobDependencyError.self) { try await broker.enqueue([dependent([])]) }

        let tern = TernClient(broker: broker)
        // From the typed client: a job with its own input that waits for two others.
        let first = try await tern.enqueue(Inc.self, 1)
        let second = try await tern.enqueue(Inc.self, 2)
        var options = TernClient.JobOptions()
        options.dependsOn = [first.id, second.id]
        let after = try await tern.enqueue(Inc.self, 40, options: options)
        #expect(try await after.status().state == .waiting)
        options.timing = .after(.seconds(1))
        await #expect(throws: TernClientError.self) { try await tern.enqueue(Inc.self, 1, options: options) }
        try await drain(broker)
        #expect(try await after.result(timeout: .seconds(10)) == 41)
        #expect(try await after.status().dependsOn == [first.id, second.id])

        let flow = try await tern.enqueue(.chain(Inc.job(1), Inc.self, Inc.self))
        #expect(try await flow.cancel() == 3)
        let status = try await flow.status()
        #expect(status.state == .cancelled && status.jobs.allSatisfy { $0.state == .cancelled })
        await #expect(throws: TernClientError.cancelled(flow.id)) { try await flow.result(timeout: .seconds(5)) }
    }
}
