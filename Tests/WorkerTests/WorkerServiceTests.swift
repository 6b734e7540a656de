import Broker
import Foundation
import Logging
import ServiceLifecycle
import Tasks
import TernCore
import Testing
import Worker

@Suite("A worker as a Service in a ServiceGroup (memory broker)")
struct WorkerServiceTests {
    private static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    private static func worker(_ broker: MemoryJobBroker, grace: Duration = .seconds(5)) throws -> JobWorker {
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        var configuration = WorkerConfiguration.forTests()
        configuration.shutdownGrace = grace
        return JobWorker(broker: broker, registry: registry, configuration: configuration, logger: quiet)
    }

    /// Waits until `id` is running (generous bound for a loaded machine).
    private static func waitUntilRunning(_ broker: MemoryJobBroker, _ id: JobID) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while try await broker.job(id)?.state != .running {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test("graceful shutdown of the group lets the running job finish, then the worker and the group stop")
    func gracefulShutdownDrains() async throws {
        let broker = MemoryJobBroker()
        let worker = try Self.worker(broker)
        let group = ServiceGroup(services: [WorkerService(worker)], logger: Self.quiet)
        let running = Task { try await group.run() }
        let job = try await TernClient(broker: broker).enqueue(Sleep.self, .init(ms: 1_000))
        try await Self.waitUntilRunning(broker, job.id)
        await group.triggerGracefulShutdown()
        try await running.value
        let record = try #require(try await broker.job(job.id))
        #expect(record.state == .succeeded && record.attempts == 1)
        #expect(try await broker.workers().isEmpty)
    }

    @Test("cancelling the group (a second signal) releases the running job at once: queued again, no attempt used")
    func cancellationReleases() async throws {
        let broker = MemoryJobBroker()
        // A grace far longer than the bound below: only the cancellation can stop the worker in time.
        let worker = try Self.worker(broker, grace: .seconds(3600))
        let group = ServiceGroup(services: [WorkerService(worker)], logger: Self.quiet)
        let running = Task { try await group.run() }
        let job = try await TernClient(broker: broker).enqueue(Sleep.self, .init(ms: 600_000))
        try await Self.waitUntilRunning(broker, job.id)
        await group.triggerGracefulShutdown()
        let cancelled = ContinuousClock.now
        running.cancel()
        _ = try? await running.value
        #expect(ContinuousClock.now - cancelled < .seconds(60))
        let record = try #require(try await broker.job(job.id))
        #expect(record.state == .queued, "\(record.state)")
        #expect(record.attempts == 0 && record.errors.isEmpty, "\(record.attempts) \(record.errors.map(\.message))")
    }
}
