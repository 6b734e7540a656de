import ArgumentParser
import Broker
import Dispatch
import Foundation
import Synchronization
import Logging
import ServiceLifecycle
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

    @Option(help: "Run a supervisor with this many worker processes (this binary, in child mode), each running up to --concurrency jobs; a process that dies is replaced and its jobs are released at once. SIGHUP replaces them gracefully with the configuration file re-read. (default: one worker, in this process)")
    var processes: Int?

    @Option(help: "A job that was running in this many processes that died fails as worker_crashed (supervised or isolated). (default: 3)")
    var maxCrashes: Int?

    @Option(help: "With --processes: a process exits gracefully after finishing about this many jobs and is replaced, to contain leaks. (default: never)")
    var maxJobsPerProcess: Int?

    @Option(help: "With --processes: a process whose resident memory passes this many MiB drains and is replaced. (default: no cap)")
    var maxMemoryMb: Int?

    @Option(help: "Seconds a job that ignores cancellation may run past its hard time limit before the supervisor kills its process; for isolated jobs also after a cancel. (default: 10)")
    var killGrace: Double?

    @Option(help: "Threads the bodies of tasks run on, so CPU-bound jobs cannot starve time limits and shutdown; 0 runs them on Swift's shared pool (faster for tiny async jobs; CPU-bound ones then delay time limits). 0-1024. (default: min(concurrency, 64))")
    var jobThreads: Int?

    @Option(help: "Comma-separated tasks whose jobs each run alone in a process of their own, besides tasks declared isolated. (default: none)")
    var isolate: String?

    @Option(help: "Serve Prometheus metrics at /metrics on this port (a supervisor serves those of all its processes). Environment: TERN_WORKER_METRICS_PORT. (default: none)")
    var metricsPort: Int?

    @Option(help: "The address the metrics endpoint binds. (default: 127.0.0.1)")
    var metricsHost: String?

    @Flag(help: .hidden)
    var child = false

    @Flag(name: .customLong(String(IsolatedJob.flag.dropFirst(2))), help: .hidden)
    var runIsolatedJob = false

    @Flag(help: "Check the flags, the environment and the configuration file, then exit: 0 if a worker would start with them (Redis is not contacted).")
    var checkConfig = false

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
        // Flag > environment > file > the default, which WorkerConfiguration defines.
        configuration.concurrency = concurrency ?? environmentConcurrency ?? fileWorker?.concurrency ?? configuration.concurrency
        guard (1...10_000).contains(configuration.concurrency) else {
            throw ValidationError("concurrency must be 1...10000")
        }
        configuration.lease = try seconds(lease ?? fileWorker?.leaseSeconds, or: configuration.lease, "lease")
        configuration.heartbeatInterval = try seconds(heartbeat ?? fileWorker?.heartbeatSeconds, or: configuration.heartbeatInterval, "heartbeat")
        configuration.reaperInterval = try seconds(reaper ?? fileWorker?.reaperSeconds, or: configuration.reaperInterval, "reaper")
        configuration.shutdownGrace = try seconds(grace ?? fileWorker?.graceSeconds, or: configuration.shutdownGrace, "grace", allowZero: true)
        guard configuration.heartbeatInterval * 2 < configuration.lease else {
            throw ValidationError("--heartbeat must be less than half of --lease")
        }

        let (registry, dependencies) = try ApplicationTasks.load()
        if runIsolatedJob {
            // A TernClient as in the worker, connected only if the job asks for it.
            let (redisConfiguration, keyPrefix) = (
                try redis.configuration(environment: environment, file: file), prefix ?? redis.prefix(environment: environment, file: file)
            )
            var dependencies = dependencies
            if !dependencies.declares(TernClient.self) {
                dependencies.register(TernClient.self) {
                    TernClient(broker: try RedisJobBroker(client: RedisClient(configuration: redisConfiguration, logger: logger), prefix: keyPrefix))
                }
            }
            Foundation.exit(await IsolatedJob.main(registry: registry, dependencies: dependencies, logger: logger))
        }
        var port = metricsPort
        if port == nil, let text = nonEmpty(environment["TERN_WORKER_METRICS_PORT"]) {
            guard let value = Int(text) else { throw ValidationError("TERN_WORKER_METRICS_PORT must be a port number, not '\(text)'") }
            port = value
        }
        port = port ?? fileWorker?.metricsPort
        if let port, !(1...65535).contains(port) { throw ValidationError("--metrics-port must be 1...65535") }
        let endpoint = port.map { MetricsEndpoint(host: metricsHost ?? fileWorker?.metricsHost ?? "127.0.0.1", port: $0) }
        try await runResolved(
            environment: environment, file: file, logger: logger, configuration: configuration, registry: registry,
            dependencies: dependencies, metrics: endpoint)
    }

    /// The rest of ``run()``, once the metrics endpoint (`nil`: none) is resolved.
    private func runResolved(
        environment: [String: String], file: ConfigFile, logger: Logger, configuration: WorkerConfiguration, registry: TaskRegistry,
        dependencies: Dependencies, metrics endpoint: MetricsEndpoint?
    ) async throws {
        let fileWorker = file.worker
        var configuration = configuration
        configuration.killGrace = try seconds(killGrace ?? fileWorker?.killGraceSeconds, or: configuration.killGrace, "kill grace", allowZero: true)
        configuration.maxCrashes = maxCrashes ?? fileWorker?.maxCrashes ?? configuration.maxCrashes
        configuration.jobThreads = jobThreads ?? fileWorker?.jobThreads
        if let threads = configuration.jobThreads, !(0...1024).contains(threads) {
            throw ValidationError("--job-threads must be 0...1024")
        }
        let isolated = isolate.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? fileWorker?.isolate ?? []
        if let unknown = isolated.first(where: { registry[$0] == nil }) {
            throw ValidationError("cannot isolate '\(unknown)': no such task (registered: \(registry.names.joined(separator: ", ")))")
        }
        configuration.isolation = ProcessIsolation(
            executable: Self.executablePath, arguments: Self.childArguments(adding: nil), tasks: Set(isolated))
        let processCount = processes ?? fileWorker?.processes
        let jobsPerProcess = maxJobsPerProcess ?? fileWorker?.maxJobsPerProcess
        let memoryCap = maxMemoryMb ?? fileWorker?.maxMemoryMb
        guard (1...256).contains(processCount ?? 1), (1...100).contains(configuration.maxCrashes), (jobsPerProcess ?? 1) >= 1,
            (64...1_048_576).contains(memoryCap ?? 64)
        else {
            throw ValidationError(
                "--processes must be 1...256, --max-crashes 1...100, --max-jobs-per-process at least 1 and --max-memory-mb 64...1048576")
        }

        var settings = WorkerSettings(
            configuration: configuration, redis: try redis.configuration(environment: environment, file: file),
            prefix: prefix ?? redis.prefix(environment: environment, file: file))
        do {
            _ = try RedisJobKeys(prefix: settings.prefix)
        } catch {
            throw ValidationError("\(error)")
        }
        if checkConfig { return }
        settings.processes = processCount
        settings.child = child
        settings.maxJobsPerProcess = jobsPerProcess
        settings.maxMemoryMiB = memoryCap
        settings.metrics = endpoint
        settings.allowVolatileRedis = allowVolatileRedis || fileWorker?.allowVolatileRedis == true
        if processCount != nil && !child {
            let executable = Self.executablePath, arguments = Self.childArguments(adding: "--child")
            settings.childCommand = (executable, arguments)
            let (redis, explicitCount) = (self.redis, processes != nil)
            settings.reload = {
                // SIGHUP: a new process must be able to start with the changed file (it reads the file
                // itself), so the check runs the child's own validation before any process is replaced.
                let file = try redis.file()
                try Self.checkChildConfiguration(executable: executable, arguments: arguments)
                return explicitCount ? nil : file.worker?.processes
            }
        }
        if child {
            // Out of the terminal's process group: Ctrl-C (SIGINT to the whole group) reaches the
            // supervisor, which passes it on; reaching the children too, it would count twice there.
            setpgid(0, 0)
            // A hangup of the terminal is the supervisor's to handle (SIGHUP reloads it).
            signal(SIGHUP, SIG_IGN)
            // Writing to a dead supervisor's pipe must fail, not kill the process with its jobs.
            signal(SIGPIPE, SIG_IGN)
        }
        let group = try TernServices.buildWorkerServices(settings, registry: registry, dependencies: dependencies, logger: logger)
        try await group.run()
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

    /// `value` seconds, checked, or `fallback` when it is `nil`.
    private func seconds(_ value: Double?, or fallback: Duration, _ name: String, allowZero: Bool = false) throws -> Duration {
        guard let value else { return fallback }
        let lowest = allowZero ? 0 : 0.001
        guard value.isFinite, value >= lowest, value <= 86_400 else {
            throw ValidationError("\(name) must be between \(allowZero ? "0" : "0.001") and 86400 seconds")
        }
        return .milliseconds(Int((value * 1000).rounded()))
    }

}
