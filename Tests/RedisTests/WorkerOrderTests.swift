import Broker
import Foundation
import Logging
import Tasks
import TernCore
import Testing
import Worker

private let quiet = Logger(label: "test.worker", factory: { _ in SwiftLogNoOpLogHandler() })

@Suite("Orders to a worker: quiet, resume, stop", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct WorkerOrderTests {
    @Test("a quiet worker finishes its running job and claims nothing; resumed it claims again; stopped it exits and leaves the list")
    func quietResumeStop() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let broker = environment.broker
        let configuration = JobEnvironment.workerConfiguration(concurrency: 2)
        let id = configuration.workerID
        // An order left for this id before the worker started is not its own: it is withdrawn.
        try await broker.give(.stop, to: id)
        let worker = JobWorker(broker: broker, registry: environment.registry, configuration: configuration, logger: quiet)
        let running = Task { try await worker.run() }
        func state() async throws -> WorkerInfo.Mode? {
            guard let info = try await broker.workers().first(where: { $0.id == id }) else { throw WaitError("\(id) is not listed") }
            return info.mode
        }
        let long = try await environment.tern.enqueue(Sleep.self, .init(ms: 1_500))
        try await eventually(within: .seconds(20)) {
            guard worker.busy == 1 else { throw WaitError("the long job is not running yet") }
        }

        try await broker.give(.quiet, to: id)
        try await eventually(within: .seconds(20)) {
            guard try await state() == .quiet else { throw WaitError("not quiet yet") }
        }
        let waiting = try await environment.tern.enqueue(Echo.self, .number(1))
        // The job that ran before the order finishes.
        #expect(try await long.result(timeout: .seconds(20)).sleptMs >= 1_500)
        // Three heartbeat intervals and an idle wait: the quiet worker claims nothing.
        try await Task.sleep(for: .seconds(3))
        #expect(try await broker.job(waiting.id)?.state == .queued)

        try await broker.give(nil, to: id)
        #expect(try await waiting.result(timeout: .seconds(20)) == .number(1))
        try await eventually(within: .seconds(20)) {
            guard try await state() == nil else { throw WaitError("still listed as quiet") }
        }

        try await broker.give(.stop, to: id)
        try await eventually(within: .seconds(30)) {
            guard try await broker.workers().allSatisfy({ $0.id != id }) else { throw WaitError("still listed") }
        }
        try await running.value
        let order = try await environment.client.send(RedisCommand("EXISTS", broker.keys.workerOrder(id)))
        #expect(order == .integer(0), "the order is deleted with the worker's entry")
    }
}
