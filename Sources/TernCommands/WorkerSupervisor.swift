import Broker
import Foundation
import Logging
import Synchronization
import TernCore

/// Runs worker processes (this binary in child mode) and keeps them running.
///
/// Each child reports on its standard output the jobs it claims and settles, so the supervisor
/// knows what every process holds. When a process dies, its jobs are handed to
/// ``JobBroker/crashed(_:reason:maxCrashes:)`` at once: queued again, or failed as
/// `worker_crashed` after `maxCrashes` processes died running them, so a poison job cannot
/// crash-loop the fleet. A dead process is replaced, after a backoff (1 s doubling to 30 s) when
/// it keeps dying within 10 s of its start. A child that exits 0 on its own (it recycled itself
/// after `--max-jobs-per-process` jobs) is replaced at once. On ``shutdown()`` every child gets SIGTERM and drains
/// as a single worker does; jobs a child still held when it exited are released.
final class WorkerSupervisor: Sendable {
    struct Child {
        let process: Process
        let started: ContinuousClock.Instant
        var held: [JobID: JobLease] = [:]
        let tail: StderrTail
        /// The read end of the child's standard output, and whether a chunk of it is being handled.
        let output: FileHandle
        let reading: ReadFlag
    }

    struct State {
        var children: [Int: Child] = [:]
        var quickDeaths: [Int: Int] = [:]
        var stopping = false
        var finished: CheckedContinuation<Void, Never>?
    }

    let executable: String
    let arguments: [String]
    let count: Int
    let broker: any JobBroker
    let maxCrashes: Int
    let logger: Logger
    private let state = Mutex(State())

    init(executable: String, arguments: [String], count: Int, broker: any JobBroker, maxCrashes: Int, logger: Logger) {
        self.executable = executable
        self.arguments = arguments
        self.count = count
        self.broker = broker
        self.maxCrashes = maxCrashes
        self.logger = logger
    }

