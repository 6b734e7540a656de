import ArgumentParser
import Broker
import Foundation
import Tasks
import TernCore
import TernTesting

/// `tern-bench workflows`: what a group's fan-in costs Redis per member — the same no-op jobs run
/// plain and as the members of one group, through the broker as a worker drives it.
struct WorkflowsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflows",
        abstract: "Measure the Redis CPU a group's fan-in adds per member (plain jobs against one group of the same jobs)."
    )

    @Option(help: "Members of the group (and plain jobs).")
    var members: Int = 10_000

    @Option(help: "Runs of each; the median is printed.")
    var runs: Int = 3

    @Option(help: "Use this Redis instead of starting one (AOF everysec); keys go under the prefix wfbench.")
    var redisURL: String?

    func run() async throws {
        let redis = try await BenchRedis.start(url: redisURL)
        defer { redis.stop() }
        let client = RedisClient(configuration: redis.configuration)
        defer { client.close() }
        print("tern-bench workflows: Redis at \(redis.configuration.endpointDescription); \(members) members, median of \(runs)")
        var plain: [Double] = [], grouped: [Double] = [], submit: [Double] = [], release: [Double] = []
        for run in 0..<runs {
            let broker = try RedisJobBroker(client: client, prefix: "wfbench\(run)")
            try await broker.prepare()
            let tern = TernClient(broker: broker)
            plain.append(try await redisCPU(client) {
                for start in stride(from: 0, to: members, by: 1000) {
                    _ = try await tern.enqueueBatch(Echo.self, Array(repeating: .null, count: min(1000, members - start)))
                }
                try await drain(broker)
            } * 1e6 / Double(members))
            var handle: WorkflowHandle<[JSONValue]>?
            submit.append(try await redisCPU(client) {
                handle = try await tern.enqueue(.group(Array(repeating: Echo.job(.null), count: members)))
            } * 1e6 / Double(members))
            var last = ContinuousClock.now
            grouped.append(try await redisCPU(client) {
                last = try await drain(broker)
                _ = try await handle!.result(timeout: .seconds(600), pollInterval: .milliseconds(1))
            } * 1e6 / Double(members) + submit[run])
            let elapsed = (ContinuousClock.now - last).components
            release.append(Double(elapsed.seconds) * 1000 + Double(elapsed.attoseconds) / 1e15)
            _ = try await client.send("FLUSHDB")
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        print(row("plain jobs: enqueue + claim + complete", median(plain), "µs of Redis CPU per job"))
        print(row("group members: submit (tern_depend + tern_wait)", median(submit), "µs per member"))
        print(row("group members: all in", median(grouped), "µs per member"))
        print(row("fan-in overhead", median(grouped) - median(plain), "µs per member"))
        print(row("last member done → group result read", median(release), "ms"))
    }

    /// Claims and completes every job of the default queue in batches of 64, each batch's
    /// completions at once (merged into one call, as a busy worker's are). Returns when the last
    /// completion was acknowledged.
    @discardableResult
    private func drain(_ broker: RedisJobBroker) async throws -> ContinuousClock.Instant {
        var last = ContinuousClock.now
        while true {
            let claimed = try await broker.claim(queue: .default, limit: 64, worker: "bench", lease: .seconds(60))
            if claimed.isEmpty { return last }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for job in claimed { group.addTask { _ = try await broker.complete(job.lease, result: Data("null".utf8)) } }
                try await group.waitForAll()
            }
            last = ContinuousClock.now
        }
    }

    private func row(_ name: String, _ value: Double, _ unit: String) -> String {
        name.padding(toLength: 52, withPad: " ", startingAt: 0) + String(format: "%.2f", value).leftPadded(10) + " " + unit
    }
}
