import Broker
import Foundation
import Logging
import Synchronization
import TernCore
import TernTesting
import Testing
import Worker

/// A test task that counts its runs per input, so a test can see a job run twice.
struct CountedTask: TernTask {
    struct Input: Codable, Sendable { var n: Int }
    struct Output: Codable, Sendable { var n: Int }
    static let name = "test.counted"
    static let options = TaskOptions(maxAttempts: 5)
    static let runs = Mutex<[Int: Int]>([:])
    func run(_ input: Input, context: JobContext) async throws -> Output {
        Self.runs.withLock { $0[input.n, default: 0] += 1 }
        try await Task.sleep(for: .milliseconds(20))
        return Output(n: input.n)
    }
}

/// A primary, two replicas and three sentinels on loopback ports, stopped by pid.
final class SentinelGroup: Sendable {
    let primary: LocalRedisServer
    let replicas: [LocalRedisServer]
    let sentinelPorts: [Int]
    let sentinelPIDs: [pid_t]
    let directory: String
    static let masterName = "tern-test"

    init(primary: LocalRedisServer, replicas: [LocalRedisServer], sentinelPorts: [Int], sentinelPIDs: [pid_t], directory: String) {
        (self.primary, self.replicas, self.sentinelPorts, self.sentinelPIDs, self.directory) =
            (primary, replicas, sentinelPorts, sentinelPIDs, directory)
    }

    static func start() async throws -> SentinelGroup {
        let primary = try await TestRedis.start(["--repl-diskless-sync-delay", "0"])
        var replicas: [LocalRedisServer] = []
        for _ in 0..<2 {
            replicas.append(try await TestRedis.start(["--replicaof", "127.0.0.1", String(primary.port)]))
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tern-sentinel-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var ports: [Int] = []
        var pids: [pid_t] = []
        for index in 0..<3 {
            let port = try LocalRedisServer.freePort()
            let file = "\(directory)/sentinel-\(index).conf"
            try """
                port \(port)
                bind 127.0.0.1
                dir \(directory)
                logfile \(directory)/sentinel-\(index).log
                sentinel monitor \(masterName) 127.0.0.1 \(primary.port) 2
                sentinel down-after-milliseconds \(masterName) 1000
                sentinel failover-timeout \(masterName) 10000
                sentinel parallel-syncs \(masterName) 2

                """.write(toFile: file, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestRedis.executable ?? "/usr/bin/redis-server")
            process.arguments = [file, "--sentinel"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            pids.append(process.processIdentifier)
            ports.append(port)
        }
        let group = SentinelGroup(primary: primary, replicas: replicas, sentinelPorts: ports, sentinelPIDs: pids, directory: directory)
        // Ready: both replicas in sync, and every sentinel knows both replicas and the other two sentinels.
        let admin = RedisClient(configuration: try TestRedis.configuration(primary))
        defer { admin.close() }
        try await eventually(within: .seconds(60)) {
            let info = try await admin.send("INFO", "replication").string ?? ""
            guard info.contains("connected_slaves:2"), info.components(separatedBy: "state=online").count == 3 else {
                throw WaitError("replicas not in sync yet")
            }
            for port in ports {
                let sentinel = RedisConnection(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)))
                defer { sentinel.close() }
                let replicas = try await sentinel.send(RedisCommand("SENTINEL", "REPLICAS", masterName))
                let others = try await sentinel.send(RedisCommand("SENTINEL", "SENTINELS", masterName))
                guard replicas.array?.count == 2, others.array?.count == 2 else {
                    throw WaitError("sentinel \(port) does not know the whole group yet")
                }
            }
        }
        return group
    }

