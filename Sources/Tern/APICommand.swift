import API
import ArgumentParser
import Broker
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Scheduler
import TernCore

/// `tern api` (also the `api` executable): the HTTP API.
struct APICommand: AsyncParsableCommand {
    /// The API's Redis busy-polling when no setting names one: off.
    static let defaultBusyPoll: Duration = .zero
    /// The API's Redis transport when no setting names one: its handlers run on NIO event loops,
    /// so their Redis connections live there too and a command costs no thread hop.
    static let defaultTransport: RedisConfiguration.Transport = .eventLoop

    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Serve the HTTP API.",
        discussion: """
            Serves /v1 (jobs, queues, workers, tasks), /openapi.json, /docs, /metrics, /healthz and \
            /readyz. Every /v1 call needs a bearer token from api.tokens in config/tern.yaml (create \
            one with `tern token create`), unless api.auth is none. Redis failures answer 503 with \
            Retry-After. SIGTERM and SIGINT stop it gracefully; SIGHUP reads the tokens and JWT \
            settings of the config file again.

            Examples:
              swift run api
              tern api --host 0.0.0.0 --port 8080
              curl -s localhost:8080/v1/tasks -H "authorization: Bearer $TOKEN"
              curl -s localhost:8080/v1/jobs -H "authorization: Bearer $TOKEN" \\
                -H 'content-type: application/json' -d '{"task":"<name>","input":{…}}'
            """
    )

    @OptionGroup var redis: RedisOptions

    @Option(help: "Address to bind. Environment: TERN_API_HOST. (default: 127.0.0.1)")
    var host: String?

    @Option(help: "Port. Environment: TERN_API_PORT. (default: 8080)")
    var port: Int?

    @Option(help: "Largest request body in bytes; config api.max_body_bytes. (default: 262144)")
    var maxBodyBytes: Int?

    @Option(help: "Log format: text or json. Environment: TERN_LOG_FORMAT. (default: text)")
    var logFormat: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical. Environment: TERN_LOG_LEVEL. (default: info)")
    var logLevel: String?

    func run() async throws {
        let settings = try redis.resolver()
        let file = settings.file
        let logger = try LogSetup.make(label: "tern.api", settings, flag: logFormat, level: logLevel)
        // Every setting is checked before anything connects.
        let configuration = try APISettings.configuration(settings, host: host, port: port, maxBodyBytes: maxBodyBytes)
        // Busy-polling off by default: the API's callers are other processes, and a spinning
        // thread takes the core they and Redis need (BENCHMARKS.md, issue 16: twice the rate of a
        // sequential client, half the CPU per request, on 2 cores).
        var redisConfiguration = try redis.configuration(
            settings, busyPoll: APICommand.defaultBusyPoll, transport: APICommand.defaultTransport)
        let keyPrefix = try redis.prefix(settings)
        let store = try file.storePolicy()
        let tracing = try TracingSettings.resolve(settings, service: "tern-api")
        let (registry, _, middleware) = try ApplicationTasks.load(tracing: tracing != nil)
        let access = try await APISettings.access(settings, logger: logger)
        // A request must learn of a Redis failure within a second (503 + Retry-After), never hang.
        redisConfiguration.commandTimeout = .milliseconds(800)
        redisConfiguration.connectTimeout = .milliseconds(500)
        let client = RedisClient(configuration: redisConfiguration, logger: logger)
        defer { client.close() }
        let broker = try store.broker(client: client, prefix: keyPrefix)
        var api = APIContext(
            broker: broker, registry: registry, configuration: configuration, access: access,
            scheduleStore: ScheduleStore(client: client, keys: broker.keys), configuredSchedules: file.schedules ?? []
        ) {
            _ = try await client.send(RedisCommand("PING"))
        }
        api.middleware = middleware
        logger.info("API listening", metadata: ["address": "\(configuration.host):\(configuration.port)"])
        api.configuration.tracing = tracing != nil
        // SIGHUP re-reads the tokens and JWT settings (docs/http-api.md, "Changing tokens without a restart").
        let redis = self.redis
        let reload = AccessReloadService(control: api.accessControl, logger: logger) {
            try await APISettings.access(try redis.resolver(), reload: true, logger: logger)
        }
        let tracer: [any Service] = try tracing.map { [try $0.bootstrap(logger: logger)] } ?? []
        try await TernServices.buildAPIServices(api, logger: logger, first: tracer + [reload]).run()
    }
}
