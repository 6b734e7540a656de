import Broker
import Foundation
import Logging
import Synchronization
import TernCore
import Worker

/// Runs worker processes (this binary in child mode) and keeps them running.
///
/// Each child reports on its standard output the jobs it claims and settles (``SupervisorReport``),
/// so the supervisor knows what every process holds. When a process dies, its jobs are handed to
/// ``JobBroker/crashed(_:reason:maxCrashes:)`` at once: queued again, or failed as
/// `worker_crashed` after `maxCrashes` processes died running them, so a poison job cannot
/// crash-loop the fleet. A dead process is replaced, after a backoff (1 s doubling to 30 s) when
/// it keeps dying within 10 s of its start. A child that exits 0 on its own (it recycled itself)
/// is replaced at once.
///
/// A job that runs past its hard time limit plus the kill grace gets its process killed: the job
/// fails as timed out (its retry policy applies) and the process's other jobs are released at once.
/// ``reload()`` (SIGHUP) replaces every process gracefully. On ``shutdown()`` every child gets
/// SIGTERM and drains as a single worker does; jobs a child still held when it exited are released.
final class WorkerSupervisor: Sendable {
    struct Held {
        let lease: JobLease
        let claimed: ContinuousClock.Instant
        /// When to kill the process for this job's hard time limit, and the retry delay to record.
        let killAfter: Duration?
        let retryAfter: Duration?
    }

    struct Child {
        let process: Process
        let slot: Int
        let started: ContinuousClock.Instant
        var held: [JobID: Held] = [:]
        let tail: StderrTail
        /// The read end of the child's standard output, and whether a chunk of it is being handled.
        let output: FileHandle
        let reading: ReadFlag
        /// Replaced by a reload: not restarted when it exits.
        var retiring = false
        /// Killed by the supervisor for a job's hard time limit: its other jobs are released, not crashed.
        var killedForTimeLimit = false
        /// The worker id it registers under, and its concurrency (as it read its configuration).
        var workerID: String?
        var concurrency: Int?
    }

    struct State {
        var children: [Int32: Child] = [:]
        var count: Int
        var quickDeaths: [Int: Int] = [:]
        var processed = 0
        var stopping = false
        var finished: CheckedContinuation<Void, Never>?
    }

    let executable: String
    let arguments: [String]
    let broker: any JobBroker
    let configuration: WorkerConfiguration
    let logger: Logger
    /// Re-reads the configuration on ``reload()``: the new process count, `nil` to keep it; throws
    /// if the configuration is invalid (the processes are then kept).
    let reloadCount: @Sendable () throws -> Int?
    let id = "\(ProcessInfo.processInfo.hostName.prefix(64)):\(getpid()):supervisor"
    private let startedMilliseconds = Int64(WallClock.nowMilliseconds())
    private let state: Mutex<State>

    /// Where the attempts its processes report, and their exits, are counted (`--metrics-port`).
    let metrics: WorkerMetrics?

    init(
        executable: String, arguments: [String], count: Int, broker: any JobBroker, configuration: WorkerConfiguration,
        logger: Logger, metrics: WorkerMetrics? = nil, reloadCount: @escaping @Sendable () throws -> Int?
    ) {
        self.metrics = metrics
        self.executable = executable
        self.arguments = arguments
        self.broker = broker
        self.configuration = configuration
        self.logger = logger
        self.reloadCount = reloadCount
        state = Mutex(State(count: count))
    }

