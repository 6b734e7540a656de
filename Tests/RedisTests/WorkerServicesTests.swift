import Broker
import Foundation
import Logging
import ServiceLifecycle
import Tasks
import Tern
import TernCore
import Testing
import Worker

@Suite("TernServices.buildWorkerServices: the worker command's composition, in process")
struct WorkerServicesTests {
    @Test("the group checks Redis, runs jobs, and stops on graceful shutdown after the running job finished")
    func runsAndStops() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var configuration = JobEnvironment.workerConfiguration()
        configuration.shutdownGrace = .seconds(30)
        let settings = WorkerSettings(
            configuration: configuration, redis: try TestRedis.configuration(environment.server),
            prefix: environment.broker.keys.prefix)
        let group = try TernServices.buildWorkerServices(
            settings, registry: environment.registry, dependencies: Dependencies(),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), handlingSignals: false)
        let running = Task { try await group.run() }
        let echo = try await environment.tern.enqueue(Echo.self, .string("hi"))
        #expect(try await echo.result(timeout: .seconds(30)) == .string("hi"))
        let sleep = try await environment.tern.enqueue(Sleep.self, .init(ms: 5_000))
        // Started by the worker, not only claimed in Redis: a claim whose reply comes after the
        // shutdown began is released unstarted, as it should be.
        _ = try await environment.waitForProgress(sleep.id, within: .seconds(30))
        await group.triggerGracefulShutdown()
        try await running.value
        let record = try #require(try await environment.broker.job(sleep.id))
        #expect(record.state == .succeeded && record.attempts == 1, "\(record.state) \(record.errors.map(\.message))")
        #expect(try await environment.broker.workers().isEmpty)
    }
}
