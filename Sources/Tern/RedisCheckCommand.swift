import ArgumentParser
import Broker
import Foundation

/// `tern redis-check`: connects to Redis and reports whether it keeps jobs safely.
struct RedisCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis-check",
        abstract: "Check that Redis is reachable and configured not to lose jobs.",
        discussion: """
            Connects, reads INFO, and exits 0 when Redis has the append-only file on and never evicts \
            keys; exits 1 and says what to change otherwise. Exits 4 when Redis cannot be reached.

            Example:
              tern redis-check --redis-url redis://127.0.0.1:6379
            """
    )

    @OptionGroup var redis: RedisOptions

    func run() async throws {
        let configuration = try redis.configuration(try redis.resolver())
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        let report: RedisDurability
        do {
            report = try await RedisStartup.awaitDurability(client, within: .seconds(5))
        } catch {
            printError("\(RedisStartup.explain(error, configuration, command: "tern"))")
            throw ExitCode(4)
        }
        print("Redis \(report.version) at \(configuration.endpointDescription)")
        print("  appendonly:       \(report.appendOnly ? "yes" : "no")")
        print("  maxmemory-policy: \(report.maxMemoryPolicy)")
        if report.problems.isEmpty {
            print("OK: this Redis keeps jobs safely.")
        } else {
            for problem in report.problems { printError("tern: unsafe Redis: \(problem)") }
            throw ExitCode(1)
        }
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Start-up helpers shared by the commands that need Redis.
enum RedisStartup {
    /// Reads the durability report (exit 4 when Redis cannot be read) and prints its problems as
    /// warnings or, unless `allowed`, refuses to start (exit 1).
    static func checkDurability(
        _ client: RedisClient, _ configuration: RedisConfiguration, command: String, refuseUnsafe: Bool,
        label: String = "unsafe Redis"
    ) async throws -> RedisDurability {
        let report: RedisDurability
        do {
            report = try await awaitDurability(client, within: .seconds(10))
        } catch {
            printError(explain(error, configuration, command: command))
            throw ExitCode(4)
        }
        guard !report.problems.isEmpty else { return report }
        for problem in report.problems { printError("\(command): \(label): \(problem)") }
        if refuseUnsafe {
            printError("\(command): refusing to start; fix Redis or pass --allow-volatile-redis")
            throw ExitCode(1)
        }
        return report
    }

    /// A one-line message for a Redis failure at start-up that says what went wrong and what to do.
    static func explain(_ error: any Error, _ configuration: RedisConfiguration, command: String) -> String {
        let endpoint = configuration.endpointDescription
        guard let error = error as? RedisError else { return "\(command): Redis at \(endpoint): \(error)" }
        switch error {
        case .authenticationFailed:
            return "\(command): \(error). Check the user name and password in --redis-url or TERN_REDIS_URL."
        case .server(let serverError) where serverError.code == "NOPERM":
            return "\(command): Redis at \(endpoint) denied a command: \(serverError.message). Grant the ACL user +info."
        case .connectFailed, .notConnected, .connectionLost, .timeout:
            if "\(error)".contains("TLS: ") {
                return "\(command): cannot connect to Redis at \(endpoint) over TLS: \(error). Check ca, cert, key and sni in the rediss:// URL."
            }
            return "\(command): cannot reach Redis at \(endpoint): \(error). Is redis-server running? (scripts/dev starts one.)"
        default:
            if error.isTransient {
                return "\(command): Redis at \(endpoint) is not ready: \(error). It usually passes by itself; try again."
            }
            return "\(command): Redis at \(endpoint): \(error)"
        }
    }

    /// Reads the durability report, retrying while the client is still connecting, up to `within`.
    static func awaitDurability(_ client: RedisClient, within limit: Duration) async throws -> RedisDurability {
        let deadline = ContinuousClock.now + limit
        while true {
            do {
                return try await client.durability()
            } catch let error as RedisError where error.isTransient && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