    /// Starts the processes and returns once all have exited after ``shutdown()``.
    func run() async throws {
        let count = state.withLock { $0.count }
        logger.info("supervisor starting worker processes", metadata: ["processes": "\(count)"])
        for slot in 0..<count { try spawn(slot) }
        let duties = Task { await self.duties() }
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.stopping && state.children.isEmpty { return true }
                state.finished = continuation
                return false
            }
            if done { continuation.resume() }
        }
        duties.cancel()
        if let registry = broker as? any WorkerRegistry { try? await registry.unregister(id) }
        logger.info("supervisor stopped: every worker process exited")
    }

    /// Asks every child to stop: SIGTERM the first time (they drain), SIGINT on a second call (they
    /// release their running jobs and exit at once). The second request is another signal because
    /// two SIGTERMs sent close together merge into one while the first is still pending, and the
    /// child would only drain.
    func shutdown() {
        let (pids, again) = state.withLock { state in
            defer { state.stopping = true }
            return (Array(state.children.keys), state.stopping)
        }
        for pid in pids { kill(pid, again ? SIGINT : SIGTERM) }
        finishIfDone()
    }

    /// Replaces every process gracefully: new ones start at once (they read the configuration file
    /// afresh), the old ones get SIGTERM and drain. An invalid configuration keeps the old processes.
    func reload() {
        let newCount: Int?
        do {
            newCount = try reloadCount()
        } catch {
            logger.error("reload refused: the configuration is invalid; keeping the running processes", metadata: ["error": "\(error)"])
            return
        }
        let (old, count) = state.withLock { state -> ([Int32], Int) in
            guard !state.stopping else { return ([], 0) }
            if let newCount, (1...256).contains(newCount) { state.count = newCount }
            for pid in state.children.keys { state.children[pid]?.retiring = true }
            state.quickDeaths = [:]
            return (Array(state.children.keys), state.count)
        }
        guard count > 0 else { return }
        logger.notice("reloading: replacing the worker processes", metadata: ["old": "\(old.count)", "processes": "\(count)"])
        for slot in 0..<count {
            do { try spawn(slot) } catch { logger.critical("cannot start a worker process", metadata: ["error": "\(error)"]) }
        }
        for pid in old { kill(pid, SIGTERM) }
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
        // Registered before the child can exit, so the handler always finds it.
        let registered = Mutex(false)
        process.terminationHandler = { [weak self] process in
            while !registered.withLock({ $0 }) { usleep(1_000) }
            self?.exited(process)
        }
        try process.run()
        let pid = process.processIdentifier
        let reading = ReadFlag()
        state.withLock {
            $0.children[pid] = Child(
                process: process, slot: slot, started: .now, tail: tail, output: output.fileHandleForReading, reading: reading)
        }
        registered.withLock { $0 = true }
        logger.info("worker process started", metadata: ["slot": "\(slot)", "pid": "\(pid)"])
        Thread { [weak self] in self?.readEvents(output.fileHandleForReading, pid: pid, reading: reading) }.start()
        Thread { tail.read(errors.fileHandleForReading) }.start()
    }

    /// Follows a child's `claimed` and `settled` lines.
    private func readEvents(_ handle: FileHandle, pid: Int32, reading: ReadFlag) {
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
                    guard state.children[pid] != nil else { return }
                    if parts.count == 5, parts[0] == "claimed", let id = JobID(parts[1]) {
                        state.children[pid]?.held[id] = Held(
                            lease: JobLease(id: id, token: parts[2]), claimed: .now,
                            killAfter: Int64(parts[3]).map { .milliseconds($0) }, retryAfter: Int64(parts[4]).map { .milliseconds($0) })
                    } else if parts.count == 4, parts[0] == "outcome", let kind = JobOutcome.Kind(rawValue: parts[2]),
                        let micros = Int64(parts[3])
                    {
                        metrics?.record(JobOutcome(task: parts[1], outcome: kind, duration: .microseconds(micros)))
                    } else if parts.count == 3, parts[0] == "worker" {
                        state.children[pid]?.workerID = parts[1]
                        state.children[pid]?.concurrency = Int(parts[2])
                    } else if parts.count == 2, parts[0] == "settled", let id = JobID(parts[1]) {
                        state.children[pid]?.held[id] = nil
                        state.processed += 1
                    }
                }
            }
        }
    }

    // MARK: Duties: hard time limits and the supervisor's registry entry

    private func duties() async {
        var lastAnnounce = ContinuousClock.now - .seconds(3600)
        while !Task.isCancelled {
            enforceHardLimits()
            if ContinuousClock.now - lastAnnounce >= configuration.heartbeatInterval {
                lastAnnounce = .now
                await announce()
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Kills each process holding a job past its hard time limit plus the kill grace, and records
    /// those jobs as timed out.
    private func enforceHardLimits() {
        let now = ContinuousClock.now
        let overdue = state.withLock { state -> [(Int32, Held)] in
            var found: [(Int32, Held)] = []
            for (pid, child) in state.children where !child.killedForTimeLimit {
                let late = child.held.values.filter { held in held.killAfter.map { now - held.claimed >= $0 } ?? false }
                guard !late.isEmpty else { continue }
                state.children[pid]?.killedForTimeLimit = true
                for held in late {
                    state.children[pid]?.held[held.lease.id] = nil
                    found.append((pid, held))
                }
            }
            return found
        }
        for pid in Set(overdue.map(\.0)) { kill(pid, SIGKILL) }
        for (pid, held) in overdue {
            let killedAfter = now - held.claimed
            let error = HardTimeLimitExceeded(
                limit: (held.killAfter ?? .zero) - configuration.killGrace, killedAfter: killedAfter)
            logger.error("job ran past its hard time limit; killed its worker process", metadata: [
                "job": "\(held.lease.id)", "pid": "\(pid)", "ran": "\(killedAfter)",
            ])
            Task {
                do {
                    _ = try await broker.fail(held.lease, message: error.description, retryAfter: held.retryAfter)
                } catch {
                    logger.error("could not record a timed-out job; its lease will expire", metadata: ["job": "\(held.lease.id)", "error": "\(error)"])
                }
            }
        }
    }

    /// The process count, and the slots, busy slots and settled jobs of the current (not retiring) processes.
    private func totals() -> (count: Int, concurrency: Int, busy: Int, processed: Int) {
        state.withLock { state in
            let current = state.children.values.filter { !$0.retiring }
            return (
                state.count, current.reduce(0) { $0 + ($1.concurrency ?? configuration.concurrency) },
                current.reduce(0) { $0 + $1.held.count }, state.processed
            )
        }
    }

    /// Sets the metrics' gauges: processes, busy slots and slots.
    func refreshMetrics() {
        guard let metrics else { return }
        let totals = totals()
        metrics.processes(totals.count)
        metrics.slots(busy: totals.busy, concurrency: totals.concurrency)
    }

    /// The supervisor's own entry in the worker registry: its processes and their totals.
    private func announce() async {
        guard let registry = broker as? any WorkerRegistry else { return }
        let (count, concurrency, busy, processed) = totals()
        let info = WorkerInfo(
            id: id, host: ProcessInfo.processInfo.hostName, pid: getpid(), queues: configuration.queues.map(\.rawValue),
            concurrency: concurrency, busy: busy, processed: processed,
            startedMilliseconds: startedMilliseconds, lastSeenMilliseconds: Int64(WallClock.nowMilliseconds()), processes: count)
        try? await registry.register(info, ttl: configuration.heartbeatInterval * 5 + .seconds(2))
    }

    // MARK: A child exits

    private func exited(_ process: Process) {
        let pid = process.processIdentifier
        // The child may have died right after writing a line: let the reader take in everything it
        // wrote (nothing left in the pipe, no chunk being handled), for at most a second.
        if let (handle, reading) = state.withLock({ state in state.children[pid].map { ($0.output, $0.reading) } }) {
            let deadline = ContinuousClock.now + .seconds(1)
            while ContinuousClock.now < deadline {
                var pending: Int32 = 0
                let idle = !reading.value.load(ordering: .sequentiallyConsistent)
                if ioctl(handle.fileDescriptor, UInt(FIONREAD), &pending) == 0 && pending == 0 && idle { break }
                usleep(2_000)
            }
        }
        let signalled = process.terminationReason == .uncaughtSignal
        let crashed = signalled || process.terminationStatus != 0
        let (child, stopping, delay) = state.withLock { state -> (Child?, Bool, Duration) in
            guard let child = state.children.removeValue(forKey: pid) else { return (nil, state.stopping, .zero) }
            let quick = crashed && !child.killedForTimeLimit && ContinuousClock.now - child.started < .seconds(10)
            if !child.retiring { state.quickDeaths[child.slot] = quick ? (state.quickDeaths[child.slot] ?? 0) + 1 : 0 }
            let deaths = child.retiring ? 0 : state.quickDeaths[child.slot] ?? 0
            return (child, state.stopping, deaths == 0 ? .zero : min(.seconds(30), .seconds(1) * (1 << min(deaths - 1, 5))))
        }
        guard let child else { return }
        let reason = Signals.exitReason(process)
        let held = child.held.values.map(\.lease)
        if !stopping && !child.retiring {
            metrics?.processEnded(child.killedForTimeLimit ? "killed" : crashed ? "crashed" : "recycled")
        }
        if (crashed && !child.killedForTimeLimit) || !held.isEmpty {
            logger.error("worker process died", metadata: [
                "pid": "\(pid)", "reason": "\(reason)", "jobs": "\(held.count)", "stderr_tail": "\(child.tail.text)",
            ])
        }
        Task {
            // A dead process cannot remove its own entry from the worker list.
            if let workerID = child.workerID, let registry = broker as? any WorkerRegistry {
                try? await registry.unregister(workerID)
            }
            await settleHeld(held, crashed: crashed && !child.killedForTimeLimit, reason: reason)
            if stopping || child.retiring { return finishIfDone() }
            if delay > .zero {
                logger.warning("worker process keeps dying; restarting after a pause", metadata: ["slot": "\(child.slot)", "pause": "\(delay)"])
                try? await Task.sleep(for: delay)
            }
            let replace = state.withLock { !$0.stopping && child.slot < $0.count }
            guard replace else { return finishIfDone() }
            do {
                try spawn(child.slot)
            } catch {
                logger.critical("cannot start a worker process", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The jobs a dead process held: crashed (counted) when it died on its own, else released.
    private func settleHeld(_ held: [JobLease], crashed: Bool, reason: String) async {
        guard !held.isEmpty else { return }
        guard crashed else {
            do { try await broker.release(held) } catch {
                logger.error("could not release the jobs of a stopped process; their leases will expire", metadata: ["error": "\(error)"])
            }
            return
        }
        for lease in held {
            // Retried through a Redis blip for up to a lease, so that the crash is counted.
            let deadline = ContinuousClock.now + configuration.lease
            var attempt = 0
            while true {
                do {
                    let state = try await broker.crashed(lease, reason: reason, maxCrashes: configuration.maxCrashes)
                    logger.warning("job of a dead worker process", metadata: ["job": "\(lease.id)", "now": "\(state.map(\.rawValue) ?? "stale")"])
                    break
                } catch let error as RedisError where error.isTransient && ContinuousClock.now < deadline {
                    attempt += 1
                    try? await Task.sleep(for: Backoff(base: .milliseconds(50), cap: .seconds(1)).delay(attempt: attempt))
                } catch {
                    logger.error("could not record a crashed job; its lease will expire", metadata: ["job": "\(lease.id)", "error": "\(error)"])
                    break
                }
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
