import ArgumentParser
import Broker
import Foundation
import Tasks
import TernCore
import TernTesting

/// `tern-bench limits`: what limits cost Redis per job — the same no-op jobs drained without a
/// limit, under limits that never hold a job back (every job takes a rate slot and a concurrency
/// slot), and under per-key limits that hold back almost every job once.
struct LimitsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limits", abstract: "Measure the Redis CPU per job of rate and concurrency limits.")

    @Option(help: "Jobs per case.")
    var jobs: Int = 10_000

    @Option(help: "Runs of each case; the median is printed.")
    var runs: Int = 3

    @Option(help: "Limit keys in the held-back case (each with a concurrency of 1).")
    var keys: Int = 100

    @Option(help: "Use this Redis instead of starting one (AOF everysec); keys go under the prefix limbench.")
    var redisURL: String?

    func run() async throws {
        let redis = try await BenchRedis.start(url: redisURL)
        defer { redis.stop() }
        let client = RedisClient(configuration: redis.configuration)
        defer { client.close() }
        print("tern-bench limits: Redis at \(redis.configuration.endpointDescription); \(jobs) jobs per case, median of \(runs)")
        var results: [String: [Double]] = [:]
        let cases: [(String, JobLimit?, LimitScope, Bool)] = [
            ("no limit", nil, .queue, false),
            ("queue limit, never reached (rate + concurrency)", JobLimit.rate(1_000_000, per: .seconds(1), burst: 1_000_000).concurrency(1_000_000), .queue, false),
            ("per-key concurrency 1, \(keys) keys (held back once each)", .concurrency(1), .perKey(Echo.name), true),
        ]
        for run in 0..<runs {
            for (index, (name, limit, scope, keyed)) in cases.enumerated() {
                let broker = try RedisJobBroker(client: client, prefix: "limbench\(run)x\(index)")
                try await broker.prepare()
                if let limit { try await broker.setLimit(.some(limit), scope: scope, queue: .default, declared: false) }
                let requests = try (0..<jobs).map { number -> EnqueueRequest in
                    var request = try TernClient.request(Echo.self, .null)
                    if keyed { request.limitKey = "k\(number % keys)" }
                    return request
                }
                let seconds = try await redisCPU(client) {
                    for start in stride(from: 0, to: jobs, by: 1000) { _ = try await broker.enqueue(Array(requests[start..<min(start + 1000, jobs)])) }
                    try await drain(broker)
                }
                results[name, default: []].append(seconds * 1e6 / Double(jobs))
                _ = try await client.send("FLUSHDB")
            }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let base = median(results[cases[0].0]!)
        for (name, _, _, _) in cases {
            let value = median(results[name]!)
            print(name.padding(toLength: 60, withPad: " ", startingAt: 0) + String(format: "%8.2f µs/job  (%+.2f)", value, value - base))
        }
    }

    /// Claims and completes jobs of the default queue in batches of 64 until all are done (a
    /// claim that finds nothing while jobs are held back waits 1 ms).
    private func drain(_ broker: RedisJobBroker) async throws {
        var done = 0
        while done < jobs {
            let claimed = try await broker.claim(queue: .default, limit: 64, worker: "bench", lease: .seconds(60))
            if claimed.isEmpty {
                try await Task.sleep(for: .milliseconds(1))
                continue
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for job in claimed { group.addTask { _ = try await broker.complete(job.lease, result: Data("null".utf8)) } }
                try await group.waitForAll()
            }
            done += claimed.count
        }
    }
}
