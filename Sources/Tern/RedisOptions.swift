import ArgumentParser
import Broker

/// The options every command that talks to Redis takes.
struct RedisOptions: ParsableArguments {
    @Option(
        name: .customLong("redis-url"),
        help: ArgumentHelp(
            "Redis URL: redis://[user:password@]host[:port][/db] or unix:///path[?db=N&user=U&password=P]. Environment: TERN_REDIS_URL (default redis://127.0.0.1:6379).",
            valueName: "url"))
    var redisURL: String?

    @Option(help: ArgumentHelp("Configuration file. (default: config/tern.yaml when it exists)", valueName: "path"))
    var config: String?

    /// The configuration file this command reads.
    func file() throws -> ConfigFile { try ConfigFile.load(path: config) }

    /// The URL from the flag, else a non-empty `TERN_REDIS_URL`, else the config file's
    /// `redis.url`, else `redis://127.0.0.1:6379`.
    func resolvedURL(environment: [String: String], file: ConfigFile = ConfigFile()) -> String {
        redisURL ?? nonEmpty(environment["TERN_REDIS_URL"]) ?? file.redis?.url
            ?? "redis://127.0.0.1:6379"
    }

    /// The key prefix from `TERN_PREFIX`, else the config file's `redis.prefix`, else `tern`.
    func prefix(environment: [String: String], file: ConfigFile) -> String {
        nonEmpty(environment["TERN_PREFIX"]) ?? file.redis?.prefix ?? "tern"
    }

    func configuration(environment: [String: String], file: ConfigFile = ConfigFile()) throws -> RedisConfiguration {
        let url = resolvedURL(environment: environment, file: file)
        do {
            return try RedisConfiguration(url: url)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// An environment value, or `nil` when it is unset or empty: every command treats an empty
/// variable as unset.
func nonEmpty(_ text: String?) -> String? {
    text.flatMap { $0.isEmpty ? nil : $0 }
}
