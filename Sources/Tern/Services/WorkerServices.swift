import Broker
import Foundation
import Logging
import ServiceLifecycle
import TernCore
import Worker

/// Everything `tern worker` runs with, resolved from its flags, the environment, the configuration
/// file and the defaults.
public struct WorkerSettings: Sendable {
    /// The worker's own settings: queues, concurrency, lease, grace, isolation, ...
    public var configuration: WorkerConfiguration
    public var redis: RedisConfiguration
    public var prefix: String
    /// Run a supervisor with this many worker processes; `nil` runs one worker in this process.
    public var processes: Int?
    /// This process is one of a supervisor's worker processes (`--child`).
    public var child = false
    /// A supervised process recycles itself after this many jobs.
    public var maxJobsPerProcess: Int?
    /// A supervised process recycles itself when its resident memory passes this many MiB.
    public var maxMemoryMiB: Int?
    /// Where to serve Prometheus metrics; `nil` for none.
    public var metrics: MetricsEndpoint?
    /// Start even if Redis can lose jobs (appendonly off, an evicting maxmemory-policy).
    public var allowVolatileRedis = false
    /// What the job store keeps and refuses, for the jobs this worker fails and enqueues.
    public var store = StorePolicy()
    /// For a supervisor: the binary and arguments of its processes.
    public var childCommand: (executable: String, arguments: [String])?
    /// For a supervisor: re-reads the configuration on SIGHUP (the new process count, `nil` to keep
    /// it); throws if it is invalid, which keeps the running processes.
    public var reload: (@Sendable () throws -> Int?)?

    public init(configuration: WorkerConfiguration, redis: RedisConfiguration, prefix: String) {
        self.configuration = configuration
        self.redis = redis
        self.prefix = prefix
    }
}

