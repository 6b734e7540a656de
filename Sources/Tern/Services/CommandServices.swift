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

    public init(redis: RedisConfiguration, prefix: String, schedules: [Schedule], configuration: SchedulerConfiguration) {
        self.redis = redis
        self.prefix = prefix
        self.schedules = schedules
        self.configuration = configuration
    }
}

extension TernServices {
    /// The services of `tern scheduler`: the scheduler, which loads the Functions library when it
    /// starts (again on first use if Redis is down then).
    public static func buildSchedulerServices(
        _ settings: SchedulerSettings, registry: TaskRegistry, logger: Logger, handlingSignals: Bool = true,
        first: [any Service] = []
    ) throws -> ServiceGroup {
        let client = RedisClient(configuration: settings.redis, logger: logger)
        let broker = try settings.store.broker(client: client, prefix: settings.prefix)
        let scheduler = try SchedulerService(
            broker: broker, schedules: settings.schedules, registry: registry, configuration: settings.configuration,
            logger: logger, store: ScheduleStore(client: client, keys: broker.keys))
        let service = PreparedService(prepare: { _ = try? await broker.prepare() }, service: scheduler)
        return StopSignals.group(
            first + [service], grace: .zero, logger: logger, handlingSignals: handlingSignals,
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
