import Broker
import Foundation
import TernTesting

/// The Redis a benchmark measures: the one at `url`, or a redis-server of its own with AOF
/// `everysec` (the durability Tern asks for), stopped by ``stop()``.
struct BenchRedis {
    let server: LocalRedisServer?
    var configuration: RedisConfiguration

    static func start(url: String?) async throws -> BenchRedis {
        var options = LocalRedisServer.Options()
        options.appendOnly = true
        options.executable = LocalRedisServer.findExecutable(searchPath: ProcessInfo.processInfo.environment["PATH"])
        let server = url == nil ? try await LocalRedisServer.start(options) : nil
        do {
            var configuration = try RedisConfiguration(url: url ?? server!.url)
            configuration.commandTimeout = .seconds(60)
            return BenchRedis(server: server, configuration: configuration)
        } catch {
            server?.stop()
            throw error
        }
    }

    func stop() { server?.stop() }
}

/// Redis's process CPU (user + system, seconds) that `body` took.
func redisCPU(_ client: RedisClient, _ body: () async throws -> Void) async throws -> Double {
    func read() async throws -> Double {
        let text = try await client.send("INFO", "cpu").string ?? ""
        return text.split(whereSeparator: \.isNewline)
            .filter { $0.hasPrefix("used_cpu_sys:") || $0.hasPrefix("used_cpu_user:") }
            .compactMap { Double($0.split(separator: ":").last ?? "") }.reduce(0, +)
    }
    let before = try await read()
    try await body()
    return try await read() - before
}
