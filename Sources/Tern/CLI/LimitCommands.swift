import ArgumentParser
import Foundation
import NIOHTTP1
import TernCore

/// `tern limits`: show, set and clear a queue's rate and concurrency limits (docs/limits.md).
struct LimitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limits", abstract: "Show, set or clear a queue's rate and concurrency limits.",
        discussion: """
            Examples:
              tern limits images
              tern limits set images --rate 100/min --concurrency 5
              tern limits set mail --task send-invoice --per-key --rate 10/s
              tern limits set mail --task send-invoice --none
              tern limits clear mail --task send-invoice
            """,
        subcommands: [LimitsShowCommand.self, LimitsSetCommand.self, LimitsClearCommand.self],
        defaultSubcommand: LimitsShowCommand.self)
}

/// The scope options of `tern limits set` and `clear`.
struct LimitScopeOptions: ParsableArguments {
    @Argument(help: "The queue.") var queue: String
    @Option(help: "A task's limit instead of the whole queue's.") var task: String?
    @Flag(help: "With --task: a limit for each limit key of the task's jobs.") var perKey = false

    /// The scope as the API names it, and its task.
    func scope() throws -> (String, String?) {
        switch (task, perKey) {
        case (nil, false): return ("queue", nil)
        case (let task?, false): return ("task", task)
        case (let task?, true): return ("key", task)
        case (nil, true): throw CLIFailure(.usage, "--per-key needs --task")
        }
    }
}

struct LimitsShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a queue's limits and its held-back jobs.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The queue.") var queue: String

    func run() async throws {
        try await runClient {
            let client = try options.client()
            let answer = try await client.call(.GET, "/v1/queues/\(segment(queue))")
            if options.json { return Output.json(answer) }
            let object = answer as? [String: Any] ?? [:]
            let limits = object["limits"] as? [[String: Any]] ?? []
            print("\(queue): \(Output.value(object["throttled"])) held back by a limit")
            if limits.isEmpty { print("no limits") }
            for limit in limits { print(LimitsShowCommand.describe(limit)) }
        }
    }

    /// One scope's line: `task send-invoice, each key: 10/1s (set; declared 5/1s)`.
    static func describe(_ entry: [String: Any]) -> String {
        let scope = switch (entry["scope"] as? String, entry["task"] as? String) {
        case ("task"?, let task?): "task \(task)"
        case ("key"?, let task?): "task \(task), each key"
        default: "queue"
        }
        func text(_ limit: Any?) -> String {
            if limit as? String == "none" { return "no limit" }
            guard let limit = limit as? [String: Any] else { return "-" }
            var parts: [String] = []
            if let rate = limit["rate"] as? [String: Any], let count = rate["count"] as? Int, let per = rate["per_ms"] as? Int {
                parts.append("\(count)/\(Output.duration(milliseconds: per))" + ((limit["burst"] as? Int ?? 1) > 1 ? " burst \(limit["burst"]!)" : ""))
            }
            if let concurrency = limit["concurrency"] as? Int { parts.append("\(concurrency) at once") }
            return parts.joined(separator: ", ")
        }
        var line = "\(scope): \(text(entry["effective"]))"
        if entry["set"] != nil, !(entry["set"] is NSNull) {
            line += " (set by an operator" + (entry["declared"] is NSNull ? ")" : "; declared \(text(entry["declared"])))")
        } else {
            line += " (declared)"
        }
        return line
    }
}

struct LimitsSetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Set an operator's limit on a queue, a task, or each key of a task (it wins over declared ones).")
    @OptionGroup var options: ClientOptions
    @OptionGroup var scope: LimitScopeOptions
    @Option(help: ArgumentHelp("Jobs per period: <count>/<s|min|h|ms>, e.g. 10/s or 100/min, or <count>/<seconds>.", valueName: "rate"))
    var rate: String?
    @Option(help: "With --rate: how many may start at once (default 1).") var burst: Int?
    @Option(help: "The most jobs running at once.") var concurrency: Int?
    @Flag(help: "No limit in this scope, whatever workers declared.") var none = false

    /// `10/s`, `100/min`, `5/2h`, `3/1500ms`, `7/30` (seconds) as count and milliseconds.
    static func parseRate(_ text: String) throws -> (Int, Int64) {
        guard let rate = JobLimit.Rate(text: text) else { throw CLIFailure(.usage, "--rate must be <count>/<period>, e.g. 10/s or 100/min") }
        return (rate.count, rate.period.nanoseconds / 1_000_000)
    }

    func run() async throws {
        try await runClient {
            let (kind, task) = try scope.scope()
            var body: [String: Any] = ["scope": kind]
            if let task { body["task"] = task }
            if none {
                guard rate == nil, burst == nil, concurrency == nil else { throw CLIFailure(.usage, "--none takes no --rate, --burst or --concurrency") }
                body["none"] = true
            } else {
                guard rate != nil || concurrency != nil else { throw CLIFailure(.usage, "give --rate, --concurrency (or both), or --none") }
                if let rate {
                    let (count, period) = try Self.parseRate(rate)
                    body["rate"] = ["count": count, "per_ms": period]
                }
                if let burst { body["burst"] = burst }
                if let concurrency { body["concurrency"] = concurrency }
            }
            let answer = try await options.client().call(.PUT, "/v1/queues/\(segment(scope.queue))/limits", body: body)
            if options.json { return Output.json(answer) }
            for limit in (answer as? [String: Any])?["limits"] as? [[String: Any]] ?? [] { print(LimitsShowCommand.describe(limit)) }
        }
    }
}

struct LimitsClearCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clear", abstract: "Remove an operator's limit, so the declared one applies again.")
    @OptionGroup var options: ClientOptions
    @OptionGroup var scope: LimitScopeOptions
    @Flag(help: "Remove the declared limit too (workers declare theirs again when they start).") var declared = false

    func run() async throws {
        try await runClient {
            let (kind, task) = try scope.scope()
            var query = "scope=\(kind)"
            if let task { query += "&task=\(segment(task))" }
            if declared { query += "&declared=true" }
            let answer = try await options.client().call(.DELETE, "/v1/queues/\(segment(scope.queue))/limits?\(query)")
            if options.json { return Output.json(answer) }
            let limits = (answer as? [String: Any])?["limits"] as? [[String: Any]] ?? []
            if limits.isEmpty { print("\(scope.queue): no limits") }
            for limit in limits { print(LimitsShowCommand.describe(limit)) }
        }
    }
}
