import ArgumentParser
import Foundation
import NIOHTTP1

/// `tern queues`.
struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues", abstract: "Every queue: counts, how long the oldest job has waited, paused.",
        discussion: "Example:\n  tern queues\n  tern queues --json | jq '.queues[] | select(.failed > 0)'")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runClient {
            let queues = try await options.client().allQueues()
            if options.json { return Output.json(["queues": queues]) }
            printQueues(queues)
        }
    }
}

func printQueues(_ queues: [[String: Any]]) {
    Output.table(["QUEUE", "PENDING", "SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED", "OLDEST", "PAUSED"], queues.map { queue in
        let oldest = (queue["oldest_pending_ms"] as? Int).map { $0 > 0 ? String(format: "%.1fs", Double($0) / 1000) : "-" } ?? "-"
        return [Output.value(queue["queue"]), Output.value(queue["pending"]), Output.value(queue["scheduled"]), Output.value(queue["running"]),
                Output.value(queue["succeeded"]), Output.value(queue["failed"]), oldest, (queue["paused"] as? Bool) == true ? "yes" : "no"]
    })
}

/// `tern pause <queue>` and `tern resume <queue>`.
struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Stop handing out a queue's jobs (running ones finish).", discussion: "Example:\n  tern pause images")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The queue.") var queue: String
    func run() async throws { try await setPaused(options, queue, "pause") }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Hand out a paused queue's jobs again.", discussion: "Example:\n  tern resume images")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The queue.") var queue: String
    func run() async throws { try await setPaused(options, queue, "resume") }
}

private func setPaused(_ options: ClientOptions, _ queue: String, _ action: String) async throws {
    try await runClient {
        let answer = try await options.client().call(.POST, "/v1/queues/\(segment(queue))/\(action)")
        if options.json { Output.json(answer) } else { print("\(queue): \(action == "pause" ? "paused" : "resumed")") }
    }
}


/// `tern tasks`.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks", abstract: "The registered tasks: options and input schema.", discussion: "Example:\n  tern tasks")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runClient {
            let answer = try await options.client().call(.GET, "/v1/tasks")
            if options.json { return Output.json(answer) }
            Output.table(["TASK", "QUEUE", "PRIORITY", "ATTEMPTS", "INPUT SCHEMA"], ((answer as? [String: Any])?["tasks"] as? [[String: Any]] ?? []).map { task in
                [Output.value(task["name"]), Output.value(task["queue"]), Output.value(task["priority"]), Output.value(task["max_attempts"]),
                 String(Output.value(task["input_schema"]).prefix(100))]
            })
        }
    }
}

/// `tern stats`.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Totals over all queues, and the number of workers.", discussion: "Example:\n  tern stats --json")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runClient {
            let client = try options.client()
            let queues = try await client.allQueues()
            let listed = (try await client.call(.GET, "/v1/workers") as? [String: Any])?["workers"] as? [[String: Any]] ?? []
            // A supervisor's entry totals its processes, which are listed too: count the processes.
            let workers = listed.filter { !($0["processes"] is Int) }
            var totals: [String: Int] = [:]
            for key in ["pending", "scheduled", "running", "succeeded", "failed", "cancelled", "expired", "waiting"] {
                totals[key] = queues.reduce(0) { $0 + ($1[key] as? Int ?? 0) }
            }
            let stats: [String: Any] = [
                "queues": queues.count, "workers": workers.count, "busy": workers.reduce(0) { $0 + ($1["busy"] as? Int ?? 0) },
                "concurrency": workers.reduce(0) { $0 + ($1["concurrency"] as? Int ?? 0) }, "jobs": totals,
            ]
            if options.json { return Output.json(stats) }
            print("queues: \(queues.count)   workers: \(workers.count) (\(stats["busy"]!)/\(stats["concurrency"]!) busy)")
            print(["pending", "scheduled", "running", "succeeded", "failed", "cancelled", "expired", "waiting"].map { "\($0): \(totals[$0]!)" }.joined(separator: "   "))
        }
    }
}
