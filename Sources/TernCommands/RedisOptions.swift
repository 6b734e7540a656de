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

    /// The URL from the flag, else a non-empty `TERN_REDIS_URL`, else `redis://127.0.0.1:6379`.
    func resolvedURL(environment: [String: String]) -> String {
        redisURL ?? environment["TERN_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "redis://127.0.0.1:6379"
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
