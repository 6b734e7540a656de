import ArgumentParser
import Broker
import Foundation
import Logging
import Synchronization
import Tasks
import TernCore
import TernTesting
import Worker

/// `tern-bench jobs`: the job system's throughput and latency on a Redis with AOF `everysec`.
struct JobsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "Measure enqueue rates, drain rate, the data model's ceiling, enqueue→start latency, RSS and Redis commands per job."
    )

    @Option(help: "Jobs drained by the worker.")
    var jobs: Int = 100_000

    @Option(help: "Use this Redis (it must keep data: appendonly yes) instead of starting one; keys go under bench prefixes.")
    var redisURL: String?

    @Option(help: "Worker concurrency.")
    var concurrency: Int = 64

    @Option(help: "Jobs for the latency measurement (enqueued one at a time, 2 ms apart).")
    var latencyJobs: Int = 2_000

    @Option(help: "The Redis client's busy-poll window in microseconds (RedisConfiguration.busyPoll); 0 turns it off.")
    var busyPollMicroseconds: Int?

    @Option(help: "The Redis client's transport: thread or event-loop (RedisConfiguration.Transport). rediss:// URLs always use event-loop.")
    var transport: String = "thread"

    func run() async throws {
        guard ["thread", "event-loop"].contains(transport) else {
            throw ValidationError("--transport must be thread or event-loop, not '\(transport)'")
        }
        let redis = try await BenchRedis.start(url: redisURL)
        defer { redis.stop() }
        var configuration = redis.configuration
        if let busyPollMicroseconds { configuration.busyPoll = .microseconds(busyPollMicroseconds) }
        if transport == "event-loop" { configuration.transport = .eventLoop }
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        print(
            "tern-bench jobs: Redis at \(configuration.endpointDescription)\(configuration.tls == nil ? "" : " over TLS"), "
                + "\(configuration.effectiveTransport == .eventLoop ? "event-loop" : "thread") transport; \(jobs) jobs, concurrency \(concurrency)")

        // Enqueue rates, each on its own key prefix.
        let oneByOne = try await measureEnqueue(client, prefix: "e1", count: 10_000) { tern, count in
            for index in 0..<count { _ = try await tern.enqueue(Echo.self, .number(Double(index))) }
        }
        let concurrent = try await measureEnqueue(client, prefix: "e50", count: 50_000) { tern, count in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<50 {
                    group.addTask {
                        for index in 0..<(count / 50) { _ = try await tern.enqueue(Echo.self, .number(Double(task * count + index))) }
                    }
                }
                try await group.waitForAll()
            }
        }
        let batched = try await measureEnqueue(client, prefix: "drain", count: jobs) { tern, count in
            for start in stride(from: 0, to: count, by: 1000) {
                _ = try await tern.enqueueBatch(Echo.self, Array(repeating: .null, count: min(1000, count - start)))
            }
        }
        print(row("enqueue, one by one from 1 task", oneByOne, "jobs/s"))
        print(row("enqueue, 50 concurrent tasks", concurrent, "jobs/s"))
        print(row("enqueue, batches of 1,000", batched, "jobs/s"))

        // Drain by one worker, with Redis command counts.
        let broker = try RedisJobBroker(client: client, prefix: "drain")
        let before = try await commandStats(client)
        let cpuBefore = try await redisCPU(client)
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        var workerConfiguration = WorkerConfiguration()
        workerConfiguration.concurrency = concurrency
        let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let worker = JobWorker(broker: broker, registry: registry, configuration: workerConfiguration, logger: logger)
        let start = ContinuousClock.now
        let processCPUBefore = BenchProcess.cpuSeconds()
        let running = Task { try await worker.run() }
        while try await broker.stats(.default).succeeded < jobs {
            try await Task.sleep(for: .milliseconds(5))
        }
        let drainRate = Double(jobs) / seconds(since: start)
        let processCPU = BenchProcess.cpuSeconds() - processCPUBefore
        let rss = BenchProcess.residentMegabytes()
        worker.shutdown()
        try await running.value
        let after = try await commandStats(client)
        let cpuAfter = try await redisCPU(client)
        print(row("drain, 1 worker process", drainRate, "jobs/s"))
        print(row("worker CPU per job (this process, with 5 ms polls)", processCPU / Double(jobs) * 1e6, "µs"))
        print(row("worker RSS after the drain (concurrency \(concurrency))", rss, "MB"))
        print(row("Redis CPU per job during the drain", (cpuAfter - cpuBefore) / Double(jobs) * 1e6, "µs"))
        printCommands(before: before, after: after, jobs: jobs)

        // The data model's ceiling: claim 64, complete 64 in one pipeline, no worker logic.
        let ceiling = try await measureCeiling(client)
        print(row("ceiling: claim + complete Functions back to back", ceiling, "jobs/s"))
        print(row("drain / ceiling", drainRate / ceiling * 100, "%"))

        let (p50, p99) = try await measureLatency(client, registry: registry, logger: logger)
        print(row("enqueue→start latency p50 (idle worker)", p50, "ms"))
        print(row("enqueue→start latency p99 (idle worker)", p99, "ms"))
    }

    private func row(_ name: String, _ value: Double, _ unit: String) -> String {
        let formatted = value >= 100 ? String(format: "%.0f", value) : String(format: "%.3f", value)
        return name.padding(toLength: 56, withPad: " ", startingAt: 0) + formatted.leftPadded(12) + " " + unit
    }

    private func measureEnqueue(
        _ client: RedisClient, prefix: String, count: Int, _ body: (TernClient, Int) async throws -> Void
    ) async throws -> Double {
        let broker = try RedisJobBroker(client: client, prefix: prefix)
        try await broker.prepare()
        let tern = TernClient(broker: broker)
        let start = ContinuousClock.now
        try await body(tern, count)
        return Double(count) / seconds(since: start)
    }

    private func measureCeiling(_ client: RedisClient) async throws -> Double {
        let broker = try RedisJobBroker(client: client, prefix: "ceiling")
        let tern = TernClient(broker: broker)
        let count = 50_000
        for _ in stride(from: 0, to: count, by: 1000) {
            _ = try await tern.enqueueBatch(Echo.self, Array(repeating: .null, count: 1000))
        }
        let result = Data("null".utf8)
        let start = ContinuousClock.now
        var done = 0
        while done < count {
            let claimed = try await broker.claim(queue: .default, limit: 64, worker: "ceiling", lease: .seconds(60))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for job in claimed { group.addTask { _ = try await broker.complete(job.lease, result: result) } }
                try await group.waitForAll()
            }
            done += claimed.count
        }
        return Double(count) / seconds(since: start)
    }

    private func measureLatency(
        _ client: RedisClient, registry: TaskRegistry, logger: Logger
    ) async throws -> (Double, Double) {
        let broker = try RedisJobBroker(client: client, prefix: "latency")
        let tern = TernClient(broker: broker)
        var latencyRegistry = registry
        try latencyRegistry.register(Stamp.self)
        var configuration = WorkerConfiguration()
        configuration.concurrency = concurrency
        configuration.idleWait = .seconds(5)
        let worker = JobWorker(broker: broker, registry: latencyRegistry, configuration: configuration, logger: logger)
        let running = Task { try await worker.run() }
        try await Task.sleep(for: .milliseconds(300))
        var latencies: [Double] = []
        for _ in 0..<latencyJobs {
            let sent = ContinuousClock.now
            let handle = try await tern.enqueue(Stamp.self, .null)
            let started = await Stamp.started(handle.id)
            latencies.append(Double((started - sent).nanoseconds) / 1e6)
            try await Task.sleep(for: .milliseconds(2))
        }
        worker.shutdown()
        try await running.value
        latencies.sort()
        return (latencies[latencies.count / 2], latencies[min(latencies.count - 1, latencies.count * 99 / 100)])
    }

    private func redisCPU(_ client: RedisClient) async throws -> Double {
        let text = try await client.send("INFO", "cpu").string ?? ""
        var seconds = 0.0
        for line in text.split(whereSeparator: \.isNewline)
        where line.hasPrefix("used_cpu_sys:") || line.hasPrefix("used_cpu_user:") {
            seconds += Double(line.split(separator: ":").last ?? "") ?? 0
        }
        return seconds
    }

    /// `INFO commandstats` as calls and microseconds per command name.
    private func commandStats(_ client: RedisClient) async throws -> [String: (calls: Int, usec: Int)] {
        let text = try await client.send("INFO", "commandstats").string ?? ""
        var stats: [String: (calls: Int, usec: Int)] = [:]
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let name = String(line.dropFirst(8).prefix { $0 != ":" })
            let fields = line.drop { $0 != ":" }.dropFirst().split(separator: ",")
            func value(_ key: String) -> Int {
                Int(fields.first { $0.hasPrefix(key + "=") }?.dropFirst(key.count + 1) ?? "") ?? 0
            }
            stats[name] = (value("calls"), value("usec"))
        }
        return stats
    }

    /// Prints the drain's Redis commands: round trips, commands inside Functions, CPU, and the
    /// costliest commands per job (the ones inside Functions included).
    private func printCommands(
        before: [String: (calls: Int, usec: Int)], after: [String: (calls: Int, usec: Int)], jobs: Int
    ) {
        let scriptOnly: Set<String> = ["hget", "hset", "hmget", "hdel", "hincrby", "zadd", "zrem", "zpopmin", "zrangebyscore",
            "pexpire", "lpush", "ltrim", "get", "set", "time", "zcard", "zremrangebyscore", "zrange", "del", "publish",
            "lpop", "rpush", "llen", "lrem", "unlink", "exists"]
        let delta = after.map { name, stat in
            (name: name, calls: stat.calls - (before[name]?.calls ?? 0), usec: stat.usec - (before[name]?.usec ?? 0))
        }.filter { $0.calls > 0 && $0.name != "info" }
        let perJob = { (value: Int) in Double(value) / Double(jobs) }
        print(row("Redis round trips (top-level commands) per job", perJob(delta.filter { !scriptOnly.contains($0.name) }.map(\.calls).reduce(0, +)), ""))
        print(row("  of which FCALL per job", perJob(delta.first { $0.name == "fcall" }?.calls ?? 0), ""))
        print(row("  commands inside Functions too, per job", perJob(delta.map(\.calls).reduce(0, +)), ""))
        print(row("  inside FCALL (commandstats)", perJob(delta.first { $0.name == "fcall" }?.usec ?? 0), "µs"))
        for command in delta.filter({ $0.name != "fcall" }).sorted(by: { $0.usec > $1.usec }).prefix(8) {
            let name = "    \(command.name) (\(String(format: "%.2f", perJob(command.calls))) per job)"
            print(row(name, perJob(command.usec), "µs"))
        }
    }

    private func seconds(since start: ContinuousClock.Instant) -> Double {
        Double((ContinuousClock.now - start).nanoseconds) / 1e9
    }
}

