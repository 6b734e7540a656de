import ArgumentParser
import Broker
import Foundation

/// `tern dev`: the whole system in one process against a local Redis.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run Tern for local development against a local Redis.",
        discussion: """
            Checks the Redis that scripts/dev started (data under .data/) and runs every component
            that exists in this build. Today that is the Redis check; the worker, the HTTP API and
            the scheduler join as they land.

            Example:
              swift run tern dev --redis-url redis://127.0.0.1:6379
            """
    )

    @OptionGroup var redis: RedisOptions

    func run() async throws {
        let configuration = try redis.configuration(environment: ProcessInfo.processInfo.environment)
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        let report: RedisDurability
        do {
            report = try await RedisStartup.awaitDurability(client, within: .seconds(10))
        } catch {
            printError("\(RedisStartup.explain(error, configuration, command: "tern dev"))")
            throw ExitCode(4)
        }
        print("tern dev: Redis \(report.version) at \(configuration.endpointDescription), appendonly \(report.appendOnly ? "yes" : "no"), maxmemory-policy \(report.maxMemoryPolicy)")
        for problem in report.problems { printError("tern dev: warning: \(problem)") }
        let started = ContinuousClock.now
        let pong = try await client.send("PING").string ?? "?"
        let elapsed = ContinuousClock.now - started
        print("tern dev: PING → \(pong) in \(elapsed.formatted(.units(allowed: [.milliseconds, .microseconds], width: .narrow)))")
        print("tern dev: components in this build: Redis client. Worker, API and scheduler are not built yet.")
    }
}
