import ArgumentParser
import Foundation
import NIOHTTP1

/// `tern workflow [show] <id>`, `tern workflow submit <json>`, `tern workflow cancel <id>`.
struct WorkflowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow", abstract: "Submit, show or cancel a workflow (a chain, group, chord or batch of jobs).",
        discussion: """
            Examples:
              tern workflow submit '{"chain": [{"task": "fetch-page", "input": "https://example.com"}, {"task": "store-links"}]}'
              tern workflow submit @flow.json --idempotency-key nightly-2026-12-07
              tern workflow 01JD0Q6V8M4T5R2K1N3B7C9X0Y.default
              tern workflow cancel 01JD0Q6V8M4T5R2K1N3B7C9X0Y.default
            """,
        subcommands: [WorkflowShowCommand.self, WorkflowSubmitCommand.self, WorkflowCancelCommand.self],
        defaultSubcommand: WorkflowShowCommand.self)
}

/// `tern workflow [show] <id>`.
struct WorkflowShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show a workflow: its state, result or error, and its jobs in order.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The workflow's id (its final job's id, as submit printed it).") var id: String

    func run() async throws {
        try await runClient {
            let client = try options.client()
            var answer = try await client.call(.GET, "/v1/workflows/\(segment(id))?limit=1000") as? [String: Any] ?? [:]
            var jobs = answer["jobs"] as? [[String: Any]] ?? []
            while let cursor = answer["next_cursor"] as? String {
                answer = try await client.call(.GET, "/v1/workflows/\(segment(id))?limit=1000&cursor=\(cursor)") as? [String: Any] ?? [:]
                jobs += answer["jobs"] as? [[String: Any]] ?? []
            }
            answer["jobs"] = jobs
            answer["next_cursor"] = NSNull()
            if options.json { return Output.json(answer) }
            var lines: [(String, String)] = [
                ("id", Output.value(answer["id"])), ("kind", Output.value(answer["kind"])), ("state", Output.value(answer["state"])),
                ("jobs", "\(Output.value(answer["jobs_finished"])) of \(Output.value(answer["jobs_total"])) finished"),
            ]
            if answer["state"] as? String == "succeeded" { lines.append(("result", Output.value(answer["result"]))) }
            if !(answer["error"] is NSNull), answer["error"] != nil { lines.append(("error", Output.value(answer["error"]))) }
            let width = lines.map(\.0.count).max() ?? 0
            for (label, value) in lines { print(label + ":" + String(repeating: " ", count: width - label.count + 1) + value) }
            print("")
            Output.table(["JOB", "TASK", "STATE", "WAITS FOR"], jobs.map { job in
                let parents = job["depends_on"] as? [String] ?? []
                let waits = parents.isEmpty ? "-" : parents.count == 1 ? parents[0] : "\(parents.count) jobs"
                return [Output.value(job["id"]), Output.value(job["task"]), Output.value(job["state"]), waits]
            })
        }
    }
}

/// `tern workflow submit <json>`.
struct WorkflowSubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Submit a workflow (the body of POST /v1/workflows); prints its id.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The workflow as JSON, @file to read a file, or - to read standard input.") var body: String
    @Option(help: "Repeats with this key return the first workflow.") var idempotencyKey: String?

    func run() async throws {
        try await runClient {
            let value = try readJSONArgument(body, name: "the workflow")
            let answer = try await options.client().call(
                .POST, "/v1/workflows", body: value, headers: idempotencyKey.map { [("idempotency-key", $0)] } ?? [])
            if options.json { Output.json(answer) } else { print(Output.value((answer as? [String: Any])?["id"])) }
        }
    }
}

/// `tern workflow cancel <id>`.
struct WorkflowCancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel every job of a workflow that has not finished.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The workflow's id.") var id: String

    func run() async throws {
        try await runClient {
            let answer = try await options.client().call(.POST, "/v1/workflows/\(segment(id))/cancel")
            if options.json { return Output.json(answer) }
            print("\(Output.value((answer as? [String: Any])?["cancelled"])) job(s) cancelled")
        }
    }
}
