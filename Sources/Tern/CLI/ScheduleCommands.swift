import ArgumentParser
import Foundation
import NIOHTTP1

/// `tern schedules [list|put|delete|pause|resume|run]`.
struct SchedulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules", abstract: "The schedules with their next runs; create, replace, delete, pause, resume or run one now.",
        discussion: """
            Examples:
              tern schedules
              tern schedules put nightly-report build-report --cron "30 2 * * *" --timezone Europe/Paris --input '{"day":"yesterday"}'
              tern schedules put ping check-health --every 60 --overlap skip
              tern schedules pause nightly-report
              tern schedules resume nightly-report
              tern schedules run nightly-report
              tern schedules delete ping
            """,
        subcommands: [List.self, Put.self, Delete.self, Pause.self, Resume.self, Run.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the schedules (the default).")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runClient {
                let answer = try await options.client().call(.GET, "/v1/schedules")
                if options.json { return Output.json(answer) }
                Output.table(["SCHEDULE", "TASK", "WHEN", "STATE", "SOURCE", "LAST RUN", "NEXT RUNS"], ((answer as? [String: Any])?["schedules"] as? [[String: Any]] ?? []).map { schedule in
                    let when = (schedule["cron"] as? String).map { "cron \($0) \(schedule["timezone"] as? String ?? "UTC")" }
                        ?? (schedule["every_seconds"] as? Double).map { "every \($0.formatted())s" } ?? "-"
                    let runs = (schedule["next_runs"] as? [String] ?? []).prefix(2).map { Output.time($0) }.joined(separator: ", ")
                    return [Output.value(schedule["name"]), Output.value(schedule["task"]), Output.clean(when),
                            (schedule["enabled"] as? Bool) == false ? "paused" : "active", Output.value(schedule["source"]),
                            Output.time((schedule["last_run"] as? [String: Any])?["tick_at"]), runs]
                })
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "put", abstract: "Create or replace a schedule stored over the API.",
            discussion: """
                Give the task and --cron or --every, or the whole definition as JSON with --definition \
                (the body of PUT /v1/schedules/{name}). A replaced schedule takes only what is given: \
                an option left out takes its default again. Prints whether it was created or replaced, \
                and its next run.
                """)
        @OptionGroup var options: ClientOptions
        @Argument(help: "The schedule's name: 1-128 characters of a-z A-Z 0-9 . _ -") var name: String
        @Argument(help: "The task.") var task: String?
        @Option(help: "A cron expression: 5 fields, 6 with seconds first, or a macro such as @daily.") var cron: String?
        @Option(help: "The cron expression's IANA time zone. (default: UTC)") var timezone: String?
        @Option(help: "An interval in seconds, instead of --cron.") var every: Double?
        @Option(help: "The input: JSON, @file to read a file, or - to read standard input. (default: null)") var input: String?
        @Option(help: "The queue. (default: the task's)") var queue: String?
        @Option(help: "The priority, 0-9. (default: the task's)") var priority: Int?
        @Option(help: "A random delay of each job, up to this many seconds. (default: 0)") var jitter: Double?
        @Option(help: "allow or skip: whether a tick makes a job while the last one has not finished. (default: allow)") var overlap: String?
        @Option(help: "skip, once or all: what to do with ticks missed while no scheduler ran. (default: skip)") var catchUp: String?
        @Option(help: "With --catch-up all, the most missed ticks run. (default: 100)") var catchUpLimit: Int?
        @Option(help: "Attempts of each job, 1-100. (default: the task's)") var maxAttempts: Int?
        @Option(help: "Each job expires if it has not started this many seconds after it was due. (default: the task's, else never)") var expiresAfter: Double?
        @Option(help: ArgumentHelp("A header of each job, name=value (repeat for more).", valueName: "name=value"))
        var header: [String] = []
        @Flag(help: "Store it paused.") var paused = false
        @Option(help: "The whole definition as JSON (@file, - for standard input), instead of the other options.") var definition: String?

        func run() async throws {
            try await runClient {
                let body = try definitionBody()
                let (status, answer) = try await options.client().exchange(.PUT, "/v1/schedules/\(segment(name))", body: body)
                if options.json { return Output.json(answer) }
                let next = ((answer as? [String: Any])?["next_runs"] as? [String])?.first.map { "; next run " + Output.time($0) } ?? ""
                print("\(name): \(status == 201 ? "created" : "replaced")\(next)")
            }
        }

        private func definitionBody() throws -> [String: Any] {
            if let definition {
                let flagsGiven = task != nil || cron != nil || timezone != nil || every != nil || input != nil || queue != nil
                    || priority != nil || jitter != nil || overlap != nil || catchUp != nil || catchUpLimit != nil || paused
                    || maxAttempts != nil || expiresAfter != nil || !header.isEmpty
                guard !flagsGiven else { throw CLIFailure(.usage, "give either --definition or the task and its options, not both") }
                guard let object = try readJSONArgument(definition, name: "--definition") as? [String: Any] else {
                    throw CLIFailure(.usage, "--definition must be a JSON object")
                }
                return object
            }
            guard let task else { throw CLIFailure(.usage, "give the task (tern schedules put <name> <task> --cron ... or --every ...), or --definition") }
            var body: [String: Any] = ["task": task]
            if let input { body["input"] = try readJSONArgument(input, name: "--input") }
            let optional: [(String, Any?)] = [
                ("cron", cron), ("timezone", timezone), ("every_seconds", every), ("queue", queue), ("priority", priority),
                ("jitter_seconds", jitter), ("overlap", overlap), ("catch_up", catchUp), ("catch_up_limit", catchUpLimit),
                ("max_attempts", maxAttempts), ("expires_after_seconds", expiresAfter),
            ]
            for (key, value) in optional { if let value { body[key] = value } }
            if !header.isEmpty { body["headers"] = try headerObject(header) }
            if paused { body["enabled"] = false }
            return body
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete", abstract: "Delete a schedule stored over the API (one of the config file is changed there).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The schedule.") var name: String
        func run() async throws {
            try await runClient {
                _ = try await options.client().call(.DELETE, "/v1/schedules/\(segment(name))")
                if options.json { Output.json(["name": name, "deleted": true]) } else { print("\(name): deleted") }
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pause", abstract: "Stop emitting a schedule's ticks.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The schedule.") var name: String
        func run() async throws { try await setScheduleEnabled(options, name, "pause") }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "resume", abstract: "Emit a schedule's ticks again.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The schedule.") var name: String
        func run() async throws { try await setScheduleEnabled(options, name, "resume") }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run", abstract: "Enqueue a schedule's job now, paused or not; prints its id.",
            discussion: "Its ticks go on as before. A schedule with overlap 'skip' whose last job has not finished exits 2 and names that job.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The schedule.") var name: String
        func run() async throws {
            try await runClient {
                let answer = try await options.client().call(.POST, "/v1/schedules/\(segment(name))/run")
                if options.json { Output.json(answer) } else { print(Output.value((answer as? [String: Any])?["id"])) }
            }
        }
    }
}

private func setScheduleEnabled(_ options: ClientOptions, _ name: String, _ action: String) async throws {
    try await runClient {
        let answer = try await options.client().call(.POST, "/v1/schedules/\(segment(name))/\(action)")
        if options.json { Output.json(answer) } else { print("\(name): \(action == "pause" ? "paused" : "resumed")") }
    }
}
