import Broker
import Foundation
import TernCore
import TernTesting
import Testing

/// Starts a real `redis-server` per test, on a free port and a unix socket, and stops it by pid.
enum TestRedis {
    /// Whether Redis tests run: always under `CI=true` (a missing redis-server then fails them),
    /// elsewhere only when redis-server is installed.
    static let enabled: Bool =
        ProcessInfo.processInfo.environment["CI"] == "true" || executable != nil

    static let executable = LocalRedisServer.findExecutable(searchPath: ProcessInfo.processInfo.environment["PATH"])

    static let reason: Comment = "redis-server is not installed (scripts/test installs it)"

    /// Starts a server with the append-only file on.
    static func start(_ extra: [String] = [], appendOnly: Bool = true) async throws -> LocalRedisServer {
        var options = LocalRedisServer.Options()
        options.appendOnly = appendOnly
        options.executable = executable
        options.extraArguments = extra
        return try await LocalRedisServer.start(options)
    }

    /// A configuration for `server` with short timeouts suited to tests.
    static func configuration(
        _ server: LocalRedisServer, commandTimeout: Duration = .seconds(10),
        transport: RedisConfiguration.Transport = .dedicatedThread
    ) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: server.url)
        configuration.transport = transport
        configuration.commandTimeout = commandTimeout
        configuration.reconnectBackoff = .init(base: .milliseconds(10), cap: .milliseconds(200))
        return configuration
    }

    /// Both transports, for the client's own tests.
    static let transports: [RedisConfiguration.Transport] = [.dedicatedThread, .eventLoop]

    /// A configuration parsed from `url`, on `transport`.
    static func configuration(transport: RedisConfiguration.Transport, url: String) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configuration.transport = transport
        return configuration
    }

    /// A unique key prefix for one test.
    static func prefix() -> String { "test:\(UUID().uuidString):" }
}

/// Retries `body` until it succeeds or `limit` passes; returns the value or rethrows the last error.
func eventually<T>(
    within limit: Duration = .seconds(15), _ body: () async throws -> T
) async throws -> T {
    let deadline = ContinuousClock.now + limit
    while true {
        do {
            return try await body()
        } catch {
            if ContinuousClock.now >= deadline { throw error }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// Measures how long `body` takes.
func elapsed(_ body: () async throws -> Void) async rethrows -> Duration {
    let start = ContinuousClock.now
    try await body()
    return ContinuousClock.now - start
}

/// Runs blocking work (waiting for a process, a blocking socket read) on its own thread, so that it
/// never holds one of the few threads Swift concurrency runs every test and in-process server on.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Waits for `process` to exit without blocking a concurrency thread.
func waitForExit(_ process: Process) async {
    let box = UncheckedProcess(process: process)
    _ = try? await offPool { box.process.waitUntilExit() }
}

/// A process handed to the waiting thread; only `waitUntilExit()` is called there.
private struct UncheckedProcess: @unchecked Sendable {
    let process: Process
}
