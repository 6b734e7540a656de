import ArgumentParser
import Foundation
import NIOHTTP1

/// Percent-encodes a path segment (job ids and names are plain, but a user may type anything).
func segment(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
}

/// `--header name=value` options as a headers object.
func headerObject(_ options: [String]) throws -> [String: String] {
    var headers: [String: String] = [:]
    for item in options {
        guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
            throw CLIFailure(.usage, "--header must be name=value, not '\(item)'")
        }
        headers[String(item[..<equals])] = String(item[item.index(after: equals)...])
    }
    return headers
}

/// Prints a job as labelled lines.
func printJob(_ job: [String: Any]) {
    var lines: [(String, String)] = [
        ("id", Output.value(job["id"])), ("task", Output.value(job["task"])), ("queue", Output.value(job["queue"])),
        ("state", Output.state(Output.value(job["state"]))),
        ("attempts", "\(Output.value(job["attempts"])) of \(Output.value(job["max_attempts"]))"),
        ("created", Output.time(job["created_at"])), ("due", Output.time(job["due_at"])),
        ("started", Output.time(job["started_at"])), ("finished", Output.time(job["finished_at"])),
        ("worker", Output.value(job["worker"])),
    ]
    if let progress = job["progress"] as? [String: Any], let value = progress["value"] as? Double {
        lines.append(("progress", "\(Int((value * 100).rounded()))% \(Output.value(progress["message"]) == "-" ? "" : Output.value(progress["message"]))"))
    }
    if let unique = job["unique"] as? [String: Any] {
        lines.append(("unique", "\(Output.value(unique["mode"])) \(Output.value(unique["key"]))"))
    }
    if let headers = job["headers"] as? [String: Any], !headers.isEmpty {
        lines.append(("headers", headers.keys.sorted().map { "\($0)=\(Output.value(headers[$0]))" }.joined(separator: " ")))
    }
    if let schedule = job["schedule"] as? [String: Any] {
        lines.append(("schedule", "\(Output.value(schedule["name"])) at \(Output.time(schedule["tick_at"]))"))
    }
    if !(job["error"] is NSNull), job["error"] != nil { lines.append(("error", Output.value(job["error"]))) }
    lines.append(("input", Output.value(job["input"])))
    if job["state"] as? String == "succeeded" { lines.append(("result", Output.value(job["result"]))) }
    let width = lines.map(\.0.count).max() ?? 0
    for (label, value) in lines { print(label + ":" + String(repeating: " ", count: width - label.count + 1) + value) }
}

/// `tern status <id>`.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show a job: state, attempts, times, progress, worker, error and result.",
        discussion: "Examples:\n  tern status 01JD0Q6V8M4T5R2K1N3B7C9X0Y.default\n  tern status $ID --json | jq .result")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job's id.") var id: String

    func run() async throws {
        try await runClient {
            let job = try await options.client().call(.GET, "/v1/jobs/\(segment(id))")
            if options.json { Output.json(job) } else { printJob(job as? [String: Any] ?? [:]) }
        }
    }
}

/// `tern wait <id>`.
struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait", abstract: "Wait for a job to finish, showing its progress; the exit code tells the outcome.",
        discussion: """
            Exit codes: 0 succeeded, 1 failed, cancelled or expired, 3 no such job, 4 the API is \
            unreachable or refused the token, 5 the timeout passed first.

            Examples:
              tern wait $ID --timeout 60
              tern wait $ID --json > result.json
            """)
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job's id.") var id: String
    @Option(help: "Give up after this many seconds. (default: wait forever)") var timeout: Double?

    func run() async throws {
        try await runClient {
            let client = try options.client()
            let deadline = timeout.map { Date().addingTimeInterval($0) }
            var lastProgress = ""
            while true {
                // Short waits, so that progress shows within 2 s of being reported.
                let wait = min(2, max(0, deadline.map { $0.timeIntervalSinceNow } ?? 2))
                let job = try await client.call(.GET, "/v1/jobs/\(segment(id))?wait=\(Int(wait.rounded(.up)))") as? [String: Any] ?? [:]
                let state = job["state"] as? String ?? ""
                if !options.json, let progress = job["progress"] as? [String: Any], let value = progress["value"] as? Double {
                    let message = progress["message"] is String ? " " + Output.value(progress["message"]) : ""
                    let text = "\(Int((value * 100).rounded()))%" + message
                    if text != lastProgress { FileHandle.standardError.write(Data("progress: \(text)\n".utf8)) }
                    lastProgress = text
                }
                if ["succeeded", "failed", "cancelled", "expired"].contains(state) {
                    if options.json { Output.json(job) } else { printJob(job) }
                    if state != "succeeded" { throw CLIFailure(.jobFailed, "job \(id) \(state)\(state == "failed" ? ": \(Output.value(job["error"]))" : "")") }
                    return
                }
                if let deadline, deadline.timeIntervalSinceNow <= 0 {
                    FileHandle.standardError.write(Data("tern: job \(id) is still \(state) after \((timeout ?? 0).formatted()) s\n".utf8))
                    throw ExitCode(5)
                }
            }
        }
    }
}

