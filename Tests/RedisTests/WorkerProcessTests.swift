import Broker
import Foundation
import Tasks
import TernCore
import TernTesting
import Testing

/// The `worker` executable built next to the test bundle.
enum WorkerBinary {
    static var path: String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle, bundle.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("worker").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return ".build/debug/worker"
    }

    /// This process's environment with `TERN_TEST_TASKS=1`: the sample application then also
    /// registers the test tasks `crash`, `spin` and `record`.
    static var testTasksEnvironment: [String: String] {
        ProcessInfo.processInfo.environment.merging(["TERN_TEST_TASKS": "1"]) { $1 }
    }

    /// Runs the worker with `arguments` (and `environment`, else this process's) until it exits;
    /// returns its exit status and standard error.
    static func runToExit(_ arguments: [String], environment: [String: String]? = nil) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// Starts the worker (or another executable built beside it, such as `api`) with `arguments`
    /// and `environment` (by default: the test tasks registered), its standard error written to a
    /// new file at `log`.
    static func launch(
        _ arguments: [String], log: String, executable: String = "worker", environment: [String: String] = testTasksEnvironment
    ) throws -> Process {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path.replacingOccurrences(of: "/worker", with: "/" + executable))
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try process.run()
        return process
    }

    /// Starts a worker process against `environment`'s Redis and key prefix.
    static func start(_ environment: JobEnvironment, _ extra: [String] = []) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments =
            [
                "--redis-url", environment.server.url, "--prefix", environment.broker.keys.prefix,
                "--lease", "4", "--heartbeat", "0.2", "--reaper", "0.3",
            ] + extra
        process.environment = testTasksEnvironment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }
}

extension HeavyProcessTests {
    @Suite("Real worker processes", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct WorkerProcessTests {
        @Test("a worker killed with SIGKILL mid-job loses nothing: another worker re-runs its jobs after the lease")
        func sigkill() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let handles = try await environment.tern.enqueueBatch(Sleep.self, Array(repeating: .init(ms: 1_500), count: 12))
            let doomed = try WorkerBinary.start(environment, ["--concurrency", "4"])
            try await eventually(within: .seconds(30)) {
                let stats = try await environment.broker.stats(.default)
                guard stats.running == 4 else { throw WaitError("\(stats.running) running") }
            }
            kill(doomed.processIdentifier, SIGKILL)
            await waitForExit(doomed)
            #expect(doomed.terminationReason == .uncaughtSignal)
            // The jobs in flight at the kill stay `running` in Redis until their lease runs out (fewer
            // than 4 if one finished just before the kill).
            let running = try await environment.broker.jobs(queue: .default, state: .running, cursor: nil, limit: 10).jobs.map(\.id)
            #expect((1...4).contains(running.count), "\(running.count) running")

            let survivor = try WorkerBinary.start(environment, ["--concurrency", "8"])
            defer {
                survivor.terminate()
            }
            for handle in handles { _ = try await handle.result(timeout: .seconds(60)) }
            for handle in handles {
                let record = try await handle.status()
                #expect(record.state == .succeeded)
                if running.contains(handle.id) {
                    #expect(record.lostLeases == 1)
                    #expect(record.attempts == 2)
                } else {
                    #expect(record.lostLeases == 0)
                }
            }
            let stats = try await environment.broker.stats(.default)
            #expect(stats.succeeded == 12 && stats.running == 0 && stats.pending == 0)
        }

        @Test("SIGTERM: the worker stops claiming, finishes what it can, releases the rest at once, exits 0")
        func sigterm() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let short = try await environment.tern.enqueue(Sleep.self, .init(ms: 300), options: .init(priority: 9))
            let long = try await environment.tern.enqueueBatch(Sleep.self, [.init(ms: 60_000), .init(ms: 60_000)])
            let worker = try WorkerBinary.start(environment, ["--concurrency", "3", "--grace", "1"])
            for handle in long { _ = try await environment.waitFor(handle.id, .running, within: .seconds(30)) }
            kill(worker.processIdentifier, SIGTERM)
            let stopped = ContinuousClock.now
            await waitForExit(worker)
            recordTiming("a worker exits after SIGTERM (grace 1 s)", ContinuousClock.now - stopped, bound: .seconds(10))
            #expect(worker.terminationReason == .exit)
            #expect(worker.terminationStatus == 0)
            #expect(try await short.status().state == .succeeded)
            for handle in long {
                let record = try await handle.status()
                #expect(record.state == .queued)
                #expect(record.attempts == 0)
            }
            let stats = try await environment.broker.stats(.default)
            #expect(stats.running == 0)
            #expect(stats.pending == 2)
            #expect(stats.succeeded == 1)
        }

