import Broker
import Foundation
import Logging
import Tasks
import TernCore
import TernTesting
import Testing
import Worker

/// A task for tests: sleeps, honouring cancellation, with a short soft time limit and one attempt.
struct SlowTask: TernTask {
    struct Input: Codable, Sendable { var ms: Int }
    struct Output: Codable, Sendable { var done: Bool }
    static let name = "test.slow"
    static let options = TaskOptions(maxAttempts: 1, softTimeLimit: .milliseconds(300))
    func run(_ input: Input, context: JobContext) async throws -> Output {
        try await Task.sleep(for: .milliseconds(input.ms))
        return Output(done: true)
    }
}

/// A real redis-server, a broker under a fresh key prefix, and in-process workers with short timings.
final class JobEnvironment: Sendable {
    let server: LocalRedisServer
    let client: RedisClient
    let broker: RedisJobBroker
    let tern: TernClient
    let registry: TaskRegistry

    static func start() async throws -> JobEnvironment {
        let server = try await TestRedis.start()
        return try await JobEnvironment(server: server)
    }

    private init(server: LocalRedisServer) async throws {
        self.server = server
        client = RedisClient(configuration: try TestRedis.configuration(server))
        broker = try RedisJobBroker(client: client, prefix: "t" + String(UUID().uuidString.prefix(8)))
        try await broker.prepare()
        tern = TernClient(broker: broker)
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        try registry.register(SlowTask.self)
        try registry.register(Spin.self)
        try registry.register(UniqueSync.self)
        self.registry = registry
    }

    func stop() {
        client.close()
        server.stop()
    }

    static func workerConfiguration(concurrency: Int = 4) -> WorkerConfiguration {
        var configuration = WorkerConfiguration()
        configuration.concurrency = concurrency
        configuration.lease = .seconds(3)
        configuration.heartbeatInterval = .milliseconds(200)
        configuration.reaperInterval = .milliseconds(200)
        configuration.shutdownGrace = .seconds(5)
        configuration.idleWait = .milliseconds(500)
        return configuration
    }

    /// Runs a worker while `body` runs, then shuts it down and waits for it.
    func withWorker<R>(
        _ configuration: WorkerConfiguration = JobEnvironment.workerConfiguration(),
        _ body: (JobWorker) async throws -> R
    ) async throws -> R {
        let logger = Logger(label: "test.worker", factory: { _ in SwiftLogNoOpLogHandler() })
        let worker = JobWorker(broker: broker, registry: registry, configuration: configuration, logger: logger)
        let running = Task { try await worker.run() }
        do {
            let result = try await body(worker)
            worker.shutdown()
            try await running.value
            // However loaded the machine, heartbeats keep a margin of at least half the lease.
            recordTiming(
                "worst heartbeat delay, in-process worker", worker.worstHeartbeatDelay, bound: configuration.lease / 2)
            return result
        } catch {
            worker.shutdown()
            _ = await running.result
            throw error
        }
    }

    /// Waits until the job reaches `state`.
    func waitFor(_ id: JobID, _ state: JobState, within limit: Duration = .seconds(20)) async throws -> JobRecord {
        try await eventually(within: limit) {
            let record = try await broker.job(id)
            guard let record, record.state == state else {
                throw WaitError("job \(id) is \(record?.state.rawValue ?? "missing"), waiting for \(state)")
            }
            return record
        }
    }

    /// Waits until a running job has reported progress: its worker has its claim and runs it (a job
    /// `running` in Redis may be one whose claim reply has not reached the worker yet).
    func waitForProgress(_ id: JobID, within limit: Duration = .seconds(20)) async throws -> JobRecord {
        try await eventually(within: limit) {
            let record = try await broker.job(id)
            guard let record, record.state == .running, record.progress != nil else {
                throw WaitError("job \(id) is \(record?.state.rawValue ?? "missing") without progress, waiting for its worker's first report")
            }
            return record
        }
    }
}

struct WaitError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