/// A task that records when it started, for the latency measurement.
struct Stamp: TernTask {
    typealias Input = JSONValue
    typealias Output = JSONValue
    static let name = "bench.stamp"
    /// It only records a time: it runs on Swift's shared pool, as an I/O-bound task declared so does.
    static let options = TaskOptions(nonBlocking: true)
    private struct Starts {
        var times: [JobID: ContinuousClock.Instant] = [:]
        var waiters: [JobID: CheckedContinuation<ContinuousClock.Instant, Never>] = [:]
    }
    private static let starts = Mutex(Starts())

    /// Waits, without occupying a thread, until the job `id` has started; returns when it did.
    static func started(_ id: JobID) async -> ContinuousClock.Instant {
        await withCheckedContinuation { continuation in
            let time = starts.withLock { starts -> ContinuousClock.Instant? in
                if let time = starts.times[id] { return time }
                starts.waiters[id] = continuation
                return nil
            }
            if let time { continuation.resume(returning: time) }
        }
    }

    func run(_ input: JSONValue, context: JobContext) async throws -> JSONValue {
        let now = ContinuousClock.now
        let waiter = Self.starts.withLock { starts in
            starts.times[context.id] = now
            return starts.waiters.removeValue(forKey: context.id)
        }
        waiter?.resume(returning: now)
        return .null
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