/// `tern jobs`.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List a queue's jobs in one state, a page at a time.",
        discussion: "Examples:\n  tern jobs --queue default --state failed\n  tern jobs --state succeeded --task send-email --limit 50 --json")
    @OptionGroup var options: ClientOptions
    @Option(help: "The queue. (default: default)") var queue = "default"
    @Option(help: "queued, scheduled, retrying, running, waiting, succeeded, failed, cancelled or expired. (default: queued)") var state = "queued"
    @Option(help: "Only jobs of this task (filters the page).") var task: String?
    @Option(help: "Page size, 1-100. (default: 20)") var limit = 20
    @Option(help: "The cursor a previous page printed.") var cursor: String?

    func run() async throws {
        try await runClient {
            var path = "/v1/queues/\(segment(queue))/jobs?state=\(segment(state))&limit=\(limit)"
            if let cursor { path += "&cursor=\(segment(cursor))" }
            let page = try await options.client().call(.GET, path) as? [String: Any] ?? [:]
            let jobs = (page["jobs"] as? [[String: Any]] ?? []).filter { task == nil || $0["task"] as? String == task }
            if options.json {
                Output.json(["jobs": jobs, "next_cursor": page["next_cursor"] ?? NSNull()])
                return
            }
            Output.table(["ID", "TASK", "STATE", "ATTEMPTS", "CREATED", "ERROR"], jobs.map { job in
                [Output.value(job["id"]), Output.value(job["task"]), Output.state(Output.value(job["state"])),
                 "\(Output.value(job["attempts"]))/\(Output.value(job["max_attempts"]))", Output.time(job["created_at"]),
                 String(Output.value(job["error"]).prefix(60))]
            })
            if let next = page["next_cursor"] as? String { print("next page: --cursor \(next)") }
        }
    }
}

/// `tern enqueue <task>`.
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue", abstract: "Enqueue a job; prints its id.",
        discussion: """
            Examples:
              tern enqueue send-email --input '{"to":"ada@example.com"}'
              tern enqueue resize-image --input @job.json --delay 30 --priority 8
              echo '{"width":100}' | tern enqueue resize-image --input -
              tern enqueue send-email --input @mail.json --idempotency-key order-42 --json
              tern enqueue send-email --input '{"customer":7}' --unique-key customer-7 --unique until:3600
              tern enqueue send-email --input @mail.json --header tenant=acme --header request-id=r-17
            A held unique key prints the id of the job that holds it, and says so on standard error.
            """)
    @OptionGroup var options: ClientOptions
    @Argument(help: "The task's name.") var task: String
    @Option(help: "The input: JSON, @file to read a file, or - to read standard input. (default: null)") var input = "null"
    @Option(help: "The queue (default: the task's).") var queue: String?
    @Option(help: "Run after this many seconds.") var delay: Double?
    @Option(help: ArgumentHelp("Run at this time (ISO 8601, e.g. 2026-12-01T09:00:00Z).", valueName: "time")) var at: String?
    @Option(help: "Priority 0-9, higher first (default: the task's).") var priority: Int?
    @Option(help: "Max attempts (default: the task's).") var maxAttempts: Int?
    @Option(help: "Repeats with this key within 24 h return the first job.") var idempotencyKey: String?
    @Option(help: ArgumentHelp(
        "The job's unique rule: while_active, until:<seconds> or debounce:<seconds> (default: the task's).", valueName: "rule"))
    var unique: String?
    @Option(help: "The job's unique key (default: built from the input, when the task or --unique has a rule).") var uniqueKey: String?
    @Option(help: ArgumentHelp("A header that travels with the job, name=value (repeat for more).", valueName: "name=value"))
    var header: [String] = []
    @Option(help: ArgumentHelp("A job that must finish first (repeat for more): this one waits for them.", valueName: "id"))
    var dependsOn: [String] = []
    @Flag(help: "With --depends-on: run even if one of them fails (default: cancelled).") var runIfDependencyFails = false

    /// `--unique` as the API's `unique` object.
    static func uniqueObject(_ text: String) throws -> [String: Any] {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch (parts.first, parts.count) {
        case ("while_active", 1): return ["mode": "while_active"]
        case (let mode?, 2) where mode == "until" || mode == "debounce":
            guard let seconds = Double(parts[1]), seconds.isFinite, seconds > 0 else { break }
            return ["mode": mode, "window_ms": Int((seconds * 1000).rounded())]
        default: break
        }
        throw CLIFailure(.usage, "--unique must be while_active, until:<seconds> or debounce:<seconds>")
    }

    func run() async throws {
        try await runClient {
            let value = try readJSONArgument(input, name: "--input")
            var body: [String: Any] = ["task": task, "input": value]
            if let queue { body["queue"] = queue }
            if let priority { body["priority"] = priority }
            if let maxAttempts { body["max_attempts"] = maxAttempts }
            if let delay {
                guard delay.isFinite, delay >= 0 else { throw CLIFailure(.usage, "--delay must be 0 or more seconds") }
                body["delay_ms"] = Int((delay * 1000).rounded())
            }
            if let at {
                guard let date = Output.parseTime(at) else { throw CLIFailure(.usage, "--at must be an ISO 8601 time such as 2026-12-01T09:00:00Z") }
                body["run_at_ms"] = Int(date.timeIntervalSince1970 * 1000)
            }
            if let unique { body["unique"] = try Self.uniqueObject(unique) }
            if let uniqueKey { body["unique_key"] = uniqueKey }
            if !header.isEmpty { body["headers"] = try headerObject(header) }
            if !dependsOn.isEmpty { body["depends_on"] = dependsOn }
            if runIfDependencyFails { body["on_dependency_failure"] = "run" }
            let receipt = try await options.client().call(.POST, "/v1/jobs", body: body, headers: idempotencyKey.map { [("idempotency-key", $0)] } ?? [])
            let fields = receipt as? [String: Any]
            if options.json { Output.json(receipt) } else { print(Output.value(fields?["id"])) }
            switch fields?["unique"] as? String {
            case "duplicate": FileHandle.standardError.write(Data("tern: the unique key is held: no new job; this is the job that holds it\n".utf8))
            case "debounced": FileHandle.standardError.write(Data("tern: debounced: the waiting job now has this input and runs one window from now\n".utf8))
            default: break
            }
        }
    }
}

