import ArgumentParser
import Broker

/// The options every command that talks to Redis takes.
struct RedisOptions: ParsableArguments {
    @Option(
        name: .customLong("redis-url"),
        help: ArgumentHelp(
            "Redis URL: redis://[user:password@]host[:port][/db] or unix:///path[?db=N]. Environment: TERN_REDIS_URL.",
            valueName: "url"))
    var redisURL: String?

    /// The URL from the flag, else `TERN_REDIS_URL`, else `redis://127.0.0.1:6379`.
    func resolvedURL(environment: [String: String]) -> String {
        redisURL ?? environment["TERN_REDIS_URL"] ?? "redis://127.0.0.1:6379"
    }

    func configuration(environment: [String: String]) throws -> RedisConfiguration {
        let url = resolvedURL(environment: environment)
        do {
            return try RedisConfiguration(url: url)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
