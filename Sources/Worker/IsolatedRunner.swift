import Broker
import Dispatch
import Foundation
import Synchronization
import TernCore

/// How a worker runs the jobs of isolated tasks: each alone in a new process of this binary.
public struct ProcessIsolation: Sendable {
    /// The binary to start (this worker's own).
    public var executable: String
    /// Its arguments; the child's protocol flag (``IsolatedJob/flag``) is appended. They must build
    /// the same task registry as this worker's.
    public var arguments: [String]
    /// Tasks isolated besides those whose ``TaskOptions/isolated`` is set (`--isolate`).
    public var tasks: Set<String>

    /// Creates an isolation setting.
    public init(executable: String, arguments: [String], tasks: Set<String> = []) {
        self.executable = executable
        self.arguments = arguments
        self.tasks = tasks
    }

    /// Whether jobs of `entry` run in a process of their own.
    public func isolates(_ entry: TaskRegistry.Entry) -> Bool { entry.options.isolated || tasks.contains(entry.name) }
}

/// The process running an isolated job died without an outcome (a trap, a signal, an exit).
struct IsolatedProcessCrashed: Error, CustomStringConvertible {
    let reason: String
    var description: String { "worker_crashed: \(reason)" }
}

/// The outcome an isolated job's process reported for a failed attempt: the task's own verdict on
/// whether it is permanent, and its retry delay.
struct IsolatedTaskFailure: Error, CustomStringConvertible {
    let message: String
    let permanent: Bool
    let retryAfter: Duration?
    var description: String { message }
}

/// The error recorded when a process is killed at a job's hard time limit.
public struct HardTimeLimitExceeded: Error, CustomStringConvertible {
    /// The task's hard time limit.
    public let limit: Duration
    /// How long the job had run when its process was killed (the limit plus the kill grace).
    public let killedAfter: Duration

    /// Creates the error.
    public init(limit: Duration, killedAfter: Duration) {
        self.limit = limit
        self.killedAfter = killedAfter
    }

    public var description: String { "hard time limit of \(limit.shortDescription) exceeded: the process running the job was killed after \(killedAfter.shortDescription)" }
}

/// Runs one job in a child process (see ``IsolatedJob`` for the child's side) and turns what the
/// child reports into the job's outcome. The hard time limit kills the child at the limit plus
/// `killGrace`. Cancelling the calling task asks the child to cancel the job (a cancel request, the
/// soft limit) or kills it at once (shutdown, lease lost).
struct IsolatedRunner: Sendable {
    let isolation: ProcessIsolation
    let killGrace: Duration
    /// The worker it runs for, named in the job's log lines in the child.
    let workerID: String

    /// Runs the job; `control` tells why it is cancelled, if it is.
    func run(_ job: ClaimedJob, entry: TaskRegistry.Entry, context: JobContext, control: JobControl) async throws -> Data {
        let child = try IsolatedChild.start(isolation, job: job, workerID: workerID)
        let started = ContinuousClock.now
        let hardLimit = entry.options.effectiveHardTimeLimit
        // A timer, not a child task: cancelling the job must not cancel its hard limit.
        let killer = hardLimit.map { limit in
            let item = DispatchWorkItem { [weak child] in child?.kill(reason: .hardLimit) }
            let nanoseconds = (limit + killGrace).clampedNanoseconds
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds), execute: item)
            return item
        }
        defer { killer?.cancel() }
        do {
            return try await withTaskCancellationHandler {
                try await child.outcome(context: context)
            } onCancel: {
                switch control.stop {
                case .shutdown?, .leaseLost?:
                    // The job is released or another worker's: nothing of this run will be reported.
                    child.kill(reason: .cancelled)
                default:
                    // Cancel request or soft limit: the task may stop by itself; the hard limit kills
                    // it if not (without one, the kill grace does).
                    child.cancel(killAfter: hardLimit == nil ? killGrace : nil)
                }
            }
        } catch let killed as IsolatedChild.Killed {
            throw HardTimeLimitExceeded(limit: hardLimit ?? .zero, killedAfter: killed.at - started)
        }
    }
}

/// One running child process and the lines it writes on its protocol channel.
final class IsolatedChild: Sendable {
    enum KillReason: Sendable { case hardLimit, cancelled }
    struct Killed: Error { let at: ContinuousClock.Instant }

    private struct State {
        var lines: [String] = []
        var ended = false
        var waiter: CheckedContinuation<Void, Never>?
        var killed: (KillReason, ContinuousClock.Instant)?
    }

    private let process: Process
    private let input: FileHandle
    private let state = Mutex(State())

    private init(process: Process, input: FileHandle) {
        self.process = process
        self.input = input
    }

