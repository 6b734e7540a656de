import API
import Broker
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Scheduler
import TernCore
import Testing

/// Runs the built `tern` binary with `arguments` and `environment`; returns status, stdout, stderr.
private func tern(_ arguments: [String], _ environment: [String: String]) async throws -> (status: Int32, out: String, err: String) {
    try await offPool { try ternBlocking(arguments, environment) }
}

private func ternBlocking(_ arguments: [String], _ environment: [String: String]) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: WorkerBinary.path.replacingOccurrences(of: "/worker", with: "/tern"))
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.filter { $0.key != "TERN_TOKEN" || environment["TERN_TOKEN"] != nil }
    process.currentDirectoryURL = FileManager.default.temporaryDirectory  // no .data/dev-token here
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tern-cli-\(UUID().uuidString)")
    let out = directory.appendingPathExtension("out"), err = directory.appendingPathExtension("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: err)
    }
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return (process.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "", (try? String(contentsOf: err, encoding: .utf8)) ?? "")
}

private func json(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
}

@Suite("The tern CLI against a live API", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct CLIProcessTests {
    @Test("every subcommand's table and --json output, exit codes, escaping, and top under a terminal")
    func subcommands() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var configuration = APIConfiguration()
        configuration.port = 0
        let access = AccessPolicy.tokens([.init(secret: "cli-token", grant: TokenGrant(name: "cli", role: .admin))])
        var hourly = ScheduleDefinition(name: "cli-hourly", task: "sleep", input: .object(["ms": .number(60_000)]), everySeconds: 3600)
        hourly.overlap = "skip"
        let api = APIContext(
            broker: environment.broker, registry: environment.registry, configuration: configuration, access: access,
            scheduleStore: ScheduleStore(client: environment.client, keys: environment.broker.keys), configuredSchedules: [hourly]
        ) {}
        try await buildApplication(api, logger: Logger(label: "cli")).test(.live) { client in
            let env = ["TERN_API_URL": "http://127.0.0.1:\(try #require(client.port))", "TERN_TOKEN": "cli-token", "NO_COLOR": "1"]
            try await environment.withWorker { _ in
                // enqueue → id; wait → 0 and the result; status --json.
                let enqueued = try await tern(["enqueue", "echo", "--input", #"{"hello":"cli"}"#], env)
                #expect(enqueued.status == 0, "\(enqueued.err)")
                let id = enqueued.out.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(JobID(id) != nil)
                let waited = try await tern(["wait", id, "--timeout", "30"], env)
                #expect(waited.status == 0)
                #expect(waited.out.contains("state:    succeeded"))
                #expect(waited.out.contains(#"result:   {"hello":"cli"}"#))
                let status = json(try await tern(["status", id, "--json"], env).out)
                #expect(status["id"] as? String == id)
                #expect((status["result"] as? [String: Any])?["hello"] as? String == "cli")

                // A failing job: wait exits 1; its ANSI escape is shown escaped, never raw.
                let failing = try await tern(["enqueue", "fail", "--input", #"{"message":"bad \u001b[31mred"}"#, "--max-attempts", "1"], env)
                let failedID = failing.out.trimmingCharacters(in: .whitespacesAndNewlines)
                let failed = try await tern(["wait", failedID, "--timeout", "30"], env)
                #expect(failed.status == 1)
                #expect(failed.out.contains(#"bad \u{1b}[31mred"#))
                #expect(!failed.out.contains("\u{1B}"))
                #expect(failed.err.contains("failed"))

                // Listings, human and JSON.
                let jobs = json(try await tern(["jobs", "--state", "succeeded", "--json"], env).out)
                #expect((jobs["jobs"] as? [[String: Any]])?.contains { $0["id"] as? String == id } == true)
                #expect(try await tern(["jobs", "--state", "failed"], env).out.contains(failedID))
                let queues = try await tern(["queues"], env)
                #expect(queues.out.hasPrefix("QUEUE"))
                #expect(queues.out.contains("default"))
                #expect((json(try await tern(["queues", "--json"], env).out)["queues"] as? [[String: Any]])?.first?["failed"] as? Int == 1)
                let workers = json(try await tern(["workers", "--json"], env).out)["workers"] as? [[String: Any]] ?? []
                #expect(workers.count == 1)
                #expect(try await tern(["workers"], env).out.contains("default"))
                // Quiet the worker and resume it: the listing shows its state once it has followed the order.
                let workerID = try #require(workers.first?["id"] as? String)
                let quieted = try await tern(["workers", "quiet", workerID], env)
                #expect(quieted.status == 0 && quieted.out == "\(workerID): asked to go quiet\n", "\(quieted.err) \(quieted.out)")
                try await eventually(within: .seconds(20)) {
                    let listing = try await tern(["workers"], env).out
                    guard listing.contains(" quiet ") else { throw WaitError("not quiet yet: \(listing)") }
                }
                #expect(try await tern(["workers", "resume", workerID], env).status == 0)
                #expect(try await tern(["workers", "stop", "nobody"], env).status == 3)
                #expect((json(try await tern(["tasks", "--json"], env).out)["tasks"] as? [[String: Any]])?.contains { $0["name"] as? String == "echo" } == true)
                #expect((json(try await tern(["stats", "--json"], env).out)["jobs"] as? [String: Any])?["succeeded"] as? Int == 1)
                #expect(json(try await tern(["schedules", "--json"], env).out)["schedules"] is [Any])
                // Run a schedule now: prints the job; with overlap skip, again while it runs exits 2 naming it.
                let ran = try await tern(["schedules", "run", "cli-hourly"], env)
                let ranID = ran.out.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(ran.status == 0 && JobID(ranID) != nil, "\(ran.err)")
                let overlapping = try await tern(["schedules", "run", "cli-hourly"], env)
                #expect(overlapping.status == 2 && overlapping.err.contains("its last job \(ranID) has not finished"), "\(overlapping.err)")
                #expect(try await tern(["cancel", ranID], env).status == 0)
                #expect(try await tern(["schedules", "run", "absent"], env).status == 3)
                // Create, replace and delete a schedule; the config file's cannot be deleted here.
                let created = try await tern(["schedules", "put", "cli-nightly", "echo", "--cron", "30 2 * * *", "--timezone", "Europe/Paris", "--input", #"{"n":1}"#, "--header", "tenant=acme"], env)
                #expect(created.status == 0 && created.out.hasPrefix("cli-nightly: created; next run "), "\(created.out)\(created.err)")
                let withHeaders = json(try await tern(["schedules", "--json"], env).out)["schedules"] as? [[String: Any]] ?? []
                #expect(withHeaders.first { $0["name"] as? String == "cli-nightly" }?["headers"] as? [String: String] == ["tenant": "acme"])
                let replaced = try await tern(["schedules", "put", "cli-nightly", "--definition", #"{"task":"echo","every_seconds":90,"enabled":false}"#], env)
                #expect(replaced.status == 0 && replaced.out.hasPrefix("cli-nightly: replaced"), "\(replaced.out)\(replaced.err)")
                let stored = json(try await tern(["schedules", "--json"], env).out)["schedules"] as? [[String: Any]] ?? []
                let nightly = try #require(stored.first { $0["name"] as? String == "cli-nightly" })
                #expect(nightly["every_seconds"] as? Double == 90 && nightly["enabled"] as? Bool == false && nightly["cron"] is NSNull)
                let badCron = try await tern(["schedules", "put", "cli-bad", "echo", "--cron", "61 * * * *"], env)
                #expect(badCron.status == 2 && badCron.err.contains("minute"), "\(badCron.err)")
                #expect(try await tern(["schedules", "put", "cli-both", "echo", "--definition", "{}"], env).status == 2)
                #expect(try await tern(["schedules", "delete", "cli-nightly"], env).out == "cli-nightly: deleted\n")
                #expect(try await tern(["schedules", "delete", "cli-nightly"], env).status == 3)
                let configured = try await tern(["schedules", "delete", "cli-hourly"], env)
                #expect(configured.status == 2 && configured.err.contains("defined in the config file"), "\(configured.err)")

                // Control: retry the failed job, pause and resume, cancel.
                #expect(try await tern(["retry", "--failed", "--queue", "default"], env).out.contains("1 job(s) retried"))
                #expect(try await tern(["pause", "default"], env).status == 0)
                let held = try await tern(["enqueue", "sleep", "--input", #"{"ms":60000}"#], env).out.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(try await tern(["cancel", held], env).out.contains("cancelled"))
                // Delete: a finished job goes (then exits 3 for it); one that has not finished is refused (2).
                #expect(try await tern(["delete", held], env).out == "\(held): deleted\n")
                #expect(try await tern(["delete", held], env).status == 3)
                let unfinished = try await tern(["enqueue", "sleep", "--input", #"{"ms":60000}"#], env).out.trimmingCharacters(in: .whitespacesAndNewlines)
                let refused = try await tern(["delete", unfinished], env)
                #expect(refused.status == 2 && refused.err.contains("cancel it first"), "\(refused.err)")
                #expect(try await tern(["cancel", unfinished], env).status == 0)
                // Run a delayed job now: it is queued; a queued one is refused (2).
                let delayed = try await tern(["enqueue", "sleep", "--input", #"{"ms":1}"#, "--delay", "3600"], env).out.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(try await tern(["run", delayed], env).out == "\(delayed): queued\n")
                let again = try await tern(["run", delayed], env)
                #expect(again.status == 2 && again.err.contains("only a scheduled or retrying job can be run now"), "\(again.err)")
                // Unique keys: a held key prints its job and says so; status shows the rule.
                let keyed = try await tern(["enqueue", "sleep", "--input", #"{"ms":1}"#, "--unique-key", "cli-1"], env)
                let repeated = try await tern(["enqueue", "sleep", "--input", #"{"ms":2}"#, "--unique-key", "cli-1", "--unique", "while_active"], env)
                #expect(keyed.status == 0 && repeated.status == 0 && repeated.out == keyed.out)
                #expect(repeated.err.contains("the unique key is held"))
                let keyedID = keyed.out.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(try await tern(["status", keyedID], env).out.contains("unique:   while_active "))
                #expect(try await tern(["enqueue", "sleep", "--unique", "until"], env).status == 2)
                // Headers: sent with the job, shown by status; a header without = is a usage error.
                let headed = try await tern(["enqueue", "sleep", "--input", #"{"ms":1}"#, "--header", "tenant=acme", "--header", "b=x=y"], env)
                let headedID = headed.out.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(try await tern(["status", headedID], env).out.contains("headers:  b=x=y tenant=acme"))
                #expect(try await tern(["enqueue", "sleep", "--header", "tenant"], env).status == 2)
                #expect(try await tern(["resume", "default"], env).status == 0)

                // Workflows: submit a chain, show it until it succeeded; cancel an unknown one exits 3.
                let submitted = try await tern(["workflow", "submit", #"{"chain": [{"task": "echo", "input": {"n": 1}}, {"task": "echo"}]}"#], env)
                #expect(submitted.status == 0, "\(submitted.err)")
                let flowID = submitted.out.trimmingCharacters(in: .whitespacesAndNewlines)
                let shown = try await eventually(within: .seconds(30)) {
                    let shown = try await tern(["workflow", flowID], env)
                    guard shown.out.split(separator: "\n").contains(where: { $0.hasPrefix("state:") && $0.hasSuffix(" succeeded") }) else { throw WaitError("the workflow has not succeeded yet: \(shown.out)") }
                    return shown.out
                }
                #expect(shown.contains(#"result: {"n":1}"#) && shown.contains("2 of 2 finished"))
                #expect(json(try await tern(["workflow", "show", flowID, "--json"], env).out)["kind"] as? String == "chain")
                #expect(try await tern(["workflow", "cancel", JobID.generate(queue: .default).rawValue], env).status == 3)
                #expect(try await tern(["workflow", "submit", #"{"chain": []}"#], env).status == 2)

                // Exit codes: not found 3, usage 2, bad token 4, unreachable 4.
                let missing = try await tern(["status", JobID.generate(queue: .default).rawValue], env)
                #expect(missing.status == 3)
                #expect(missing.err.hasPrefix("tern: no job has the id"))
                // Every client command: a missing argument is a usage error.
                for command in ["retry", "run", "delete", "cancel", "status", "wait"] {
                    #expect(try await tern([command], env).status == 2, "tern \(command)")
                }
                #expect(try await tern(["enqueue", "nope"], env).status == 2)
                let badToken = try await tern(["queues"], env.merging(["TERN_TOKEN": "wrong"]) { $1 })
                #expect(badToken.status == 4)
                #expect(badToken.err.contains("refused the token"))
                #expect(try await tern(["queues", "--api", "http://127.0.0.1:1"], env).status == 4)

                // top under a pseudo-terminal: renders, and q quits with 0.
                let command = "(sleep 2; printf q) | script -qfec '\(WorkerBinary.path.replacingOccurrences(of: "/worker", with: "/tern")) top' /dev/null"
                let shell = Process()
                shell.executableURL = URL(fileURLWithPath: "/bin/sh")
                shell.arguments = ["-c", command]
                shell.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
                let output = Pipe()
                shell.standardOutput = output
                shell.standardError = FileHandle.nullDevice
                try shell.run()
                let reader = output.fileHandleForReading
                let screen = try await offPool { String(decoding: reader.readDataToEndOfFile(), as: UTF8.self) }
                await waitForExit(shell)
                #expect(shell.terminationStatus == 0)
                #expect(screen.contains("QUEUE") && screen.contains("WORKER"))
            }
        }
    }
}