    /// Starts the processes and returns once all have exited after ``shutdown()``.
    func run() async throws {
        logger.info("supervisor starting worker processes", metadata: ["processes": "\(count)"])
        for slot in 0..<count { try spawn(slot) }
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.stopping && state.children.isEmpty { return true }
                state.finished = continuation
                return false
            }
            if done { continuation.resume() }
        }
        logger.info("supervisor stopped: every worker process exited")
    }

    /// Sends SIGTERM to every child (a second call sends it again: children then exit at once).
    func shutdown() {
        let pids = state.withLock { state in
            state.stopping = true
            return state.children.values.map(\.process.processIdentifier)
        }
        for pid in pids { kill(pid, SIGTERM) }
        finishIfDone()
    }

    private func spawn(_ slot: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        // Swift's crash backtracer keeps a dying process alive for seconds while it symbolicates,
        // which would let the job's lease expire before the supervisor sees the death. Off in
        // children unless SWIFT_BACKTRACE is set explicitly.
        var environment = ProcessInfo.processInfo.environment
        if environment["SWIFT_BACKTRACE"] == nil { environment["SWIFT_BACKTRACE"] = "enable=no" }
        process.environment = environment
        let tail = StderrTail()
        process.terminationHandler = { [weak self] process in self?.exited(slot, process) }
        try process.run()
        let pid = process.processIdentifier
        let reading = ReadFlag()
        state.withLock {
            $0.children[slot] = Child(process: process, started: .now, tail: tail, output: output.fileHandleForReading, reading: reading)
        }
        logger.info("worker process started", metadata: ["slot": "\(slot)", "pid": "\(pid)"])
        Thread { [weak self] in self?.readEvents(output.fileHandleForReading, slot: slot, pid: pid, reading: reading) }.start()
        Thread { tail.read(errors.fileHandleForReading) }.start()
    }

    /// Follows a child's `claimed <id> <token> <attempt>` and `settled <id>` lines.
    private func readEvents(_ handle: FileHandle, slot: Int, pid: Int32, reading: ReadFlag) {
        var buffer = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { return }
            reading.value.store(true, ordering: .sequentiallyConsistent)
            defer { reading.value.store(false, ordering: .sequentiallyConsistent) }
            buffer.append(chunk)
            while let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                let parts = line.split(separator: " ").map(String.init)
                state.withLock { state in
                    guard state.children[slot]?.process.processIdentifier == pid else { return }
                    if parts.count == 3, parts[0] == "claimed", let id = JobID(parts[1]) {
                        state.children[slot]?.held[id] = JobLease(id: id, token: parts[2])
                    } else if parts.count == 2, parts[0] == "settled", let id = JobID(parts[1]) {
                        state.children[slot]?.held[id] = nil
                    }
                }
            }
        }
    }

    private func exited(_ slot: Int, _ process: Process) {
        // The child may have died right after writing a line: let the reader take in everything it
        // wrote (nothing left in the pipe, no chunk being handled), for at most a second.
        let output = state.withLock { state -> FileHandle? in
            guard let child = state.children[slot], child.process === process else { return nil }
            return child.output
        }
        if let handle = output {
            let deadline = ContinuousClock.now + .seconds(1)
            while ContinuousClock.now < deadline {
                var pending: Int32 = 0
                let idle = state.withLock { $0.children[slot]?.reading.value.load(ordering: .sequentiallyConsistent) == false }
                if ioctl(handle.fileDescriptor, UInt(FIONREAD), &pending) == 0 && pending == 0 && idle { break }
                usleep(2_000)
            }
        }
        // Exit status 0 while not stopping: the child recycled itself (--max-jobs-per-process).
        let crashed = process.terminationReason == .uncaughtSignal || process.terminationStatus != 0
        let (child, stopping, delay) = state.withLock { state -> (Child?, Bool, Duration) in
            guard let child = state.children[slot], child.process === process else { return (nil, state.stopping, .zero) }
            state.children[slot] = nil
            let quick = crashed && ContinuousClock.now - child.started < .seconds(10)
            state.quickDeaths[slot] = quick ? (state.quickDeaths[slot] ?? 0) + 1 : 0
            let deaths = state.quickDeaths[slot] ?? 0
            return (child, state.stopping, deaths == 0 ? .zero : min(.seconds(30), .seconds(1) * (1 << min(deaths - 1, 5))))
        }
        guard let child else { return }
        let reason = process.terminationReason == .uncaughtSignal
            ? "signal \(process.terminationStatus)\(Self.signalName(process.terminationStatus).map { " (\($0))" } ?? "")"
            : "exit status \(process.terminationStatus)"
        let held = Array(child.held.values)
        if crashed || !held.isEmpty {
            logger.error("worker process died", metadata: [
                "pid": "\(process.processIdentifier)", "reason": "\(reason)", "jobs": "\(held.count)", "stderr_tail": "\(child.tail.text)",
            ])
        }
        Task {
            if !held.isEmpty {
                if crashed {
                    for lease in held {
                        do {
                            let state = try await broker.crashed(lease, reason: reason, maxCrashes: maxCrashes)
                            logger.warning("job of a dead worker process", metadata: ["job": "\(lease.id)", "now": "\(state.map(\.rawValue) ?? "stale")"])
                        } catch {
                            logger.error("could not record a crashed job; its lease will expire", metadata: ["job": "\(lease.id)", "error": "\(error)"])
                        }
                    }
                } else {
                    try? await broker.release(held)
                }
            }
            if stopping {
                finishIfDone()
                return
            }
            if delay > .zero {
                logger.warning("worker process keeps dying; restarting after a pause", metadata: ["slot": "\(slot)", "pause": "\(delay)"])
                try? await Task.sleep(for: delay)
            }
            guard !self.state.withLock({ $0.stopping }) else { return finishIfDone() }
            do {
                try spawn(slot)
            } catch {
                logger.critical("cannot start a worker process", metadata: ["error": "\(error)"])
            }
        }
    }

    private func finishIfDone() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.stopping && state.children.isEmpty else { return nil }
            defer { state.finished = nil }
            return state.finished
        }
        continuation?.resume()
    }

    static func signalName(_ number: Int32) -> String? {
        [4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"][number]
    }
}

/// The last 4 KiB a child wrote on standard error, for the log line when it dies.
final class StderrTail: Sendable {
    private let bytes = Mutex(Data())

    var text: String { bytes.withLock { String(decoding: $0, as: UTF8.self) }.trimmingCharacters(in: .whitespacesAndNewlines) }

    func read(_ handle: FileHandle) {
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { return }
            FileHandle.standardError.write(chunk)  // the children's logs stay visible
            bytes.withLock { data in
                data.append(chunk)
                if data.count > 4096 { data.removeFirst(data.count - 4096) }
            }
        }
    }
}

/// Whether a supervisor's reader is handling a chunk of a child's output.
final class ReadFlag: Sendable {
    let value = Atomic<Bool>(false)
}