    static func start(_ isolation: ProcessIsolation, job: ClaimedJob, workerID: String) throws -> IsolatedChild {
        let launched = ChildLauncher.prepare(
            executable: isolation.executable, arguments: isolation.arguments + [IsolatedJob.flag], pipeInput: true, pipeErrors: false)
        let child = IsolatedChild(process: launched.process, input: launched.input!)
        try launched.process.run()
        let headers = Data(JobHeaders.encode(job.headers).utf8).base64EncodedString()
        let header = "\(job.id.rawValue) \(job.attempt) \(job.maxAttempts) \(job.task) \(workerID)\n\(job.input.base64EncodedString())\n\(headers)\n"
        child.send(header)
        let output = launched.output
        Thread { child.read(output) }.start()
        return child
    }

    /// Asks the child to cancel its job; kills it `killAfter` later if it is still running.
    func cancel(killAfter: Duration?) {
        send("cancel\n")
        guard let killAfter else { return }
        let pid = process.processIdentifier
        Thread {
            Thread.sleep(forTimeInterval: Double(killAfter.nanoseconds) / 1e9)
            if self.process.isRunning && self.process.processIdentifier == pid { self.kill(reason: .cancelled) }
        }.start()
    }

    func kill(reason: KillReason) {
        state.withLock { if $0.killed == nil { $0.killed = (reason, .now) } }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }

    private func send(_ text: String) {
        try? input.write(contentsOf: Data(text.utf8))
    }

    private func read(_ handle: FileHandle) {
        var buffer = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            var lines: [String] = []
            while let newline = buffer.firstIndex(of: 0x0A) {
                lines.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                buffer.removeSubrange(buffer.startIndex...newline)
            }
            if !lines.isEmpty { deliver(lines, ended: false) }
        }
        // The child closed its output: wait for its exit status before reporting the end.
        process.waitUntilExit()
        deliver([], ended: true)
    }

    private func deliver(_ lines: [String], ended: Bool) {
        let waiter = state.withLock { state in
            state.lines += lines
            if ended { state.ended = true }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Follows the child's lines until it reports an outcome or ends.
    func outcome(context: JobContext) async throws -> Data {
        while true {
            let (lines, ended) = await next()
            for line in lines {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                switch parts.first {
                case "progress" where parts.count == 3:
                    guard let value = Double(parts[1]) else { continue }
                    let message = parts[2] == "-" ? nil : Data(base64Encoded: parts[2]).map { String(decoding: $0, as: UTF8.self) }
                    try? await context.progress(value, message)
                case "result" where parts.count == 2:
                    guard let data = Data(base64Encoded: parts[1]) else { continue }
                    await waitForExit()
                    return data
                case "error" where parts.count == 4:
                    let message = Data(base64Encoded: parts[3]).map { String(decoding: $0, as: UTF8.self) } ?? "failed"
                    await waitForExit()
                    throw IsolatedTaskFailure(
                        message: message, permanent: parts[1] == "1",
                        retryAfter: Int64(parts[2]).map { .milliseconds($0) })
                default:
                    continue
                }
            }
            if ended {
                if let (reason, at) = state.withLock({ $0.killed }) {
                    if reason == .hardLimit { throw Killed(at: at) }
                    throw CancellationError()
                }
                throw IsolatedProcessCrashed(reason: Signals.exitReason(process))
            }
        }
    }

    private func next() async -> ([String], Bool) {
        while true {
            let taken: ([String], Bool)? = state.withLock { state in
                guard !state.lines.isEmpty || state.ended else { return nil }
                defer { state.lines = [] }
                return (state.lines, state.ended)
            }
            if let taken { return taken }
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state in
                    if !state.lines.isEmpty || state.ended { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    /// The child reported its outcome and exits by itself; waits until it has (its later lines are
    /// of no interest).
    private func waitForExit() async {
        while await !next().1 {}
    }
}

/// Names of the signals a crashing process dies of.
public enum Signals {
    /// `SIGSEGV` for 11, and so on; `nil` for others.
    public static func name(_ number: Int32) -> String? {
        [4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"][number]
    }

    /// How an exited process ended: `signal 4 (SIGILL)` or `exit status 1`, as recorded in `worker_crashed`.
    public static func exitReason(_ process: Process) -> String {
        guard process.terminationReason == .uncaughtSignal else { return "exit status \(process.terminationStatus)" }
        let name = name(process.terminationStatus)
        return "signal \(process.terminationStatus)\(name.map { " (\($0))" } ?? "")"
    }
}

extension Duration {
    /// Whole nanoseconds, capped at `Int.max` (about 292 years) so a huge limit cannot overflow.
    var clampedNanoseconds: Int {
        let (seconds, attoseconds) = components
        guard seconds < Int64(Int.max / 1_000_000_000) - 1 else { return Int.max }
        return Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
    }
}
