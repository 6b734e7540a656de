import ArgumentParser
import Broker
import Foundation
import Logging
import Tasks
import TernCore
import TernTesting
import Worker

/// `tern-bench heartbeat`: how late a worker's heartbeats come with every core saturated.
///
/// A worker with the default lease and heartbeat runs CPU-bound `spin` jobs on every job thread
/// while other processes spin on every core; it reports the worst heartbeat delay and whether any
/// lease was lost (docs/worker.md, "Heartbeats under load").
struct HeartbeatBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heartbeat",
        abstract: "Measure the worst heartbeat delay of a worker with every core saturated."
    )

    @Option(help: "How long the CPU-bound jobs run, in seconds.")
    var seconds: Int = 30

    @Option(help: "Worker concurrency (CPU-bound jobs at once); default twice the cores.")
    var concurrency: Int?

    @Option(help: "Job threads (--job-threads); default min(concurrency, 64), 0 for Swift's shared pool.")
    var jobThreads: Int?

    @Option(help: "Processes spinning beside the worker; default one per core.")
    var hogs: Int?

    func run() async throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let concurrency = self.concurrency ?? 2 * cores
        var options = LocalRedisServer.Options()
        options.executable = LocalRedisServer.findExecutable(searchPath: ProcessInfo.processInfo.environment["PATH"])
        let server = try await LocalRedisServer.start(options)
        defer { server.stop() }
        let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
        defer { client.close() }
        let broker = try RedisJobBroker(client: client, prefix: "hb")
        try await broker.prepare()
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: true)
        var configuration = WorkerConfiguration()
        configuration.concurrency = concurrency
        configuration.jobThreads = jobThreads
        print(
            "tern-bench heartbeat: \(concurrency) CPU-bound jobs of \(seconds) s, job threads \(jobThreads.map(String.init) ?? "default"), "
                + "\(hogs ?? cores) spinning processes, lease \(configuration.lease), heartbeat \(configuration.heartbeatInterval)")

        let hogs = try (0..<(self.hogs ?? cores)).map { _ in try Self.spinningProcess() }
        defer { for hog in hogs { kill(hog.processIdentifier, SIGKILL) } }
        let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let worker = JobWorker(broker: broker, registry: registry, configuration: configuration, logger: logger)
        let running = Task { try await worker.run() }
        let tern = TernClient(broker: broker)
        let handles = try await tern.enqueueBatch(
            Spin.self, (0..<concurrency).map { _ in .init(ms: seconds * 1000, cooperative: false) })
        var lost = 0
        for handle in handles {
            while true {
                guard let record = try await broker.job(handle.id) else { break }
                if record.state.isTerminal {
                    lost += record.lostLeases
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        worker.shutdown()
        try await running.value
        let worst = Double(worker.worstHeartbeatDelay.nanoseconds) / 1e6
        print(String(format: "worst heartbeat delay: %.1f ms (lease %@); leases lost: %d", worst, "\(configuration.lease)", lost))
    }

    private static func spinningProcess() throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "while :; do :; done"]
        try process.run()
        return process
    }
}
