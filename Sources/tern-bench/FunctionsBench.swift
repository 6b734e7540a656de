import ArgumentParser
import Broker
import Foundation
import Tasks
import TernCore
import TernTesting

/// `tern-bench functions`: where Redis spends its CPU inside Tern's Functions — the claim and
/// completion of jobs at several batch sizes, and the fixed costs of Lua on this Redis.
struct FunctionsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "functions",
        abstract: "Measure Redis CPU per job inside tern_claim + tern_complete by batch size, and the costs of Lua itself."
    )

    @Option(help: "Jobs claimed and completed per batch size.")
    var jobs: Int = 20_000

    @Option(help: "Use this Redis instead of starting one (AOF everysec); keys go under the prefix fnbench.")
    var redisURL: String?

    func run() async throws {
        let redis = try await BenchRedis.start(url: redisURL)
        defer { redis.stop() }
        let configuration = redis.configuration
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        print("tern-bench functions: Redis at \(configuration.endpointDescription); \(jobs) jobs per batch size")

        let broker = try RedisJobBroker(client: client, prefix: "fnbench")
        try await broker.prepare()
        let tern = TernClient(broker: broker)
        let base = try RedisJobKeys(prefix: "fnbench").base(.default)
        for batch in [1, 4, 16, 64] {
            let (enqueueFcall, enqueueCPU) = try await measured(client, jobs: jobs) {
                for start in stride(from: 0, to: jobs, by: 1000) {
                    _ = try await tern.enqueueBatch(Echo.self, Array(repeating: .null, count: min(1000, jobs - start)))
                }
            }
            if batch == 1 {
                print(row("enqueue, batches of 1,000: inside FCALL", enqueueFcall, "µs/job"))
                print(row("  Redis CPU (process)", enqueueCPU, "µs/job"))
            }
            let (fcall, cpu) = try await measured(client, jobs: jobs) {
                try await Self.claimAndComplete(client, base: base, jobs: jobs, batch: batch)
            }
            print(row("claim + complete, batches of \(batch): inside FCALL", fcall, "µs/job"))
            print(row("  Redis CPU (process)", cpu, "µs/job"))
        }

        // The costs of Lua itself, each function called 2,000 times.
        try await client.send("FUNCTION", "LOAD", "REPLACE", Self.probes)
        let arguments48 = (1...48).map { "argument\($0)" }
        for (name, label, withArguments) in [
            ("probe_empty", "an empty FCALL", false), ("probe_empty", "an empty FCALL with 48 arguments", true),
            ("probe_time", "TIME", false), ("probe_format", "16 × string.format('%d')", false),
            ("probe_nested", "a reply of 16 tables of 7 values", false), ("probe_flat", "a reply of 112 values, flat", false),
            ("probe_hset", "16 × HSET of 5 fields", false), ("probe_hset_one", "16 × HSET of 1 field", false),
        ] {
            let command = RedisCommand("FCALL", arguments: [name, "1", "fnbench:{probe}:"] + (withArguments ? arguments48 : []))
            let (fcall, _) = try await measured(client, jobs: 2000) {
                for _ in 0..<20 { _ = try await client.pipeline(Array(repeating: command, count: 100)) }
            }
            print(row("Lua: \(label)", fcall, "µs/call"))
        }
        try await client.send("FUNCTION", "DELETE", "ternprobes")
    }

    /// Claims and completes up to `jobs` jobs of the queue at `base` with raw calls of Tern's
    /// Functions, `batch` at a time, as one busy worker would.
    static func claimAndComplete(_ client: RedisClient, base: String, jobs: Int, batch: Int) async throws {
        var done = 0
        while done < jobs {
            let claimed = try await client.send("FCALL", "tern_claim", "1", base, String(batch), "bench", "60000", "flat").array ?? []
            if claimed.isEmpty { break }
            var arguments: [any RedisArgument] = ["tern_complete", "1", base]
            // 8 values per job: the id first, the token sixth.
            for start in stride(from: 0, to: claimed.count, by: 8) {
                arguments += [claimed[start].string ?? "", claimed[start + 5].string ?? "", "null"]
            }
            _ = try await client.send(RedisCommand("FCALL", arguments: arguments))
            done += claimed.count / 8
        }
    }

    /// Runs `body` and returns the microseconds per job inside `FCALL` and of Redis's process CPU.
    private func measured(_ client: RedisClient, jobs: Int, _ body: () async throws -> Void) async throws -> (Double, Double) {
        let before = try await stats(client)
        try await body()
        let after = try await stats(client)
        return ((after.fcall - before.fcall) / Double(jobs), (after.cpu - before.cpu) * 1e6 / Double(jobs))
    }

    private func stats(_ client: RedisClient) async throws -> (fcall: Double, cpu: Double) {
        let commands = try await client.send("INFO", "commandstats").string ?? ""
        let fcall = commands.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_fcall:") }
        let usec = fcall?.split(separator: ",").first { $0.hasPrefix("usec=") }?.dropFirst(5)
        let cpuText = try await client.send("INFO", "cpu").string ?? ""
        let cpu = cpuText.split(whereSeparator: \.isNewline)
            .filter { $0.hasPrefix("used_cpu_sys:") || $0.hasPrefix("used_cpu_user:") }
            .compactMap { Double($0.split(separator: ":").last ?? "") }.reduce(0, +)
        return (Double(usec.map(String.init) ?? "") ?? 0, cpu)
    }

    private func row(_ name: String, _ value: Double, _ unit: String) -> String {
        name.padding(toLength: 56, withPad: " ", startingAt: 0) + String(format: "%.2f", value).leftPadded(10) + " " + unit
    }

    /// Functions that each do one thing, to price it.
    static let probes = """
        #!lua name=ternprobes
        redis.register_function('probe_empty', function(keys, args) return 1 end)
        redis.register_function('probe_time', function(keys, args) redis.call('TIME') return 1 end)
        redis.register_function('probe_format', function(keys, args)
          for i = 1, 16 do string.format('%d', 1700000000000 + i) end
          return 1
        end)
        redis.register_function('probe_nested', function(keys, args)
          local out = {}
          for i = 1, 16 do out[i] = {'id' .. i, 'task', 'null', 1, 3, 'token', 0} end
          return out
        end)
        redis.register_function('probe_flat', function(keys, args)
          local out = {}
          for i = 1, 16 do
            local n = #out
            out[n + 1], out[n + 2], out[n + 3], out[n + 4] = 'id' .. i, 'task', 'null', 1
            out[n + 5], out[n + 6], out[n + 7] = 3, 'token', 0
          end
          return out
        end)
        redis.register_function('probe_hset', function(keys, args)
          for i = 1, 16 do
            redis.call('HSET', keys[1] .. i, 'state', 'running', 'attempts', '1', 'started_ms', '1700000000000', 'worker', 'w', 'token', 't')
          end
          return 1
        end)
        redis.register_function('probe_hset_one', function(keys, args)
          for i = 1, 16 do redis.call('HSET', keys[1] .. i, 'state', 'running') end
          return 1
        end)
        """
}
