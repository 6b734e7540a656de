import ArgumentParser
import Broker
import Foundation

/// The options every command that talks to Redis takes.
struct RedisOptions: ParsableArguments {
    @Option(
        name: .customLong("redis-url"),
        help: ArgumentHelp(
            "Redis URL: redis://[user:password@]host[:port][/db], rediss://...?ca=FILE (TLS), redis+sentinel://host,host2/master-name, redis+cluster://host:port,host2:port (rediss+cluster:// for TLS), or unix:///path[?db=N&user=U&password=P]. Environment: TERN_REDIS_URL (default redis://127.0.0.1:6379).",
            valueName: "url"))
    var redisURL: String?

    @Option(help: ArgumentHelp("Configuration file. (default: config/tern.yaml when it exists)", valueName: "path"))
    var config: String?

    /// The configuration file this command reads.
    func file() throws -> ConfigFile { try ConfigFile.load(path: config) }

    /// The settings resolver over the environment and this command's configuration file.
    func resolver() throws -> SettingsResolver { SettingsResolver(file: try file()) }

    /// `--redis-url`, else `TERN_REDIS_URL`, else `redis.url`, else ``RedisConfiguration/defaultURL``.
    func resolvedURL(_ settings: SettingsResolver) throws -> String {
        try settings.value(
            SettingNames(flag: "--redis-url", environment: "TERN_REDIS_URL", file: "redis.url"),
            flag: redisURL, file: settings.file.redis?.url, default: RedisConfiguration.defaultURL)
    }

    /// `flag` (a command's `--prefix`), else `TERN_PREFIX`, else `redis.prefix`, else
    /// ``RedisJobKeys/defaultPrefix``; checked as a key prefix.
    func prefix(_ settings: SettingsResolver, flag: String? = nil) throws -> String {
        let prefix = try settings.value(
            SettingNames(flag: "--prefix", environment: "TERN_PREFIX", file: "redis.prefix"),
            flag: flag, file: settings.file.redis?.prefix, default: RedisJobKeys.defaultPrefix)
        do {
            _ = try RedisJobKeys(prefix: prefix)
        } catch {
            throw ValidationError("\(error)")
        }
        return prefix
    }

    /// `redis.sentinel`: the sentinels replace the URL's host; its user, password and database stay.
    private static func apply(_ sentinel: ConfigFile.Redis.Sentinel, to configuration: inout RedisConfiguration) throws {
        guard configuration.sentinel == nil, configuration.tls == nil, case .tcp = configuration.endpoint else {
            throw ValidationError("redis.sentinel works with a redis:// URL (for its user, password and database), not with this one")
        }
        guard !sentinel.nodes.isEmpty, !sentinel.master.isEmpty else {
            throw ValidationError("redis.sentinel needs a master name and at least one node (host or host:port)")
        }
        let master = sentinel.master.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? sentinel.master
        do {
            configuration.sentinel = try RedisConfiguration(
                url: "redis+sentinel://\(sentinel.nodes.joined(separator: ","))/\(master)").sentinel
        } catch {
            throw ValidationError("redis.sentinel: \(error)")
        }
    }

    /// `redis.cluster`: the seeds replace the URL's host; its user, password and TLS settings stay.
    private static func apply(cluster seeds: [String], to configuration: inout RedisConfiguration) throws {
        guard configuration.sentinel == nil, configuration.cluster == nil, case .tcp = configuration.endpoint else {
            throw ValidationError("redis.cluster works with a redis:// or rediss:// URL (for its user, password and TLS settings), not with this one")
        }
        guard !seeds.isEmpty else { throw ValidationError("redis.cluster needs at least one node (host or host:port)") }
        guard configuration.database == 0 else {
            throw ValidationError("redis.cluster: the URL names database \(configuration.database), but a Redis Cluster has only database 0")
        }
        do {
            let nodes = try RedisConfiguration(url: "redis+cluster://\(seeds.joined(separator: ","))").cluster ?? []
            configuration.cluster = nodes
            configuration.endpoint = nodes[0]
        } catch {
            throw ValidationError("redis.cluster: \(error)")
        }
    }

    /// The connection settings of the resolved URL, with `TERN_REDIS_BUSY_POLL_US` or
    /// `redis.busy_poll_us` (0 turns busy-polling off; default `busyPoll`, else
    /// ``RedisConfiguration/busyPoll``) and `TERN_REDIS_TRANSPORT` or `redis.transport`
    /// (`thread` or `event-loop`; default `transport`).
    func configuration(
        _ settings: SettingsResolver, busyPoll defaultBusyPoll: Duration? = nil,
        transport defaultTransport: RedisConfiguration.Transport = .dedicatedThread
    ) throws -> RedisConfiguration {
        do {
            var configuration = try RedisConfiguration(url: try resolvedURL(settings))
            if let sentinel = settings.file.redis?.sentinel { try Self.apply(sentinel, to: &configuration) }
            if let cluster = settings.file.redis?.cluster {
                if settings.file.redis?.sentinel != nil { throw ValidationError("redis.sentinel and redis.cluster exclude each other: choose one") }
                try Self.apply(cluster: cluster, to: &configuration)
            }
            if let defaultBusyPoll { configuration.busyPoll = defaultBusyPoll }
            configuration.transport = defaultTransport
            let transportNames = SettingNames(environment: "TERN_REDIS_TRANSPORT", file: "redis.transport")
            switch try settings.optional(transportNames, flag: nil, file: settings.file.redis?.transport) {
            case nil: break
            case "thread": configuration.transport = .dedicatedThread
            case "event-loop": configuration.transport = .eventLoop
            case let other?:
                throw ValidationError(
                    "\(settings.source(transportNames, flagGiven: false)) must be thread or event-loop, not '\(other)'")
            }
            if let busyPoll = try settings.optional(
                SettingNames(environment: "TERN_REDIS_BUSY_POLL_US", file: "redis.busy_poll_us"), flag: nil,
                file: settings.file.redis?.busyPollMicroseconds, in: 0...100_000)
            {
                configuration.busyPoll = .microseconds(busyPoll)
            }
            return configuration
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
