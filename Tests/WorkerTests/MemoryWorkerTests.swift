import Broker
import Foundation
import Logging
import Tasks
import TernCore
import Testing
import Worker

@Suite("A worker on the memory broker (embedded mode, no Redis)")
struct MemoryWorkerTests {
    @Test("jobs run end to end through the real worker; the worker is listed while it runs")
    func endToEnd() async throws {
        let broker = MemoryJobBroker()
        let tern = TernClient(broker: broker)
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        let worker = JobWorker(
            broker: broker, registry: registry, configuration: .forTests(),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await worker.run() }
        let echo = try await tern.enqueue(Echo.self, .string("inline"))
        let flaky = try await tern.enqueue(Flaky.self, .init(failures: 1))
        let fail = try await tern.enqueue(Fail.self, .init(message: "no"))
        #expect(try await echo.result(timeout: .seconds(20)) == .string("inline"))
        #expect(try await flaky.result(timeout: .seconds(20)).attempt == 2)
        await #expect(throws: TernClientError.failed(fail.id, "no")) { try await fail.result(timeout: .seconds(20)) }
        #expect(try await broker.workers().map(\.id) == [worker.info.id])
        worker.shutdown()
        try await running.value
        #expect(try await broker.workers().isEmpty)
        #expect(try await broker.stats(.default).succeeded == 2)
    }
}

extension WorkerConfiguration {
    /// Short leases and intervals, so that tests of the worker finish quickly.
    static func forTests(concurrency: Int = 4) -> WorkerConfiguration {
        var configuration = WorkerConfiguration()
        configuration.concurrency = concurrency
        configuration.lease = .seconds(3)
        configuration.heartbeatInterval = .milliseconds(200)
        configuration.reaperInterval = .milliseconds(200)
        configuration.shutdownGrace = .seconds(5)
        configuration.idleWait = .milliseconds(500)
        return configuration
    }
}
