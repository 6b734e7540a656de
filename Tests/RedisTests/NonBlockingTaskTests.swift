import Broker
import Foundation
import Logging
import TernCore
import Testing
import Worker

/// The name of the thread it is called on, as the kernel knows it (a job thread is `tern-job-<n>`).
private func threadName() -> String {
    (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
}

/// Returns the name of the thread its body runs on: a job thread, by default.
private struct OnJobThread: TernTask {
    typealias Input = Int
    typealias Output = String
    static let name = "test.on-job-thread"
    func run(_ input: Int, context: JobContext) async throws -> String { threadName() }
}

/// The same, declared non-blocking: it runs on Swift's shared pool.
private struct OnSharedPool: TernTask {
    typealias Input = Int
    typealias Output = String
    static let name = "test.on-shared-pool"
    static let options = TaskOptions(nonBlocking: true)
    func run(_ input: Int, context: JobContext) async throws -> String { threadName() }
}

@Suite("Where task bodies run", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct NonBlockingTaskTests {
    @Test("a task's body runs on one of the worker's job threads; a nonBlocking task's on Swift's shared pool")
    func threads() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var registry = TaskRegistry()
        try registry.register(OnJobThread.self)
        try registry.register(OnSharedPool.self)
        let worker = JobWorker(
            broker: environment.broker, registry: registry, configuration: JobEnvironment.workerConfiguration(concurrency: 4),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await worker.run() }
        let client = TernClient(broker: environment.broker)
        for index in 0..<3 {
            let dedicated = try await client.enqueue(OnJobThread.self, index)
            let shared = try await client.enqueue(OnSharedPool.self, index)
            let own = try await dedicated.result(timeout: .seconds(20))
            #expect(own.hasPrefix("tern-job-"), "\(own)")
            let name = try await shared.result(timeout: .seconds(20))
            #expect(!name.hasPrefix("tern-"), "\(name): a job thread or the duty thread")
        }
        worker.shutdown()
        try await running.value
    }
}

