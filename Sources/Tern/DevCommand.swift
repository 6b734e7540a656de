import API
import ArgumentParser
import Broker
import Foundation
import Hummingbird
import Logging
import Scheduler
import ServiceLifecycle
import TernCore
import Worker

/// `tern dev`: the whole system in one process against a local Redis.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run Tern for local development: a worker, the API, the scheduler, and a demo.",
        discussion: """
            Checks its Redis (if that is a loopback address that nothing answers on, starts a \
            redis-server there first, with its data under .data/redis-<port>/, and stops it on \
            exit), runs a worker with the application's tasks on their queues (or TERN_QUEUES, or \
            worker.queues), runs the application's demo (Tern's own \
            binary enqueues a few sample jobs and prints their results), then keeps the worker \
            running until Ctrl-C. \
            It also serves the HTTP API on 127.0.0.1 (port 8080 by default) with a fresh admin token, \
            and runs the scheduler on the config file's schedules (and those created over the API), \
            printing each firing.

            Example:
              swift run tern dev --redis-url redis://127.0.0.1:6379
            """
    )

    @OptionGroup var redis: RedisOptions

    @Option(help: "Worker concurrency. (default: 8)")
    var concurrency: Int = 8

    @Option(help: "Log format: text or json. Environment: TERN_LOG_FORMAT. (default: text)")
    var logFormat: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical. Environment: TERN_LOG_LEVEL. (default: info)")
    var logLevel: String?

    @Option(help: "HTTP API port (on 127.0.0.1). Environment: TERN_API_PORT. (default: 8080)")
    var port: Int?

    @Option(help: ArgumentHelp("Also write the dev API token to this file (mode 0600); scripts/dev uses .data/dev-token.", valueName: "path"))
    var tokenFile: String?

    @Flag(help: "Skip the demo jobs.")
    var noDemo = false

    @Flag(help: "Run the demo, then exit instead of running until Ctrl-C.")
    var once = false

    @Flag(name: .customLong("no-start-redis"), help: "Never start a redis-server: fail if none answers.")
    var noStartRedis = false

    func validate() throws {
        guard (1...10_000).contains(concurrency) else { throw ValidationError("--concurrency must be 1...10000") }
    }

    func run() async throws {
        let settings = try redis.resolver()
        let file = settings.file
        let logger = try LogSetup.make(label: "tern.dev", settings, flag: logFormat, level: logLevel)
        let configuration = try redis.configuration(settings)
        // The API listens on 127.0.0.1 whatever api.host says: a dev token must not leave this machine.
        var apiConfiguration = try APISettings.configuration(settings, port: port)
        apiConfiguration.host = APIConfiguration().host
        let keyPrefix = try redis.prefix(settings)
        let storePolicy = try file.storePolicy()
        // A loopback Redis that nothing answers on: started here, with its data in .data/.
        var devRedis: DevRedisServer?
        if !noStartRedis {
            switch try await DevRedisServer.prepare(configuration, in: FileManager.default.currentDirectoryPath + "/.data") {
            case .none: break
            case .started(let server):
                devRedis = server
                print("tern dev: started redis-server on 127.0.0.1:\(server.port) (data in \(server.directory), log in \(server.directory)/redis.log); it stops when tern dev does")
            case .adopted(let server):
                devRedis = server
                print("tern dev: using the redis-server that an earlier tern dev left on 127.0.0.1:\(server.port) (pid \(server.pid), data in \(server.directory)); it stops when tern dev does")
            }
        }
        defer { devRedis?.stop() }
        let client = RedisClient(configuration: configuration, logger: logger)
        defer { client.close() }
        let report = try await RedisStartup.checkDurability(
            client, configuration, command: "tern dev", refuseUnsafe: false, label: "warning")
        print("tern dev: Redis \(report.version) at \(configuration.endpointDescription), appendonly \(report.appendOnly ? "yes" : "no"), maxmemory-policy \(report.maxMemoryPolicy)")

        let broker = try storePolicy.broker(client: client, prefix: keyPrefix)
        try await broker.prepare()
        let tracing = try TracingSettings.resolve(settings, service: "tern-dev")
        let (registry, dependencies, middleware) = try ApplicationTasks.load(tracing: tracing != nil)
        var workerConfiguration = WorkerConfiguration()
        workerConfiguration.concurrency = concurrency
        let queueNames = try settings.list(
            SettingNames(environment: "TERN_QUEUES", file: "worker.queues"), flag: nil, file: file.worker?.queues)
        workerConfiguration.queues = try queueNames.map(WorkerCommand.parseQueues) ?? Self.queues(of: registry)
        workerConfiguration.limits = try file.limitDeclarations()
        var workerLogger = logger
        workerLogger.logLevel = .warning
        let store = DependencyStore(dependencies.addingClient(broker, middleware: middleware), logger: logger)
        let worker = JobWorker(
            broker: broker, registry: registry, configuration: workerConfiguration, logger: workerLogger, dependencies: store,
            middleware: middleware)
        let schedules = try ScheduleSettings.schedules(file.schedules)
        let scheduler: SchedulerService
        do {
            scheduler = try SchedulerService(
                broker: broker, schedules: schedules, registry: registry, configuration: try ScheduleSettings.configuration(settings),
                logger: workerLogger, store: ScheduleStore(client: client, keys: broker.keys)
            ) { schedule, tick, id in
                print("tern dev: schedule \(schedule.name) fired for \(Self.isoTime(tick)) → job \(id)")
            }
        } catch {
            throw ValidationError("\(error)")
        }
        print("tern dev: worker \(workerConfiguration.workerID) running tasks \(registry.names.joined(separator: ", ")) on queues \(workerConfiguration.queues.map(\.rawValue).joined(separator: ", "))")
        // A fresh admin token each run, besides any tokens of the config file.
        let devToken = APISettings.newToken()
        let access = try await APISettings.access(settings, devToken: devToken, logger: logger)
        if access.requiresToken, let tokenFile { try Self.writeSecret(devToken + "\n", to: tokenFile) }
        var api = APIContext(
            broker: broker, registry: registry, configuration: apiConfiguration, access: access,
            scheduleStore: ScheduleStore(client: client, keys: broker.keys), configuredSchedules: file.schedules ?? []
        ) {
            _ = try await client.send(RedisCommand("PING"))
        }
        api.middleware = middleware
        api.configuration.tracing = tracing != nil
        // One group: the API and the scheduler start first and stop last, after the worker drained
        // (and the tracing exporter before them all, after them all).
        var services: [any Service] = try tracing.map { [try $0.bootstrap(logger: logger)] } ?? []
        if !once {
            services.append(buildApplication(api, logger: workerLogger))
            services.append(scheduler)
            if !schedules.isEmpty {
                print("tern dev: scheduler running \(schedules.map(\.name).joined(separator: ", ")) (schedules: in config/tern.yaml)")
            }
            let port = apiConfiguration.port
            // With api.tls the port speaks HTTPS only.
            let base = (apiConfiguration.tls != nil ? "https" : "http") + "://127.0.0.1:\(port)"
            print("tern dev: HTTP API on \(base), docs at \(base)/docs")
            if apiConfiguration.dashboard {
                print("tern dev: dashboard at \(base)/ui\(access.requiresToken ? " (log in with the token below)" : "")")
            }
            if access.requiresToken {
                print("tern dev: API token (admin, for this run\(tokenFile.map { "; also in \($0)" } ?? "")): \(devToken)")
                print("tern dev: try: curl -s \(apiConfiguration.tls != nil ? base : "localhost:\(port)")/v1/tasks -H 'authorization: Bearer \(devToken)'")
            }
        }
        let (once, noDemo) = (self.once, self.noDemo)
        services.append(DemoService {
            if !noDemo { try await ApplicationTasks.demo(TernClient(broker: broker, middleware: middleware)) }
            if once {
                worker.shutdown()
            } else {
                print("tern dev: running. Press Ctrl-C to stop.")
            }
        })
        services.append(WorkerService(worker, dependencies: store))
        try await StopSignals.group(
            services, grace: workerConfiguration.shutdownGrace, logger: workerLogger, handlingSignals: true,
            secondSignal: "tern: second signal; releasing running jobs now"
        ) { worker.shutdown(waitingForJobs: false) }.run()
    }

    /// The queues of the registered tasks, `default` first and the others by name: what `tern dev`
    /// serves unless `TERN_QUEUES` or `worker.queues` names others.
    static func queues(of registry: TaskRegistry) -> [QueueName] {
        let named = Set(registry.names.compactMap { registry[$0]?.options.queue }).subtracting([.default])
        return [.default] + named.sorted { $0.rawValue < $1.rawValue }
    }

    /// Milliseconds since 1970 as an ISO 8601 UTC time.
    private static func isoTime(_ milliseconds: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    /// Writes `secret` to `path`, readable by its owner only from the moment it exists.
    private static func writeSecret(_ secret: String, to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard descriptor >= 0 else { throw ValidationError("cannot write the token file \(path): errno \(errno)") }
        defer { close(descriptor) }
        guard fchmod(descriptor, 0o600) == 0 else { throw ValidationError("cannot make \(path) private: errno \(errno)") }
        let bytes = Array(secret.utf8)
        guard write(descriptor, bytes, bytes.count) == bytes.count else { throw ValidationError("cannot write the token file \(path)") }
    }
}
