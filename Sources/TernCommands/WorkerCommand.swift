import ArgumentParser
import Broker
import Dispatch
import Foundation
import Synchronization
import Logging
import Tasks
import TernCore
import Worker

/// `tern worker` (also the `worker` executable): runs jobs.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run jobs from one or more queues.",
        discussion: """
            Claims jobs from the queues (strict order by default), runs up to --concurrency at once,
            extends leases with heartbeats, returns expired leases of dead workers to their queues,
            and on SIGTERM or SIGINT stops claiming, lets running jobs finish within --grace, returns
            the rest to their queues and exits 0.

            At start-up it refuses a Redis that can lose jobs (appendonly off, or an evicting
            maxmemory-policy) unless --allow-volatile-redis is given.

            Examples:
              swift run worker
              tern worker --queues critical,default --concurrency 32
              tern worker --queues images,default --weights 3,1
            """
    )

    @OptionGroup var redis: RedisOptions

    @Option(help: "Comma-separated queues, first first. Environment: TERN_QUEUES. (default: default)")
    var queues: String?

    @Option(help: "Comma-separated weights, one per queue, for weighted instead of strict order.")
    var weights: String?

    @Option(help: "Jobs run at once. Environment: TERN_CONCURRENCY. (default: 10)")
    var concurrency: Int?

    @Option(help: "Lease length in seconds. (default: 15)")
    var lease: Double?

    @Option(help: "Heartbeat interval in seconds. (default: 1)")
    var heartbeat: Double?

    @Option(help: "Reaper interval in seconds. (default: 1)")
    var reaper: Double?

    @Option(help: "Seconds running jobs get to finish after SIGTERM. (default: 25)")
    var grace: Double?

    @Option(help: "Redis key prefix. Environment: TERN_PREFIX. (default: tern)")
    var prefix: String?

    @Option(help: "Log format: text or json. Environment: TERN_LOG_FORMAT. (default: text)")
    var logFormat: String?

    @Flag(help: "Start even if Redis can lose jobs (appendonly off or an evicting maxmemory-policy).")
    var allowVolatileRedis = false

    @Option(help: "Run a supervisor with this many worker processes (this binary, in child mode), each running up to --concurrency jobs; a process that dies is replaced and its jobs are released at once. (default: one worker, in this process)")
    var processes: Int?

    @Option(help: "With --processes: a job that was running in this many processes that died fails as worker_crashed. (default: 3)")
    var maxCrashes: Int = 3

    @Option(help: "With --processes: a process exits gracefully after finishing about this many jobs and is replaced, to contain leaks. (default: never)")
    var maxJobsPerProcess: Int?

    @Flag(help: .hidden)
    var child = false

    @Flag(help: "Also register the sample task crash, which kills its process on purpose (tern dev and the tests do; echo, sleep, flaky, fail and primes are always registered).")
    var sampleTasks = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let file = try redis.file()
        let fileWorker = file.worker
        let logger = try LogSetup.make(
            label: "tern.worker", format: logFormat ?? nonEmpty(environment["TERN_LOG_FORMAT"]) ?? file.log?.format)
        var configuration = WorkerConfiguration()
        configuration.queues = try parseQueues(
            queues ?? nonEmpty(environment["TERN_QUEUES"]) ?? fileWorker?.queues?.joined(separator: ",") ?? "default")
        let weightList = weights.map { $0.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) ?? 0 } }
            ?? fileWorker?.weights
        if let values = weightList {
            guard values.count == configuration.queues.count, values.allSatisfy({ $0 >= 1 }) else {
                throw ValidationError("weights need one whole number ≥ 1 per queue")
            }
            configuration.queueOrder = .weighted(values)
        }
        var environmentConcurrency: Int?
        if let text = nonEmpty(environment["TERN_CONCURRENCY"]) {
            guard let value = Int(text) else { throw ValidationError("TERN_CONCURRENCY must be a whole number, not '\(text)'") }
            environmentConcurrency = value
        }
        configuration.concurrency = concurrency ?? environmentConcurrency ?? fileWorker?.concurrency ?? 10
        guard (1...10_000).contains(configuration.concurrency) else {
            throw ValidationError("concurrency must be 1...10000")
        }
        configuration.lease = try seconds(lease ?? fileWorker?.leaseSeconds ?? 15, "lease")
        configuration.heartbeatInterval = try seconds(heartbeat ?? fileWorker?.heartbeatSeconds ?? 1, "heartbeat")
        configuration.reaperInterval = try seconds(reaper ?? fileWorker?.reaperSeconds ?? 1, "reaper")
        configuration.shutdownGrace = try seconds(grace ?? fileWorker?.graceSeconds ?? 25, "grace", allowZero: true)
        guard configuration.heartbeatInterval * 2 < configuration.lease else {
            throw ValidationError("--heartbeat must be less than half of --lease")
        }

        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingCrash: sampleTasks || fileWorker?.sampleTasks == true)

        let redisConfiguration = try redis.configuration(environment: environment, file: file)
        let keyPrefix = prefix ?? redis.prefix(environment: environment, file: file)
        do {
            _ = try RedisJobKeys(prefix: keyPrefix)
        } catch {
            throw ValidationError("\(error)")
        }
        let client = RedisClient(configuration: redisConfiguration, logger: logger)
        defer { client.close() }
        let broker = try RedisJobBroker(client: client, prefix: keyPrefix)
        if let processes {
            guard (1...256).contains(processes), (1...100).contains(maxCrashes), (maxJobsPerProcess ?? 1) >= 1 else {
                throw ValidationError("--processes must be 1...256, --max-crashes 1...100 and --max-jobs-per-process at least 1")
            }
            try await superviseProcesses(processes, broker: broker, client: client, redisConfiguration: redisConfiguration, logger: logger)
            return
        }
        // A child reports each job it claims and settles on standard output, for its supervisor.
        if child { configuration.supervisorPID = getppid() }
        let recycler = Recycler(limit: child ? maxJobsPerProcess : nil)
        var events: (@Sendable (WorkerEvent) -> Void)?
        if child {
            events = { @Sendable (event: WorkerEvent) in
                Self.reportToSupervisor(event)
                if case .settled = event { recycler.settled() }
            }
        }
        let worker = JobWorker(broker: broker, registry: registry, configuration: configuration, logger: logger, events: events)
        recycler.onLimit = { [logger] in
            logger.info("recycling this worker process after its job limit")
            worker.shutdown()
        }
        // Signals are handled from here on, so a SIGTERM while Redis is checked still exits 0.
        let signals = ShutdownSignals(grace: configuration.shutdownGrace) { worker.shutdown() }
        defer { signals.cancel() }
        let allowed = allowVolatileRedis || fileWorker?.allowVolatileRedis == true
        if allowed {
            let report = try await RedisStartup.checkDurability(
                client, redisConfiguration, command: "tern worker", refuseUnsafe: false)
            if !report.problems.isEmpty { printError("tern worker: starting anyway (--allow-volatile-redis)") }
        } else {
            _ = try await RedisStartup.checkDurability(client, redisConfiguration, command: "tern worker", refuseUnsafe: true)
        }
        try await broker.prepare()
        try await worker.run()
    }

    /// A child's line on standard output for each job it claims and settles.
    @Sendable private static func reportToSupervisor(_ event: WorkerEvent) {
        let line: String
        switch event {
        case .claimed(let job): line = "claimed \(job.id.rawValue) \(job.lease.token)\n"
        case .settled(let id): line = "settled \(id.rawValue)\n"
        }
        FileHandle.standardOutput.write(Data(line.utf8))
    }

    /// Runs the supervisor: this binary with the same arguments, `--processes` dropped and `--child`
    /// added, `count` times.
    private func superviseProcesses(
        _ count: Int, broker: RedisJobBroker, client: RedisClient, redisConfiguration: RedisConfiguration, logger: Logger
    ) async throws {
        if !(allowVolatileRedis || (try? redis.file())?.worker?.allowVolatileRedis == true) {
            _ = try await RedisStartup.checkDurability(client, redisConfiguration, command: "tern worker", refuseUnsafe: true)
        }
        try await broker.prepare()
        var arguments = Array(CommandLine.arguments.dropFirst())
        if let index = arguments.firstIndex(of: "--processes"), index + 1 < arguments.count {
            arguments.removeSubrange(index...(index + 1))
        }
        arguments.removeAll { $0.hasPrefix("--processes=") }
        arguments.append("--child")
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let supervisor = WorkerSupervisor(
            executable: executable, arguments: arguments, count: count, broker: broker, maxCrashes: maxCrashes, logger: logger)
        let signals = ShutdownSignals(grace: try seconds(grace ?? (try? redis.file())?.worker?.graceSeconds ?? 25, "grace", allowZero: true)) {
            supervisor.shutdown()
        }
        defer { signals.cancel() }
        try await supervisor.run()
    }

    private func parseQueues(_ text: String) throws -> [QueueName] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let queues = try names.map { name in
            guard let queue = QueueName(name) else {
                throw ValidationError("invalid queue name '\(name)': use 1-64 of a-z 0-9 _ - (starting with a letter or digit)")
            }
            return queue
        }
        guard !queues.isEmpty, Set(queues).count == queues.count else {
            throw ValidationError("--queues needs at least one queue, each once")
        }
        return queues
    }

    private func seconds(_ value: Double, _ name: String, allowZero: Bool = false) throws -> Duration {
        let lowest = allowZero ? 0 : 0.001
        guard value.isFinite, value >= lowest, value <= 86_400 else {
            throw ValidationError("\(name) must be between \(allowZero ? "0" : "0.001") and 86400 seconds")
        }
        return .milliseconds(Int((value * 1000).rounded()))
    }

}

