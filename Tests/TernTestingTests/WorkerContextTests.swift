import Foundation
import Logging
import Synchronization
import Tern
import Testing
import Worker

@Suite("A worker's jobs: their logger and the process's dependencies")
struct WorkerContextTests {
    @Test("each job's logger carries job, task, attempt and worker; all jobs share one made dependency, closed once after the worker stops")
    func loggerAndDependencies() async throws {
        let logs = CapturingLogHandler.Store()
        let logger = Logger(label: "test", factory: { _ in CapturingLogHandler(store: logs) })
        let broker = MemoryJobBroker()
        var registry = TaskRegistry()
        var declared = Dependencies()
        try Shop.tasks(&registry, &declared)
        let made = Mutex(0)
        let ledger = Ledger()
        declared.register((any Mailer).self) {
            made.withLock { $0 += 1 }
            return RecordingMailer()
        } shutdown: { _ in
            ledger.note("closed")
        }
        let dependencies = DependencyStore(declared, logger: logger)
        var configuration = WorkerConfiguration()
        configuration.queues = ["mail"]
        configuration.concurrency = 4
        let worker = JobWorker(broker: broker, registry: registry, configuration: configuration, logger: logger, dependencies: dependencies)
        let handles = try await TernClient(broker: broker).enqueueBatch(
            SendInvoice.self, (1...6).map { .init(order: $0, email: "e\($0)@example.com") })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            for handle in handles { #expect(try await handle.result(timeout: .seconds(60)) == .init(sent: true)) }
            worker.shutdown()
            try await group.waitForAll()
        }
        #expect(ledger.all.isEmpty, "the worker does not close what its caller owns")
        await dependencies.shutdown()
        #expect(made.withLock { $0 } == 1)
        #expect(ledger.all == ["closed"])
        let entries = logs.all.filter { $0.message == "invoice sent" }
        #expect(Set(entries.compactMap { $0.metadata["job"] }) == Set(handles.map { "\($0.id)" }))
        #expect(entries.count == 6)
        for entry in entries {
            #expect(entry.metadata["task"] == "send-invoice")
            #expect(entry.metadata["attempt"] == "1")
            #expect(entry.metadata["worker"] == configuration.workerID)
        }
    }
}