        @Test("a worker takes its queues from the config file; flags still win")
        func configFile() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let path = environment.server.directory + "/tern.yaml"
            try """
                redis:
                  url: redis://127.0.0.1:1
                  prefix: ignored
                worker:
                  queues: [special, default]
                  concurrency: 2
                """.write(toFile: path, atomically: true, encoding: .utf8)
            let handle = try await environment.tern.enqueue(Echo.self, .string("from config"), options: .init(queue: "special"))
            let worker = try WorkerBinary.start(environment, ["--config", path])
            defer {
                worker.terminate()
            }
            #expect(try await handle.result(timeout: .seconds(30)) == .string("from config"))
            let workers = try await environment.broker.workers()
            #expect(workers.first?.queues == ["special", "default"])
            #expect(workers.first?.concurrency == 2)
        }

        @Test("a missing config file named with --config is a usage error")
        func missingConfigFile() async throws {
            let (status, output) = try await offPool { try WorkerBinary.runToExit(["--config", "/nonexistent/tern.yaml"]) }
            #expect(status == 64)
            #expect(output.contains("config file /nonexistent/tern.yaml does not exist"))
        }

        @Test("a worker refuses a Redis without an append-only file unless allowed")
        func refusesVolatileRedis() async throws {
            let server = try await TestRedis.start(appendOnly: false)
            defer { server.stop() }
            let url = server.url
            let (status, output) = try await offPool { try WorkerBinary.runToExit(["--redis-url", url]) }
            #expect(status == 1)
            #expect(output.contains("appendonly is off"))
            #expect(output.contains("--allow-volatile-redis"))
        }
    
        @Test(
            "settings resolve flag over environment over file over default, and each error names its source",
            arguments: [
                // (flags, environment, file, exit status, text in the error)
                (["--concurrency", "0"], ["TERN_CONCURRENCY": "5"], "", Int32(64), "--concurrency must be 1...10000, not 0"),
                ([], ["TERN_CONCURRENCY": "ten"], "", 64, "TERN_CONCURRENCY must be a whole number, not 'ten'"),
                ([], ["TERN_CONCURRENCY": "0"], "worker:\n  concurrency: 5\n", 64, "TERN_CONCURRENCY must be 1...10000, not '0'"),
                ([], [:], "worker:\n  concurrency: 0\n", 64, "worker.concurrency must be 1...10000, not 0"),
                (["--concurrency", "4"], ["TERN_CONCURRENCY": "0"], "worker:\n  concurrency: 0\n", 0, ""),
                ([], ["TERN_CONCURRENCY": ""], "", 0, ""),
                ([], ["TERN_REDIS_URL": "http://x"], "", 64, "unknown scheme 'http://'"),
                ([], ["TERN_PREFIX": "a:b"], "", 64, "key prefix 'a:b' must be"),
                ([], [:], "worker:\n  lease_seconds: 2\n  heartbeat_seconds: 1\n", 64, "must be less than half of the lease"),
                ([], ["TERN_LOG_LEVEL": "loud"], "", 64, "TERN_LOG_LEVEL must be one of trace, debug"),
                (["--log-level", "debug"], ["TERN_LOG_LEVEL": "loud"], "", 0, ""),
                ([], [:], "log:\n  format: xml\n", 64, "log.format must be text or json, not 'xml'"),
                ([], ["TERN_REDIS_TRANSPORT": "fast"], "", 64, "TERN_REDIS_TRANSPORT must be thread or event-loop, not 'fast'"),
                ([], [:], "redis:\n  transport: event-loop\n", 0, ""),
                ([], ["TERN_REDIS_URL": "redis://h?ca=/c.pem"], "", 64, "for TLS use rediss://"),
                ([], [:], "redis:\n  sentinel:\n    master: m\n    nodes: [s1, 's2:26380']\n", 0, ""),
                ([], [:], "redis:\n  sentinel:\n    master: m\n    nodes: []\n", 64, "redis.sentinel needs a master name and at least one node"),
                ([], ["TERN_REDIS_URL": "rediss://h"], "redis:\n  sentinel:\n    master: m\n    nodes: [s1]\n", 64, "redis.sentinel works with a redis:// URL"),
                ([], [:], "redis:\n  cluster: [n1, 'n2:7001']\n", 0, ""),
                ([], ["TERN_REDIS_URL": "rediss://u:p@h?ca=/c.pem"], "redis:\n  cluster: [n1:7000]\n", 0, ""),
                ([], [:], "redis:\n  cluster: []\n", 64, "redis.cluster needs at least one node"),
                ([], ["TERN_REDIS_URL": "redis://h/2"], "redis:\n  cluster: [n1]\n", 64, "a Redis Cluster has only database 0"),
                ([], ["TERN_REDIS_URL": "redis+cluster://h:1/3"], "", 64, "a Redis Cluster has only database 0"),
                ([], ["TERN_TRACING_OTLP_ENDPOINT": "ftp://collector"], "", 64, "tracing.otlp_endpoint must be an http:// or https:// URL"),
            ] as [([String], [String: String], String, Int32, String)])
        func settingsResolution(flags: [String], variables: [String: String], file: String, status: Int32, text: String) async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tern-settings-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let config = directory.appendingPathComponent("tern.yaml").path
            try file.write(toFile: config, atomically: true, encoding: .utf8)
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TERN_") }
            environment.merge(variables) { $1 }
            let arguments = flags + ["--config", config, "--check-config"]
            let finalEnvironment = environment
            let (exit, output) = try await offPool { try WorkerBinary.runToExit(arguments, environment: finalEnvironment) }
            #expect(exit == status, "\(output)")
            if !text.isEmpty { #expect(output.contains(text), "\(output)") }
        }
    }
}
