import Broker
import Foundation
import Testing

/// The suites that run many real processes and measure time: one at a time, so that their timing
/// bounds hold on a 2-core machine (the lighter tests still run beside them).
@Suite(.serialized) enum HeavyProcessTests {}

/// A `worker --processes …` supervisor on `environment`'s Redis and key prefix, with short timings
/// and the test tasks; its standard error goes to a log file in the server's directory.
/// Unchecked: the process is only started in `init`, then signalled and awaited.
final class SupervisorProcess: @unchecked Sendable {
    let process: Process
    let log: String

    init(_ environment: JobEnvironment, _ arguments: [String], name: String = "supervisor") throws {
        log = environment.server.directory + "/\(name).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: WorkerBinary.path)
        process.arguments = [
            "--redis-url", environment.server.url, "--prefix", environment.broker.keys.prefix, "--sample-tasks",
            "--lease", "5", "--heartbeat", "0.2", "--reaper", "0.3",
        ] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// What the supervisor and its processes logged so far.
    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Sends SIGTERM and waits for the exit; `true` if it exited 0.
    func stop() async -> Bool {
        kill(pid, SIGTERM)
        await waitForExit(process)
        return process.terminationReason == .exit && process.terminationStatus == 0
    }

    /// Kills it (and, through their closed pipes, its processes) if a test ended early.
    func killIfRunning() {
        if process.isRunning { kill(pid, SIGKILL) }
    }

    /// The live worker processes this supervisor runs, as registered.
    func children(_ broker: RedisJobBroker) async throws -> [WorkerInfo] {
        try await broker.workers().filter { $0.supervisorPID == pid }
    }

    /// Waits until exactly `count` processes of this supervisor are registered and returns them.
    func waitForChildren(_ broker: RedisJobBroker, count: Int, excluding old: Set<Int32> = []) async throws -> [WorkerInfo] {
        try await eventually(within: .seconds(30)) {
            let children = try await self.children(broker).filter { !old.contains($0.pid) }
            guard children.count == count else { throw WaitError("\(children.count) of \(count) processes registered") }
            return children
        }
    }
}