/// SIGTERM and SIGINT: the first asks for a graceful stop; a second one, or the grace period plus
/// 10 s, exits at once (running jobs were already released or will be reaped after their lease).
/// Unchecked: the dispatch sources are only created in `init` and cancelled in `cancel()`.
final class ShutdownSignals: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]

    init(grace: Duration, onFirst: @escaping @Sendable () -> Void) {
        let queue = DispatchQueue(label: "tern.signals")
        let count = Counter()
        sources = [SIGTERM, SIGINT].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler {
                if count.increment() == 1 {
                    printError("tern: stopping (signal \(signalNumber)); a second signal exits at once")
                    onFirst()
                    let seconds = Double(grace.components.seconds) + 10
                    queue.asyncAfter(deadline: .now() + seconds) {
                        printError("tern: jobs did not stop within the grace period; exiting")
                        exit(0)
                    }
                } else {
                    printError("tern: second signal; exiting now")
                    exit(0)
                }
            }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }

    /// Only touched on the signal queue.
    private final class Counter: @unchecked Sendable {
        private var value = 0
        func increment() -> Int {
            value += 1
            return value
        }
    }
}

/// Shuts a child worker down once it has settled `limit` jobs, so its supervisor replaces it.
final class Recycler: @unchecked Sendable {
    private let limit: Int?
    private let count = Mutex(0)
    /// Set once, before the worker runs.
    var onLimit: (@Sendable () -> Void)?

    init(limit: Int?) { self.limit = limit }

    func settled() {
        guard let limit else { return }
        let reached = count.withLock { count in
            count += 1
            return count == limit
        }
        if reached { onLimit?() }
    }
}
