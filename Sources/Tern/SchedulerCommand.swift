import ArgumentParser
import Broker
import Foundation
import Logging
import Scheduler
import ServiceLifecycle
import TernCore

/// `tern scheduler` (also the `scheduler` executable): emits the schedules of the config file.
struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Emit periodic jobs from the schedules in the config file.",
        discussion: """
            Reads `schedules:` from config/tern.yaml (or --config), checks every schedule against the \
            registered tasks (its input is decoded as the task's input type), then emits due ticks \
            until SIGTERM or SIGINT. Schedules created over the HTTP API (/v1/schedules) are followed \
            too: a change takes effect within one poll interval, without a restart. Run two or three replicas for availability: each tick becomes \
            one job whatever the number of replicas, and no tick is skipped while one runs.

            Examples:
              swift run scheduler
              tern scheduler --config /etc/tern/tern.yaml
            """
    )

    @OptionGroup var redis: RedisOptions

    @Option(help: "Log format: text or json. Environment: TERN_LOG_FORMAT. (default: text)")
    var logFormat: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical. Environment: TERN_LOG_LEVEL. (default: info)")
    var logLevel: String?

    @Option(help: "Serve Prometheus metrics at /metrics on this port. Environment: TERN_SCHEDULER_METRICS_PORT. (default: none)")
    var metricsPort: Int?

    @Option(help: "The address the metrics endpoint binds. (default: 127.0.0.1)")
    var metricsHost: String?

    func run() async throws {
        let settings = try redis.resolver()
        let file = settings.file
        let logger = try LogSetup.make(label: "tern.scheduler", settings, flag: logFormat, level: logLevel)
        let registry = try ApplicationTasks.load().registry
        let schedules = try ScheduleSettings.schedules(file.schedules)
        let configuration = try ScheduleSettings.configuration(settings)
        var schedulerSettings = SchedulerSettings(
            redis: try redis.configuration(settings), prefix: try redis.prefix(settings),
            schedules: schedules, configuration: configuration)
        schedulerSettings.store = try file.storePolicy()
        schedulerSettings.metrics = try ScheduleSettings.metrics(settings, port: metricsPort, host: metricsHost)
        let group: ServiceGroup
        do {
            let tracing = try TracingSettings.resolve(settings, service: "tern-scheduler")
            group = try TernServices.buildSchedulerServices(
                schedulerSettings, registry: registry, logger: logger, first: try tracing.map { [try $0.bootstrap(logger: logger)] } ?? [])
        } catch {
            throw ValidationError("\(error)")
        }
        if schedules.isEmpty { logger.info("no schedules in the config file; following the schedules created over the API") }
        try await group.run()
    }
}
