import ArgumentParser
import Broker
import Foundation
import Tasks
import TernCore
import TernTesting

/// `tern-bench fetch-sketch`: what the reliable-fetch layout sketched in BENCHMARKS.md (issue 16)
/// would cost Redis per job, against Tern's Functions in the same Redis and the same run.
///
/// The sketch is not Tern's layout and nothing in Tern uses it. Ready jobs are ids in a list; a
/// claim moves each id natively into the worker's own in-flight list (`LMOVE`), then stamps and
/// reads the job's hash in one pipeline; a completion is one lean Function per batch that fences
/// each job by removing its id from that list (`LREM`) and writes its outcome only if that removed
/// one. It prices the redesign before anyone builds it.
struct FetchSketchBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch-sketch",
        abstract: "Price a native reliable-fetch layout against Tern's Functions: Redis CPU per job by batch size."
    )

    @Option(help: "Jobs claimed and completed per measurement.")
    var jobs: Int = 20_000

    @Option(help: "Rounds; each measures every variant once, interleaved.")
    var rounds: Int = 2

    @Option(help: "Use this Redis instead of starting one (AOF everysec); keys go under the prefixes fnbench and sketch.")
    var redisURL: String?

    func run() async throws {
        let redis = try await BenchRedis.start(url: redisURL)
        defer { redis.stop() }
        let client = RedisClient(configuration: redis.configuration)
        defer { client.close() }
        print("tern-bench fetch-sketch: Redis at \(redis.configuration.endpointDescription); \(jobs) jobs per figure")
        let broker = try RedisJobBroker(client: client, prefix: "fnbench")
        try await broker.prepare()
        let tern = TernClient(broker: broker)
        let base = try RedisJobKeys(prefix: "fnbench").base(.default)
        try await client.send("FUNCTION", "LOAD", "REPLACE", Self.library)
        print("Redis process CPU per job (µs), claim + complete:")
        for round in 1...rounds {
            for batch in [16, 64] {
                for start in stride(from: 0, to: jobs, by: 1000) {
                    _ = try await tern.enqueueBatch(Echo.self, Array(repeating: .null, count: min(1000, jobs - start)))
                }
                let functions = try await perJob(client) {
                    try await FunctionsBench.claimAndComplete(client, base: base, jobs: jobs, batch: batch)
                }
                try await fillSketch(client)
                let full = try await perJob(client) { try await drainSketch(client, batch: batch, lean: false) }
                try await fillSketch(client)
                let lean = try await perJob(client) { try await drainSketch(client, batch: batch, lean: true) }
                print(String(
                    format: "round %d, batch %2d: Tern's Functions %6.1f | sketch %6.1f | sketch, completion reading nothing %6.1f",
                    round, batch, functions, full, lean))
            }
        }
        try await client.send("FUNCTION", "DELETE", "ternsketch")
    }

    private func perJob(_ client: RedisClient, _ body: () async throws -> Void) async throws -> Double {
        try await redisCPU(client, body) * 1e6 / Double(jobs)
    }

    /// Writes `jobs` job hashes with the fields Tern's enqueue writes, and lists their ids as ready.
    private func fillSketch(_ client: RedisClient) async throws {
        let now = String(WallClock.nowMilliseconds())
        for start in stride(from: 0, to: jobs, by: 1000) {
            var commands: [RedisCommand] = []
            var ids: [any RedisArgument] = ["sketch:{q}:ready"]
            for index in start..<min(jobs, start + 1000) {
                let id = "j\(index)-\(UUID().uuidString.prefix(8))"
                commands.append(RedisCommand(
                    "HSET", "sketch:{q}:job:\(id)", "task", "echo", "input", "null", "state", "queued", "priority", "5",
                    "attempts", "0", "max_attempts", "3", "created_ms", now, "due_ms", now, "retention_ms", "86400000",
                    "failed_retention_ms", "604800000", "queue", "default"))
                ids.append(id)
            }
            commands.append(RedisCommand("RPUSH", arguments: ids))
            _ = try await client.pipeline(commands)
        }
    }

    /// Claims and completes every ready job of the sketch, `batch` at a time.
    private func drainSketch(_ client: RedisClient, batch: Int, lean: Bool) async throws {
        let inflight = "sketch:{q}:inflight:bench"
        while true {
            let moved = try await client.pipeline(Array(
                repeating: RedisCommand("LMOVE", "sketch:{q}:ready", inflight, "LEFT", "RIGHT"), count: batch))
            let ids = moved.compactMap(\.string)
            if ids.isEmpty { break }
            let now = String(WallClock.nowMilliseconds())
            var stamps: [RedisCommand] = []
            for id in ids {
                let job = "sketch:{q}:job:\(id)"
                stamps.append(RedisCommand("HSET", job, "started_ms", now, "worker", "bench"))
                stamps.append(RedisCommand("HINCRBY", job, "attempts", "1"))
                stamps.append(RedisCommand("HMGET", job, "task", "input", "max_attempts", "headers", "suspect"))
            }
            _ = try await client.pipeline(stamps)
            var arguments: [any RedisArgument] = [lean ? "sketch_complete_lean" : "sketch_complete", "1", "sketch:{q}:", "bench"]
            for id in ids { arguments += [id, "null"] }
            _ = try await client.send(RedisCommand("FCALL", arguments: arguments))
        }
    }

    /// The sketch's completion: fencing by `LREM` from the worker's in-flight list. The full one
    /// also reads what Tern's completion needs of the job (retention, unique key, dependents, held
    /// limit slots); the lean one reads nothing, the floor of the layout.
    static let library = """
        #!lua name=ternsketch
        local function complete(keys, args, lean)
          local base, worker = keys[1], args[1]
          local t = redis.call('TIME')
          local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
          local nows = string.format('%d', now)
          local done, finished = {}, {}
          for i = 2, #args, 2 do
            local id = args[i]
            if redis.call('LREM', base .. 'inflight:' .. worker, '1', id) == 1 then
              local job = base .. 'job:' .. id
              local retention = '86400000'
              if not lean then
                local f = redis.call('HMGET', job, 'retention_ms', 'unique', 'dependents', 'held')
                retention = f[1] or retention
              end
              local drop = string.format('%d', now + tonumber(retention))
              redis.call('HSET', job, 'state', 'succeeded', 'finished_ms', nows, 'drop_ms', drop, 'result', args[i + 1])
              done[#done + 1] = id
              finished[#finished + 1] = drop
              finished[#finished + 1] = id
            end
          end
          if #done > 0 then
            redis.call('ZADD', base .. 'succeeded', unpack(finished))
            redis.call('PUBLISH', base .. 'events', 'succeeded ' .. table.concat(done, ' '))
            local minute = base .. 'minute:' .. string.format('%d', math.floor(now / 60000))
            if redis.call('HINCRBY', minute, 'succeeded', #done) == #done then redis.call('PEXPIRE', minute, '7200000') end
          end
          return #done
        end
        redis.register_function('sketch_complete', function(keys, args) return complete(keys, args, false) end)
        redis.register_function('sketch_complete_lean', function(keys, args) return complete(keys, args, true) end)
        """
}
