import Broker
import Foundation
import Tasks
import TernCore
import TernTesting
import Testing

extension HeavyProcessTests {
    @Suite("Workflows on real worker processes", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct WorkflowProcessTests {
        @Test("a chord of 1,000 members on 4 worker processes, one SIGKILLed mid-way: the callback runs once, with every output in order")
        func chordThroughAKill() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let waits = (0..<1000).map { 20 + $0 % 31 }
            var steps = try waits.map { WorkflowPlan.Step(request: try TernClient.request(Sleep.self, .init(ms: $0))) }
            steps.append(
                WorkflowPlan.Step(
                    request: try TernClient.request(Echo.self, .null), parents: Array(steps.indices), input: .outputs))
            let submission = try await environment.tern.submit(WorkflowPlan(kind: .chord, steps: steps))
            let callback = submission.final

            var workers = try (0..<4).map { _ in try WorkerBinary.start(environment, ["--concurrency", "4"]) }
            defer { for worker in workers where worker.isRunning { worker.terminate() } }
            try await eventually(within: .seconds(60)) {
                let stats = try await environment.broker.stats(.default)
                guard stats.succeeded >= 200 else { throw WaitError("\(stats.succeeded) members succeeded") }
            }
            let doomed = workers.removeFirst()
            kill(doomed.processIdentifier, SIGKILL)
            await waitForExit(doomed)
            #expect(try await environment.broker.job(callback)?.state == .waiting, "killed before the last member")

            let output = try await environment.tern.workflow(JSONValue.self, id: callback).result(timeout: .seconds(120))
            #expect(output == .array(waits.map { .object(["sleptMs": .number(Double($0))]) }))
            let record = try #require(try await environment.broker.job(callback))
            #expect(record.state == .succeeded && record.attempts == 1 && record.lostLeases == 0, "the callback ran once")
            let status = try await environment.tern.workflow(JSONValue.self, id: callback).status()
            #expect(status.state == .succeeded && status.jobs.count == 1001)
            #expect(try await environment.broker.stats(.default).waiting == 0)
            // Nothing is left to relay once the reapers have passed.
            try await eventually(within: .seconds(20)) {
                let left = try await environment.client.send(RedisCommand("ZCARD", environment.broker.keys.queueKey(.default, .relay))).int
                guard left == 0 else { throw WaitError("\(left ?? -1) relay entries left") }
            }
        }
    }
}
