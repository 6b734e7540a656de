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
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Serve the HTTP API.",
        discussion: """
            Serves /v1 (jobs, queues, workers, tasks), /openapi.json, /docs, /metrics, /healthz and
            /readyz. Every /v1 call needs a bearer token from api.tokens in config/tern.yaml (create
            one with `tern token create`), unless api.auth is none. Redis failures answer 503 with
            Retry-After. SIGTERM and SIGINT stop it gracefully.

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

    func validate() throws {
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be 1...65535") }
        if let maxBodyBytes, !(1_024...(64 << 20)).contains(maxBodyBytes) {
            throw ValidationError("--max-body-bytes must be 1024...67108864")
        }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let file = try redis.file()
        let logger = try LogSetup.make(
            label: "tern.api", format: logFormat ?? nonEmpty(environment["TERN_LOG_FORMAT"]) ?? file.log?.format)
        var redisConfiguration = try redis.configuration(environment: environment, file: file)
        // A request must learn of a Redis failure within a second (503 + Retry-After), never hang.
        redisConfiguration.commandTimeout = .milliseconds(800)
        redisConfiguration.connectTimeout = .milliseconds(500)
        let client = RedisClient(configuration: redisConfiguration, logger: logger)
        defer { client.close() }
        let keyPrefix = redis.prefix(environment: environment, file: file)
        let broker: RedisJobBroker
        do {
            broker = try RedisJobBroker(client: client, prefix: keyPrefix, caps: try file.queueCaps())
        } catch {
            throw ValidationError("\(error)")
        }
        let registry = try ApplicationTasks.load().registry
        var configuration = try APISettings.configuration(file.api)
        configuration.host = host ?? nonEmpty(environment["TERN_API_HOST"]) ?? file.api?.host ?? configuration.host
        configuration.port = try port ?? nonEmpty(environment["TERN_API_PORT"]).map { text in
            guard let value = Int(text), (1...65535).contains(value) else {
                throw ValidationError("TERN_API_PORT must be a port number, not '\(text)'")
            }
            return value
        } ?? file.api?.port ?? configuration.port
        if let maxBodyBytes { configuration.maxBodyBytes = maxBodyBytes }
        let access = try APISettings.access(file.api, environment: environment, logger: logger)
        let api = APIContext(
            broker: broker, registry: registry, configuration: configuration, access: access,
            scheduleStore: ScheduleStore(client: client, keys: broker.keys), configuredSchedules: file.schedules ?? []
        ) {
            _ = try await client.send(RedisCommand("PING"))
        }
        logger.info("API listening", metadata: ["address": "\(configuration.host):\(configuration.port)"])
        try await TernServices.buildAPIServices(api, logger: logger).run()
    }
}
