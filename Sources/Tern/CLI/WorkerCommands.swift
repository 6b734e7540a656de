import ArgumentParser
import Foundation
import NIOHTTP1

/// `tern workers [list|quiet|resume|stop]`.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers", abstract: "The live workers; quiet, resume or stop one.",
        discussion: """
            Examples:
              tern workers
              tern workers quiet web-3:41:k2x9
              tern workers resume web-3:41:k2x9
              tern workers stop web-3:41:supervisor
            """,
        subcommands: [List.self, Order.Quiet.self, Order.Resume.self, Order.Stop.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "The live workers: host, pid, state, queues, busy/concurrency, uptime, last heartbeat (the default).")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runClient {
                let answer = try await options.client().call(.GET, "/v1/workers")
                if options.json { return Output.json(answer) }
                printWorkers((answer as? [String: Any])?["workers"] as? [[String: Any]] ?? [])
            }
        }
    }

    /// The orders: each is given through the API, and the worker follows it at its next report.
    enum Order {
        static func give(_ options: ClientOptions, _ id: String, _ action: String, _ done: String) async throws {
            try await runClient {
                let answer = try await options.client().call(.POST, "/v1/workers/\(segment(id))/\(action)")
                if options.json { Output.json(answer) } else { print("\(id): \(done)") }
            }
        }

        struct Quiet: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "quiet",
                abstract: "Ask a worker, or a supervisor and all its processes, to claim no more jobs; running jobs go on.")
            @OptionGroup var options: ClientOptions
            @Argument(help: "The worker's id, as tern workers lists it.") var id: String
            func run() async throws { try await Order.give(options, id, "quiet", "asked to go quiet") }
        }

        struct Resume: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "resume", abstract: "Withdraw a quiet order: the worker claims jobs again.")
            @OptionGroup var options: ClientOptions
            @Argument(help: "The worker's id, as tern workers lists it.") var id: String
            func run() async throws { try await Order.give(options, id, "resume", "asked to resume") }
        }

        struct Stop: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "stop",
                abstract: "Ask a worker or a supervisor to stop as on SIGTERM: it finishes its running jobs within its grace period and exits.")
            @OptionGroup var options: ClientOptions
            @Argument(help: "The worker's or supervisor's id, as tern workers lists it.") var id: String
            func run() async throws { try await Order.give(options, id, "stop", "asked to stop") }
        }
    }
}

/// A supervisor's replaced processes, as ` (2 crashed, 1 recycled)`; empty when none.
private func exits(_ supervisor: [String: Any]) -> String {
    let counts = supervisor["process_exits"] as? [String: Any] ?? [:]
    let parts = ["crashed", "killed", "recycled"].compactMap { reason -> String? in
        guard let count = counts[reason] as? Int, count > 0 else { return nil }
        return "\(count) \(reason)"
    }
    return parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))"
}

/// Prints workers with each supervisor followed by its processes.
func printWorkers(_ workers: [[String: Any]]) {
    func key(_ worker: [String: Any], _ pid: Any?) -> String { "\(Output.value(worker["host"]))/\(Output.value(pid))" }
    let supervisors = workers.filter { $0["processes"] is Int }
    let supervisorKeys = Set(supervisors.map { key($0, $0["pid"]) })
    let children = Dictionary(grouping: workers.filter { $0["processes"] == nil || $0["processes"] is NSNull }) { worker in
        let parent = key(worker, worker["supervisor_pid"])
        return supervisorKeys.contains(parent) ? parent : ""
    }
    var ordered: [(role: String, worker: [String: Any])] = []
    for supervisor in supervisors {
        ordered.append(("supervisor of \(Output.value(supervisor["processes"]))\(exits(supervisor))", supervisor))
        ordered += (children[key(supervisor, supervisor["pid"])] ?? []).map { ("  process", $0) }
    }
    ordered += (children[""] ?? []).map { ($0["supervisor_pid"] is Int ? "process" : "worker", $0) }
    Output.table(["WORKER", "ROLE", "STATE", "HOST", "PID", "SUPERVISOR", "QUEUES", "BUSY", "PROCESSED", "UP SINCE", "LAST SEEN"], ordered.map { role, worker in
        [Output.value(worker["id"]), role, Output.value(worker["state"] ?? "running"), Output.value(worker["host"]), Output.value(worker["pid"]), Output.value(worker["supervisor_pid"]),
         (worker["queues"] as? [String] ?? []).map(Output.clean).joined(separator: ","),
         "\(Output.value(worker["busy"]))/\(Output.value(worker["concurrency"]))", Output.value(worker["processed"]),
         Output.time(worker["started_at"]), Output.time(worker["last_seen_at"])]
    })
}