extension TernServices {
    /// The services of one `tern worker` process, as one `ServiceGroup`: a supervisor and its
    /// SIGHUP reload (with `processes`), or a worker (with, in a supervised process, its watches);
    /// and the metrics endpoint. The CLI, the entry point and the tests all build it here.
    ///
    /// The start-up check of Redis runs when the group starts, so a signal meanwhile still stops the
    /// process cleanly. With `handlingSignals` false the group traps no signal: call its
    /// `triggerGracefulShutdown()`.
    public static func buildWorkerServices(
        _ settings: WorkerSettings, registry: TaskRegistry, dependencies: Dependencies, middleware: Middleware = Middleware(),
        logger: Logger, handlingSignals: Bool = true, first: [any Service] = []
    ) throws -> ServiceGroup {
        let client = RedisClient(configuration: settings.redis, logger: logger)
        let broker = try settings.store.broker(client: client, prefix: settings.prefix)
        let (redis, allowed) = (settings.redis, settings.allowVolatileRedis)
        let prepare: @Sendable () async throws -> Void = {
            let report = try await RedisStartup.checkDurability(client, redis, command: "tern worker", refuseUnsafe: !allowed)
            if !report.problems.isEmpty { printError("tern worker: starting anyway (--allow-volatile-redis)") }
            try await broker.prepare()
        }
        let metrics = settings.metrics.map { _ in WorkerMetrics() }
        var services: [any Service] = first
        if let processes = settings.processes, !settings.child, let command = settings.childCommand {
            let supervisor = WorkerSupervisor(
                executable: command.executable, arguments: command.arguments, count: processes, broker: broker,
                configuration: settings.configuration, logger: logger, observer: metrics, reloadCount: settings.reload ?? { nil })
            if let metrics, let endpoint = settings.metrics {
                // Alive while it answers; ready while at least one worker process runs.
                let health: @Sendable () -> HealthReport = {
                    HealthReport(notReady: supervisor.slots.processes > 0 ? nil : "no worker process is running")
                }
                services.append(metrics.service(endpoint, logger: logger, health: health) {
                    let slots = supervisor.slots
                    metrics.processes(slots.processes)
                    metrics.slots(busy: slots.busy, concurrency: slots.concurrency)
                })
            }
            services.append(HangupService { supervisor.reload() })
            if handlingSignals { services.append(QuietSignalService { supervisor.quiet() }) }
            services.append(PreparedService(prepare: prepare, service: supervisor))
            return StopSignals.group(
                services, grace: settings.configuration.shutdownGrace, logger: logger, handlingSignals: handlingSignals,
                secondSignal: "tern: second signal; every process releases its running jobs now"
            ) { supervisor.shutdown() }
        }
        var configuration = settings.configuration
        var events: (@Sendable (WorkerEvent) -> Void)?
        // Filled in below, once the worker exists: the recycler stops it.
        let recycling = RecyclingTarget()
        let recycler = Recycler(
            jobLimit: settings.child ? settings.maxJobsPerProcess : nil, memoryLimitMiB: settings.child ? settings.maxMemoryMiB : nil
        ) { [logger] why in
            logger.info("recycling this worker process", metadata: ["reason": "\(why)"])
            recycling.worker?.shutdown()
        }
        if settings.child {
            // A child reports each job it claims and settles on standard output, for its supervisor,
            // which counts attempts only when it serves metrics (it resolves the same endpoint).
            configuration.supervisorPID = getppid()
            // Exactly that many: a process whose slot frees while an outcome is reported must not
            // start one more before the last report settles.
            configuration.maxJobs = settings.maxJobsPerProcess
            let report = SupervisorReport(registry: registry, configuration: configuration, reportsOutcomes: settings.metrics != nil)
            report.introduce()
            events = { @Sendable (event: WorkerEvent) in
                report.write(event)
                if case .settled = event { recycler.settled() }
            }
        } else if let metrics {
            // A single worker serves its own metrics; a supervisor serves those of its processes.
            events = { @Sendable (event: WorkerEvent) in
                if case .finished(let outcome) = event { metrics.record(outcome) }
            }
        }
        // The application's resources: made on first use by a job, closed once the worker has stopped.
        let store = DependencyStore(dependencies.addingClient(broker, middleware: middleware), logger: logger)
        let worker = JobWorker(
            broker: broker, registry: registry, configuration: configuration, logger: logger, dependencies: store,
            middleware: middleware, events: events)
        recycling.worker = worker
        if !settings.child, let metrics, let endpoint = settings.metrics {
            let concurrency = configuration.concurrency
            let health: @Sendable () -> HealthReport = {
                let health = worker.health
                return HealthReport(notAlive: health.notAlive(), notReady: health.notReady())
            }
            services.append(metrics.service(endpoint, logger: logger, health: health) { metrics.slots(busy: worker.busy, concurrency: concurrency) })
        }
        if settings.child {
            services.append(ChildWatchService(recycler: recycler, supervisorPID: configuration.supervisorPID, worker: worker, logger: logger))
        } else {
            if handlingSignals { services.append(QuietSignalService { worker.quiet() }) }
            services.append(HangupService { [logger] in
                logger.warning("SIGHUP ignored: only a supervisor (--processes) reloads; restart this worker to apply a changed configuration")
            })
        }
        services.append(WorkerService(worker, dependencies: store, prepare: prepare))
        return StopSignals.group(
            services, grace: configuration.shutdownGrace, logger: logger, handlingSignals: handlingSignals,
            secondSignal: "tern: second signal; releasing running jobs now"
        ) { worker.shutdown(waitingForJobs: false) }
    }
}

/// The services of Tern's commands, each command's as one `ServiceGroup`.
public enum TernServices {}

/// Runs `prepare` (the start-up check of Redis), then `service`; graceful shutdown reaches the
/// service (a request during `prepare` applies once it runs: the supervisor then stops at once).
struct PreparedService<Wrapped: Service>: Service {
    let prepare: @Sendable () async throws -> Void
    let service: Wrapped

    func run() async throws {
        try await prepare()
        try await service.run()
    }
}

/// The worker a ``Recycler`` stops, set once it exists.
private final class RecyclingTarget: @unchecked Sendable {
    // Written once, before the worker runs; read when a limit is reached.
    var worker: JobWorker?
}