/// `tern cancel <id>`.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a job: at once if waiting, through its worker if running.",
        discussion: "Example:\n  tern cancel $ID")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job's id.") var id: String

    func run() async throws {
        try await postJobAction(options, id, "cancel")
    }
}

/// `POST /v1/jobs/{id}/<action>`; prints `<id>: <state>`, or the answer with `--json`.
private func postJobAction(_ options: ClientOptions, _ id: String, _ action: String) async throws {
    try await runClient {
        let answer = try await options.client().call(.POST, "/v1/jobs/\(segment(id))/\(action)")
        if options.json { Output.json(answer) } else { print("\(id): \(Output.state(Output.value((answer as? [String: Any])?["state"])))") }
    }
}

/// `tern run <id>`: runs a scheduled or retrying job now.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a scheduled or retrying job now instead of at its due time.",
        discussion: "The job is queued at once, behind the jobs of its priority already queued.\n\nExample:\n  tern run $ID")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job's id.") var id: String

    func run() async throws {
        try await postJobAction(options, id, "run")
    }
}

/// `tern delete <id>`: deletes a finished job before its retention ends.
struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a finished job before its retention ends.",
        discussion: "Only a succeeded, failed, cancelled or expired job can be deleted; cancel a job that has not finished first.\n\nExample:\n  tern delete $ID")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job's id.") var id: String

    func run() async throws {
        try await runClient {
            _ = try await options.client().call(.DELETE, "/v1/jobs/\(segment(id))")
            if options.json { Output.json(["id": id, "deleted": true]) } else { print("\(id): deleted") }
        }
    }
}

/// `tern retry <id>` or `tern retry --failed --queue Q`.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry", abstract: "Run a failed, cancelled or expired job again, or every failed job of a queue.",
        discussion: "Examples:\n  tern retry $ID\n  tern retry --failed --queue default")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job's id.") var id: String?
    @Flag(help: "Retry every failed job of --queue.") var failed = false
    @Option(help: "The queue, with --failed.") var queue: String?

    func validate() throws {
        guard (id != nil) != failed else { throw ValidationError("give a job id, or --failed --queue Q") }
        if failed && queue == nil { throw ValidationError("--failed needs --queue") }
    }

    func run() async throws {
        try await runClient {
            let client = try options.client()
            if let id {
                let answer = try await client.call(.POST, "/v1/jobs/\(segment(id))/retry")
                if options.json { Output.json(answer) } else { print("\(id): \(Output.value((answer as? [String: Any])?["state"]))") }
            } else if let queue {
                let answer = try await client.call(.POST, "/v1/queues/\(segment(queue))/retry-failed")
                if options.json { Output.json(answer) } else { print("\(queue): \(Output.value((answer as? [String: Any])?["retried"])) job(s) retried") }
            }
        }
    }
}

/// A JSON argument: the JSON itself, `@<path>` to read a file, or `-` to read standard input.
func readJSONArgument(_ argument: String, name: String) throws -> Any {
    let text: String
    if argument == "-" {
        text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
    } else if argument.hasPrefix("@") {
        guard let data = FileManager.default.contents(atPath: String(argument.dropFirst())) else {
            throw CLIFailure(.usage, "cannot read \(argument.dropFirst())")
        }
        text = String(decoding: data, as: UTF8.self)
    } else {
        text = argument
    }
    guard let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
        throw CLIFailure(.usage, "\(name) is not JSON (quote strings: \(name) '\"text\"')")
    }
    return value
}
