import ArgumentParser
import Broker
import Foundation
import Tasks
import TernCore
import TernTesting

/// `tern-bench enqueue-floor`: what a batched enqueue costs Redis per job, against the floor of the
/// same writes sent as native commands, and against `push_bulk`'s single list push (issue 16's bulk
/// row). Nothing in Tern uses the native variants: they price what a native enqueue path and a
/// packed job hash would save before anyone builds them.
struct EnqueueFloorBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue-floor",
        abstract: "Price batched enqueue: Redis CPU per job of tern_enqueue against native writes and a list push."
    )

    @Option(help: "Jobs enqueued per figure, in batches of 1,000.")
    var jobs: Int = 30_000

    @Option(help: "Rounds; each measures every variant once, interleaved.")
    var rounds: Int = 3

    @Option(help: "Use this Redis instead of starting one (AOF everysec); keys go under the prefixes efbench and floor.")
    var redisURL: String?

    func run() async throws {
        let redis = try await BenchRedis.start(url: redisURL)
        defer { redis.stop() }
        let client = RedisClient(configuration: redis.configuration)
        defer { client.close() }
        print("tern-bench enqueue-floor: Redis at \(redis.configuration.endpointDescription); \(jobs) jobs per figure, batches of 1,000")
        let broker = try RedisJobBroker(client: client, prefix: "efbench")
        try await broker.prepare()
        let tern = TernClient(broker: broker)
        print("Redis process CPU per job (µs):")
        for round in 1...rounds {
            let function = try await perJob(client) {
                for start in stride(from: 0, to: jobs, by: 1000) {
                    _ = try await tern.enqueueBatch(Echo.self, Array(repeating: .null, count: min(1000, jobs - start)))
                }
            }
            let native = try await perJob(client) { try await nativeBatches(client, packed: false, round: round) }
            let packed = try await perJob(client) { try await nativeBatches(client, packed: true, round: round) }
            let push = try await perJob(client) { try await listPushes(client) }
            print(String(
                format: "round %d: tern_enqueue %6.2f | same hash, native MULTI %6.2f | packed hash (2 fields), native %6.2f | RPUSH of a 180-byte payload %6.2f",
                round, function, native, packed, push))
            try await deleteKeys(client, matching: "efbench:*")
            try await deleteKeys(client, matching: "floor:*")
        }
    }

    /// Deletes this bench's keys (a shared Redis keeps the rest).
    private func deleteKeys(_ client: RedisClient, matching pattern: String) async throws {
        var cursor = "0"
        repeat {
            let reply = try await client.send("SCAN", cursor, "MATCH", pattern, "COUNT", "1000").array ?? []
            guard reply.count == 2 else { return }
            cursor = reply[0].string ?? "0"
            let keys = (reply[1].array ?? []).compactMap(\.string)
            if !keys.isEmpty { _ = try await client.send(RedisCommand("UNLINK", arguments: keys.map { $0 as any RedisArgument })) }
        } while cursor != "0"
    }

    private func perJob(_ client: RedisClient, _ body: () async throws -> Void) async throws -> Double {
        try await redisCPU(client, body) * 1e6 / Double(jobs)
    }

    /// Tern's job hash (the fields `tern_enqueue` writes for a plain job), or the same packed into
    /// one value beside `state`, and the ids in a pending sorted set, in one `MULTI` per 1,000.
    private func nativeBatches(_ client: RedisClient, packed: Bool, round: Int) async throws {
        let now = String(WallClock.nowMilliseconds())
        for start in stride(from: 0, to: jobs, by: 1000) {
            var commands = [RedisCommand("MULTI")]
            var pending: [any RedisArgument] = ["floor:{q}:pending"]
            for index in start..<min(jobs, start + 1000) {
                let id = JobID.generate(queue: .default).rawValue
                let key = "floor:{q}:job:\(id)"
                if packed {
                    commands.append(RedisCommand(
                        "HSET", key, "state", "queued", "spec", "1 \(id) echo 5 0 3 \(now) \(now) 86400000 604800000 null"))
                } else {
                    commands.append(RedisCommand(
                        "HSET", key, "v", "1", "id", id, "task", "echo", "input", "null", "priority", "5", "attempts", "0",
                        "max_attempts", "3", "state", "queued", "created_ms", now, "due_ms", now, "retention_ms", "86400000",
                        "failed_retention_ms", "604800000"))
                }
                pending += [String(4 << 40 + round * jobs + index), id]
            }
            commands.append(RedisCommand("ZADD", arguments: pending))
            commands.append(RedisCommand("EXEC"))
            _ = try await client.pipeline(commands)
        }
    }

    /// What `push_bulk` sends per 1,000 jobs: one `LPUSH` of JSON payloads of about 180 bytes.
    private func listPushes(_ client: RedisClient) async throws {
        for start in stride(from: 0, to: jobs, by: 1000) {
            var payloads: [any RedisArgument] = ["floor:{q}:list"]
            for index in start..<min(jobs, start + 1000) {
                payloads.append(
                    #"{"retry":true,"queue":"default","class":"NoopJob","args":[\#(index)],"jid":"\#(UUID().uuidString.prefix(24))","created_at":1765000000.123,"enqueued_at":1765000000.124}"#)
            }
            _ = try await client.pipeline([RedisCommand("LPUSH", arguments: payloads)])
        }
    }
}
