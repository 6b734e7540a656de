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
            Claims jobs from the queues (strict order by default), runs up to --concurrency at once, \
            extends leases with heartbeats, returns expired leases of dead workers to their queues, \
            and on SIGTERM or SIGINT stops claiming, lets running jobs finish within --grace, returns \
            the rest to their queues and exits 0. SIGTSTP quiets it: it claims no more jobs, running \
            jobs go on, until `tern workers resume <id>`.

            At start-up it refuses a Redis that can lose jobs (appendonly off, or an evicting \
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

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical. Environment: TERN_LOG_LEVEL. (default: info)")
    var logLevel: String?

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
        if child || runIsolatedJob {
            // Quiet is the parent's to pass on: suspended (SIGTSTP's default, which exec restores
            // after the parent's handler), this process would lose its jobs' leases.
            signal(SIGTSTP, SIG_IGN)
            // Out of the terminal's process group: a Ctrl-C is the parent's to handle (it drains
            // its jobs); reaching this process too, it would kill a job as if it had crashed.
            setpgid(0, 0)
        }
        let settings = try redis.resolver()
        let logger = try LogSetup.make(label: "tern.worker", settings, flag: logFormat, level: logLevel)
        let tracing = try TracingSettings.resolve(settings, service: "tern-worker")
        let (registry, dependencies, middleware) = try ApplicationTasks.load(tracing: tracing != nil)
        if runIsolatedJob {
            // A TernClient as in the worker, connected only if the job asks for it.
            let (redisConfiguration, keyPrefix) = (try redis.configuration(settings), try redis.prefix(settings, flag: prefix))
            let store = try settings.file.storePolicy()
            var dependencies = dependencies
            if !dependencies.declares(TernClient.self) {
                dependencies.register(TernClient.self) {
                    TernClient(
                        broker: try store.broker(client: RedisClient(configuration: redisConfiguration, logger: logger), prefix: keyPrefix),
                        middleware: middleware)
                }
            }
            Foundation.exit(await IsolatedJob.main(registry: registry, dependencies: dependencies, logger: logger))
        }
        var workerSettings = try resolveWorkerSettings(settings, registry: registry)
        if checkConfig { return }
        workerSettings.child = child
        if workerSettings.processes != nil && !child {
            let executable = Self.executablePath, arguments = Self.childArguments(adding: "--child")
            workerSettings.childCommand = (executable, arguments)
            let (redis, explicitCount) = (self.redis, processes != nil)
            workerSettings.reload = {
                // SIGHUP: a new process must be able to start with the changed file (it reads the file
                // itself), so the check runs the child's own validation before any process is replaced.
                let file = try redis.file()
                try Self.checkChildConfiguration(executable: executable, arguments: arguments)
                return explicitCount ? nil : file.worker?.processes
            }
        }
        if child {
            // A hangup of the terminal is the supervisor's to handle (SIGHUP reloads it).
            signal(SIGHUP, SIG_IGN)
            // Writing to a dead supervisor's pipe must fail, not kill the process with its jobs.
            signal(SIGPIPE, SIG_IGN)
        }
        let group = try TernServices.buildWorkerServices(
            workerSettings, registry: registry, dependencies: dependencies, middleware: middleware, logger: logger,
            first: try tracing.map { [try $0.bootstrap(logger: logger)] } ?? [])
        try await group.run()
    }
}
