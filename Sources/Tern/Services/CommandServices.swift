import API
import Broker
import Hummingbird
import Logging
import Scheduler
import ServiceLifecycle
import TernCore
import Worker

/// Everything `tern scheduler` runs with.
public struct SchedulerSettings: Sendable {
    public var redis: RedisConfiguration
    public var prefix: String
    /// The schedules of the configuration file (those created over the API are read from Redis).
    public var schedules: [Schedule]
    public var configuration: SchedulerConfiguration
    /// What the job store keeps and refuses, for the jobs this scheduler emits.
    public var store = StorePolicy()
    /// Where to serve Prometheus metrics; `nil` for none.
    public var metrics: MetricsEndpoint?

    public init(redis: RedisConfiguration, prefix: String, schedules: [Schedule], configuration: SchedulerConfiguration) {
        self.redis = redis
        self.prefix = prefix
        self.schedules = schedules
        self.configuration = configuration
    }
}

extension TernServices {
    /// The services of `tern scheduler`: the scheduler, which loads the Functions library when it
    /// starts (again on first use if Redis is down then), and the metrics endpoint if set.
    public static func buildSchedulerServices(
        _ settings: SchedulerSettings, registry: TaskRegistry, logger: Logger, handlingSignals: Bool = true,
        first: [any Service] = []
    ) throws -> ServiceGroup {
        let client = RedisClient(configuration: settings.redis, logger: logger)
        let broker = try settings.store.broker(client: client, prefix: settings.prefix)
        let metrics = settings.metrics.map { _ in SchedulerMetrics() }
        let scheduler = try SchedulerService(
            broker: broker, schedules: settings.schedules, registry: registry, configuration: settings.configuration,
            logger: logger, store: ScheduleStore(client: client, keys: broker.keys), observer: metrics)
        let service = PreparedService(prepare: { _ = try? await broker.prepare() }, service: scheduler)
        var services: [any Service] = first
        if let metrics, let endpoint = settings.metrics { services.append(metrics.service(endpoint, logger: logger)) }
        return StopSignals.group(
            services + [service], grace: .zero, logger: logger, handlingSignals: handlingSignals,
            secondSignal: "tern: second signal; the scheduler stops after the pass under way")
    }

    /// The services of `tern api`: the HTTP server for `api`, which loads the Functions library
    /// when it starts (again on first use if Redis is down then). A graceful shutdown gives
    /// requests in flight 10 s.
    /// `first` run before the server and stop after it (the tracing exporter).
    public static func buildAPIServices(
        _ api: APIContext, logger: Logger, handlingSignals: Bool = true, first: [any Service] = []
    ) -> ServiceGroup {
        let broker = api.broker as? RedisJobBroker
        let server = PreparedService(prepare: { _ = try? await broker?.prepare() }, service: buildApplication(api, logger: logger))
        return StopSignals.group(
            first + [server], grace: .zero, logger: logger, handlingSignals: handlingSignals,
            secondSignal: "tern: second signal; requests in flight get at most 10 s")
    }
}
