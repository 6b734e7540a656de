import ArgumentParser
import Broker
import Foundation
import TernCore
import TernTesting

/// `tern-bench redis`: the Redis client against `redis-benchmark` on the same server.
struct RedisBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "Measure the Redis client: sequential, 50 concurrent callers on one connection, pipelines of 100.",
        discussion: """
            Starts its own redis-server (no persistence) on a free port unless --redis-url is given, \
            runs SET with a \(valueSize)-byte value in three shapes, then runs redis-benchmark with the \
            matching -c/-P on the same server and prints both.
            """
    )

    static let valueSize = 16

    @Option(help: "Use this Redis instead of starting one; only one key is written. Environment: TERN_REDIS_URL.")
    var redisURL: String?

    @Option(help: "Commands per measurement for the sequential case (the others run 5× and 10× as many).")
    var requests: Int = 100_000

    @Option(help: "Runs of each measurement; the median is reported.")
    var runs: Int = 3

    @Option(help: "The client's busy-poll window in microseconds (RedisConfiguration.busyPoll); 0 turns it off.")
    var busyPollMicroseconds: Int?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let redisURL = redisURL ?? environment["TERN_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }
        var server: LocalRedisServer?
        if redisURL == nil {
            var options = LocalRedisServer.Options()
            options.appendOnly = false
            options.executable = LocalRedisServer.findExecutable(searchPath: environment["PATH"])
            server = try await LocalRedisServer.start(options)
        }
        defer { server?.stop() }
        let url = redisURL ?? server!.url
        var configuration: RedisConfiguration
        do {
            configuration = try RedisConfiguration(url: url)
        } catch {
            throw ValidationError("\(error)")
        }
        configuration.commandTimeout = .seconds(30)
        if let busyPollMicroseconds { configuration.busyPoll = .microseconds(busyPollMicroseconds) }
        let connection = RedisConnection(configuration: configuration)
        defer { connection.close() }
        _ = try await connection.send(RedisCommand("PING"))
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: Self.valueSize)
        let set = RedisCommand("SET", "key:__rand_int__", value)

        print(
            "tern-bench redis: SET, \(Self.valueSize)-byte value, \(configuration.endpointDescription), "
                + "busy-poll \(configuration.busyPoll), median of \(runs)")
        let sequential = try await median {
            try await Self.sequential(connection, set, count: requests)
        }
        let concurrent = try await median {
            try await Self.concurrent(connection, set, callers: 50, count: requests * 5)
        }
        let pipelined = try await median {
            try await Self.pipelined(connection, set, batch: 100, count: requests * 10)
        }
        let rows: [(String, Double, Int, Int, Int)] = [
            ("1 caller, 1 connection", sequential, 1, 1, requests),
            ("50 callers, 1 connection", concurrent, 50, 1, requests * 5),
            ("pipelines of 100", pipelined, 1, 100, requests * 10),
        ]
        print("")
        print("case                        tern ops/s   redis-benchmark          ops/s   tern/redis-benchmark")
        for (name, ours, clients, pipeline, count) in rows {
            let theirs = try? Self.redisBenchmark(configuration, clients: clients, pipeline: pipeline, count: count)
            let ratio = theirs.map { String(format: "%5.0f%%", ours / $0 * 100) } ?? "  n/a"
            print(
                name.padding(toLength: 26, withPad: " ", startingAt: 0)
                    + String(format: "%12.0f", ours) + "   "
                    + "-c \(clients) -P \(pipeline)".padding(toLength: 16, withPad: " ", startingAt: 0)
                    + (theirs.map { String(format: "%12.0f", $0) } ?? "         n/a") + "   " + ratio)
        }
    }

    private func median(_ measure: () async throws -> Double) async throws -> Double {
        var results: [Double] = []
        for _ in 0..<max(1, runs) { results.append(try await measure()) }
        return results.sorted()[results.count / 2]
    }

    static func sequential(_ connection: RedisConnection, _ command: RedisCommand, count: Int) async throws -> Double {
        let start = ContinuousClock.now
        for _ in 0..<count { _ = try await connection.send(command) }
        return rate(count, since: start)
    }

    static func concurrent(
        _ connection: RedisConnection, _ command: RedisCommand, callers: Int, count: Int
    ) async throws -> Double {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<callers {
                group.addTask {
                    for _ in 0..<(count / callers) { _ = try await connection.send(command) }
                }
            }
            try await group.waitForAll()
        }
        return rate(count / callers * callers, since: start)
    }

    static func pipelined(
        _ connection: RedisConnection, _ command: RedisCommand, batch: Int, count: Int
    ) async throws -> Double {
        let commands = Array(repeating: command, count: batch)
        let start = ContinuousClock.now
        for _ in 0..<(count / batch) { _ = try await connection.pipeline(commands) }
        return rate(count / batch * batch, since: start)
    }

    static func rate(_ count: Int, since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(count) / (Double(elapsed.nanoseconds) / 1e9)
    }

    /// Runs `redis-benchmark -t set` with matching options and returns its requests per second.
    static func redisBenchmark(
        _ configuration: RedisConfiguration, clients: Int, pipeline: Int, count: Int
    ) throws -> Double {
        var arguments = ["redis-benchmark"]
        switch configuration.endpoint {
        case .tcp(let host, let port): arguments += ["-h", host, "-p", String(port)]
        case .unix(let path): arguments += ["-s", path]
        }
        if let username = configuration.username { arguments += ["--user", username] }
        if let password = configuration.password { arguments += ["-a", password] }
        if configuration.database != 0 { arguments += ["--dbnum", String(configuration.database)] }
        arguments += [
            "-t", "set", "-d", String(valueSize), "-n", String(count), "-c", String(clients), "-P", String(pipeline),
            "--csv",
        ]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            if fields.count >= 2, fields[0] == "SET", let value = Double(fields[1]) { return value }
        }
        throw ValidationError("could not read redis-benchmark's output")
    }
}