    /// The primary's replication offset and each replica's acknowledged one (`INFO replication`).
    static func offsets(_ client: RedisClient) async throws -> (primary: Int, replicas: [Int]) {
        let info = try await client.send("INFO", "replication").string ?? ""
        var primary = 0
        var replicas: [Int] = []
        for line in info.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("master_repl_offset:") { primary = Int(line.dropFirst("master_repl_offset:".count)) ?? 0 }
            if line.hasPrefix("slave"), let field = line.split(separator: ",").first(where: { $0.hasPrefix("offset=") }) {
                replicas.append(Int(field.dropFirst("offset=".count)) ?? 0)
            }
        }
        return (primary, replicas)
    }

    var url: String { "redis+sentinel://" + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/\(Self.masterName)" }

    func stop() {
        for pid in sentinelPIDs {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        primary.stop()
        for replica in replicas { replica.stop() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

extension HeavyProcessTests {
    @Suite("Redis Sentinel", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct SentinelTests {
        @Test("the primary is found through Sentinel; after it is killed under load, work resumes on the promoted replica", arguments: TestRedis.transports)
        func failover(transport: RedisConfiguration.Transport) async throws {
            let group = try await SentinelGroup.start()
            defer { group.stop() }
            var configuration = try RedisConfiguration(url: group.url)
            configuration.transport = transport
            configuration.reconnectBackoff = .init(base: .milliseconds(20), cap: .milliseconds(200))
            let client = RedisClient(configuration: configuration)
            defer { client.close() }
            #expect(try await client.send("ROLE").array?.first?.string == "master")
            #expect(try await client.send("CONFIG", "GET", "port").array?.last?.string == String(group.primary.port))

            let broker = try RedisJobBroker(client: client, prefix: "t" + String(UUID().uuidString.prefix(8)))
            try await broker.prepare()
            var registry = TaskRegistry()
            try registry.register(CountedTask.self)
            let tern = TernClient(broker: broker)
            let base = transport == .eventLoop ? 1_000_000 : 0
            var handles: [JobHandle<CountedTask>] = []
            for n in 0..<600 { handles.append(try await tern.enqueue(CountedTask.self, .init(n: base + n))) }

            var workerConfiguration = JobEnvironment.workerConfiguration(concurrency: 8)
            workerConfiguration.lease = .seconds(3)
            let worker = JobWorker(
                broker: broker, registry: registry, configuration: workerConfiguration,
                logger: Logger(label: "test.worker", factory: { _ in SwiftLogNoOpLogHandler() }))
            let running = Task { try await worker.run() }
            defer { running.cancel() }
            try await eventually(within: .seconds(60)) {
                let done = CountedTask.runs.withLock { runs in (0..<600).filter { runs[base + $0] != nil }.count }
                guard done >= 60 else { throw WaitError("\(done) runs so far") }
            }
            // Replication is asynchronous: let the writes so far reach both replicas (as they would
            // within milliseconds in production), then kill the primary while work goes on.
            let offset = try await SentinelGroup.offsets(client).primary
            try await eventually { guard try await SentinelGroup.offsets(client).replicas.allSatisfy({ $0 >= offset }) else { throw WaitError("replicas behind") } }
            await group.primary.kill()
            let killed = ContinuousClock.now
            let doneAtKill = CountedTask.runs.withLock { runs in (0..<600).filter { runs[base + $0] != nil }.count }
            // Resumed: an enqueue is acknowledged by the promoted primary.
            let late = try await eventually(within: .seconds(30)) { try await tern.enqueue(CountedTask.self, .init(n: base + 600)) }
            let resumed = ContinuousClock.now - killed
            recordTiming("Sentinel failover: SIGKILL of the primary to the first acknowledged enqueue (\(transport))", resumed, bound: .seconds(10))
            #expect(resumed < .seconds(10))
            #expect(try await client.send("ROLE").array?.first?.string == "master")

            for (index, handle) in (handles + [late]).enumerated() {
                do {
                    // A caller retries what fails transiently around a failover (a reset connection).
                    let output = try await eventually(within: .seconds(60)) { try await handle.result(timeout: .seconds(60)) }
                    #expect(output.n >= base)
                } catch {
                    let runs = CountedTask.runs.withLock { $0[base + index] }
                    Issue.record("job \(index) (runs \(String(describing: runs))): \(error)")
                }
            }
            #expect(doneAtKill < 600, "the primary must die while jobs are still waiting")
            let runs = CountedTask.runs.withLock { runs in (0...600).map { runs[base + $0] ?? 0 } }
            #expect(runs.allSatisfy { $0 >= 1 && $0 <= 2 })
            // Only jobs in flight around the kill (their claim or completion not yet replicated) may run twice.
            #expect(runs.filter { $0 == 2 }.count <= 16)
        }
    }
}
