import Broker
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TernCore

/// Runs worker processes (this binary in child mode) and keeps them running.
///
/// Each child reports on its standard output the jobs it claims and settles (``SupervisorReport``),
/// so the supervisor knows what every process holds. When a process dies, its jobs are handed to
/// ``JobBroker/crashed(_:reason:maxCrashes:shared:)`` at once. A job that ran alone there is
/// charged with the crash: queued again, or failed as `worker_crashed` after `maxCrashes` charged
/// crashes, so a poison job cannot crash-loop the fleet. Jobs that ran together are only suspects:
/// queued again uncharged, and from then on each runs alone in a process of its own (as an
/// isolated task does), so that an innocent neighbour of a poison job is never failed for it. A dead process is replaced, after a backoff (1 s doubling to 30 s) when
/// it keeps dying within 10 s of its start without running a job. A child that exits 0 on its own (it recycled itself)
/// is replaced at once.
///
/// A job that runs past its hard time limit plus the kill grace gets its process killed: the job
/// fails as timed out (its retry policy applies) and the process's other jobs are released at once.
/// ``reload()`` (SIGHUP) replaces every process gracefully. On ``shutdown()`` every child gets
/// SIGTERM and drains as a single worker does; jobs a child still held when it exited are released.
///
/// It is a `Service`: in a `ServiceGroup`, graceful shutdown is ``shutdown()``, and cancellation (a
/// second signal) is a second ``shutdown()``, which makes every process release its jobs at once.
public final class WorkerSupervisor: Service, Sendable {
    struct Held {
        let lease: JobLease
        let claimed: ContinuousClock.Instant
        /// When to kill the process for this job's hard time limit, and the retry delay to record.
        let killAfter: Duration?
        let retryAfter: Duration?
        /// The job runs in a process of its own (isolated, or a suspect): if this process dies, the
        /// job did not kill it.
        let isolated: Bool
        /// The job's task has ended; the process is reporting its outcome.
        var ended = false
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
        /// Processes that ended and were replaced, by reason, since the supervisor started.
        var exits: [String: Int] = [:]
        var stopping = false
        var finished: CheckedContinuation<Void, Never>?
        /// Processes that exited and whose jobs are not settled yet.
        var unsettledExits = 0
        /// A signal asked it to stop (a second one hurries the processes); a stop order alone does not count.
        var signalled = false
        /// An operator's quiet order holds, and the processes (worker ids) it was passed on to.
        var quiet = false
        var quieted: Set<String> = []
        /// How many times ``quiet()`` was called (SIGTSTP), and the count whose quiet order to its own
        /// id was stored last: while one is not stored, it stays quiet whatever it reads.
        var quietAsked = 0
        var quietStored = 0
        /// An order left for its id before it started was withdrawn: until then it follows none.
        var ordersReady = false
    }

    /// Redis work for a dead process or an overdue job, done by ``run()``'s task group.
    enum Work: Sendable {
        case exited(Child, crashed: Bool, reason: String, stopping: Bool, delay: Duration)
        case timedOut(Held, HardTimeLimitExceeded)
        /// Pass a quiet order to a process that started while it holds.
        case quiet(String)
    }

    let executable: String
    let arguments: [String]
    let broker: any JobBroker
    let configuration: WorkerConfiguration
    let logger: Logger
    /// Re-reads the configuration on ``reload()``: the new process count, `nil` to keep it; throws
    /// if the configuration is invalid (the processes are then kept).
    let reloadCount: @Sendable () throws -> Int?
    /// Its entry in the worker registry.
    public let id = "\(ProcessInfo.processInfo.hostName.prefix(64)):\(getpid()):supervisor"
    private let startedMilliseconds = Int64(WallClock.nowMilliseconds())
    let state: Mutex<State>
    let work: (stream: AsyncStream<Work>, continuation: AsyncStream<Work>.Continuation)

    /// Hears of the attempts its processes report, and of processes that ended (`--metrics-port`).
    let observer: (any SupervisorObserver)?

    /// - Parameters:
    ///   - executable: the binary its processes run (this one).
    ///   - arguments: their arguments (`--child` among them).
    ///   - count: how many processes.
    ///   - reloadCount: re-reads the configuration on ``reload()``: the new process count, `nil` to
    ///     keep it; throws if the configuration is invalid (the processes are then kept).
    public init(
        executable: String, arguments: [String], count: Int, broker: any JobBroker, configuration: WorkerConfiguration,
        logger: Logger, observer: (any SupervisorObserver)? = nil, reloadCount: @escaping @Sendable () throws -> Int?
    ) {
        self.observer = observer
        self.work = AsyncStream.makeStream(of: Work.self)
        self.executable = executable
        self.arguments = arguments
        self.broker = broker
        self.configuration = configuration
        self.logger = logger
        self.reloadCount = reloadCount
        state = Mutex(State(count: count))
    }

    /// Starts the processes and returns once all have exited after ``shutdown()`` (or, in a
    /// `ServiceGroup`, its graceful shutdown; cancellation asks a second time).
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await runUntilStopped()
            } onCancel: {
                self.shutdown()
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    private func runUntilStopped() async throws {
        let count = state.withLock { $0.count }
        logger.info("supervisor starting worker processes", metadata: ["processes": "\(count)"])
        if !state.withLock({ $0.stopping }) {
            for slot in 0..<count { try spawn(slot) }
        }
        // Until every process has exited after a shutdown and its jobs are settled (the stream of
        // work then finishes), or until cancelled.
        await withDiscardingTaskGroup { group in
            group.addTask { await self.duties() }
            for await item in work.stream {
                group.addTask { await self.handle(item) }
            }
        }
        // Cancelled (a second stop request): the processes were told to release their jobs and exit.
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.stopping && state.children.isEmpty && state.unsettledExits == 0 { return true }
                state.finished = continuation
                return false
            }
            if done { continuation.resume() }
        }
        if let registry = broker as? any WorkerRegistry { try? await registry.unregister(id) }
        logger.info("supervisor stopped: every worker process exited")
    }

    /// Asks every child to stop: SIGTERM the first time (they drain), SIGINT on a second call (they
    /// release their running jobs and exit at once). The second request is another signal because
    /// two SIGTERMs sent close together merge into one while the first is still pending, and the
    /// child would only drain.
    public func shutdown() {
        let (pids, signal) = state.withLock { state -> ([Int32], Int32?) in
            defer {
                state.stopping = true
                state.signalled = true
            }
            if state.signalled { return (Array(state.children.keys), SIGINT) }
            // Stopping already on an operator's order: the processes have their SIGTERM, and a
            // second one would hurry them.
            if state.stopping { return ([], nil) }
            return (Array(state.children.keys), SIGTERM)
        }
        if let signal { for pid in pids { kill(pid, signal) } }
        finishIfDone()
    }

    /// Stops as on a first SIGTERM, on an operator's order: a later signal is still the first.
    func stopAsOrdered() {
        let pids = state.withLock { state -> [Int32]? in
            guard !state.stopping else { return nil }
            state.stopping = true
            return Array(state.children.keys)
        }
        guard let pids else { return }
        for pid in pids { kill(pid, SIGTERM) }
        finishIfDone()
    }

    /// Replaces every process gracefully: new ones start at once (they read the configuration file
    /// afresh), the old ones get SIGTERM and drain. An invalid configuration keeps the old processes.
    public func reload() {
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
        let launched = ChildLauncher.prepare(executable: executable, arguments: arguments, pipeInput: false, pipeErrors: true)
        let process = launched.process
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
                process: process, slot: slot, started: .now, tail: tail, output: launched.output, reading: reading)
        }
        registered.withLock { $0 = true }
        logger.info("worker process started", metadata: ["slot": "\(slot)", "pid": "\(pid)"])
        // A stop request that came while it started did not reach it.
        if state.withLock({ $0.stopping }) { kill(pid, SIGTERM) }
        let output = launched.output, errors = launched.errors!
        Thread { [weak self] in self?.readEvents(output, pid: pid, reading: reading) }.start()
        Thread { tail.read(errors) }.start()
    }

    /// Follows a child's `claimed` and `settled` lines.
    private func readEvents(_ handle: FileHandle, pid: Int32, reading: ReadFlag) {
        var buffer = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty {
                reading.ended.store(true, ordering: .sequentiallyConsistent)
                return
            }
            reading.value.store(true, ordering: .sequentiallyConsistent)
            defer { reading.value.store(false, ordering: .sequentiallyConsistent) }
            buffer.append(chunk)
            while let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                guard let message = SupervisorMessage(line: line) else { continue }
                if case .outcome(let task, let outcome, let duration) = message {
                    observer?.recorded(JobOutcome(task: task, outcome: outcome, duration: duration))
                    continue
                }
                state.withLock { state in
                    guard state.children[pid] != nil else { return }
                    switch message {
                    case .claimed(let lease, let killAfter, let retryAfter, let isolated):
                        state.children[pid]?.held[lease.id] = Held(
                            lease: lease, claimed: .now, killAfter: killAfter, retryAfter: retryAfter, isolated: isolated)
                    case .worker(let id, let concurrency):
                        state.children[pid]?.workerID = id
                        state.children[pid]?.concurrency = concurrency
                        // Before its first registration, as a rule: it then claims nothing.
                        if state.quiet { work.continuation.yield(.quiet(id)) }
                    case .ended(let id):
                        state.children[pid]?.held[id]?.ended = true
                    case .settled(let id):
                        state.children[pid]?.held[id] = nil
                        state.processed += 1
                    case .outcome:
                        break
                    }
                }
            }
        }
    }

    // MARK: Duties: hard time limits and the supervisor's registry entry

    private func duties() async {
        var lastAnnounce = ContinuousClock.now - .seconds(3600)
        while !Task.isCancelled && !state.withLock({ $0.stopping && $0.children.isEmpty }) {
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
                let late = child.held.values.filter { held in !held.ended && (held.killAfter.map { now - held.claimed >= $0 } ?? false) }
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
            work.continuation.yield(.timedOut(held, error))
        }
    }

    /// The process count, and the slots, busy slots and settled jobs of the current (not retiring) processes.
    private func totals() -> (count: Int, running: Int, concurrency: Int, busy: Int, processed: Int) {
        state.withLock { state in
            let current = state.children.values.filter { !$0.retiring }
            return (
                state.count, current.count, current.reduce(0) { $0 + ($1.concurrency ?? configuration.concurrency) },
                current.reduce(0) { $0 + $1.held.values.filter { !$0.ended }.count }, state.processed
            )
        }
    }

    /// The current (running, not retiring) processes, their slots and their busy slots, for the
    /// metrics' gauges and the readiness probe.
    public var slots: (processes: Int, concurrency: Int, busy: Int) {
        let totals = totals()
        return (totals.running, totals.concurrency, totals.busy)
    }

    /// The supervisor's own entry in the worker registry: its processes and their totals.
    private func announce() async {
        guard let registry = broker as? any WorkerRegistry else { return }
        let (count, _, concurrency, busy, processed) = totals()
        let info = WorkerInfo(
            id: id, host: ProcessInfo.processInfo.hostName, pid: getpid(), queues: configuration.queues.map(\.rawValue),
            concurrency: concurrency, busy: busy, processed: processed,
            startedMilliseconds: startedMilliseconds, lastSeenMilliseconds: Int64(WallClock.nowMilliseconds()), processes: count,
            processExits: state.withLock { $0.exits }, mode: mode)
        await withdrawOldOrder()
        await storeAskedQuiet(registry)
        let order: WorkerOrder?
        do {
            order = try await registry.register(info, ttl: configuration.heartbeatInterval * 5 + .seconds(2))
        } catch {
            return  // unreachable Redis changes no order
        }
        guard state.withLock({ $0.ordersReady }) else { return }
        let mode = self.mode
        await follow(order, registry)
        if self.mode != mode { await announce() }
    }

    // MARK: A child exits

    private func exited(_ process: Process) {
        let pid = process.processIdentifier
        // The child may have died right after writing a line: let the reader take in everything it
        // wrote, for at most a second. Its output ends with it, so the reader reaching the end is
        // the sure sign; else (a process of its own still holding the pipe) an empty pipe and no
        // chunk being handled, seen twice in a row, 20 ms apart.
        if let (handle, reading) = state.withLock({ state in state.children[pid].map { ($0.output, $0.reading) } }) {
            let deadline = ContinuousClock.now + .seconds(1)
            var quiet = 0
            while ContinuousClock.now < deadline && !reading.ended.load(ordering: .sequentiallyConsistent) {
                var pending: Int32 = 0
                let idle = !reading.value.load(ordering: .sequentiallyConsistent)
                quiet = ioctl(handle.fileDescriptor, UInt(FIONREAD), &pending) == 0 && pending == 0 && idle ? quiet + 1 : 0
                if quiet >= 10 { break }
                usleep(2_000)
            }
        }
        let signalled = process.terminationReason == .uncaughtSignal
        let crashed = signalled || process.terminationStatus != 0
        let (child, stopping, delay) = state.withLock { state -> (Child?, Bool, Duration) in
            guard let child = state.children.removeValue(forKey: pid) else { return (nil, state.stopping, .zero) }
            state.unsettledExits += 1
            // A death while running jobs is the jobs' to answer for (crash counts, suspects): replaced at
            // once. One without a job, soon after the start, is the process's own: backed off.
            let quick = crashed && !child.killedForTimeLimit && child.held.isEmpty && ContinuousClock.now - child.started < .seconds(10)
            if !child.retiring { state.quickDeaths[child.slot] = quick ? (state.quickDeaths[child.slot] ?? 0) + 1 : 0 }
            let deaths = child.retiring ? 0 : state.quickDeaths[child.slot] ?? 0
            return (child, state.stopping, deaths == 0 ? .zero : min(.seconds(30), .seconds(1) * (1 << min(deaths - 1, 5))))
        }
        guard let child else { return }
        let reason = Signals.exitReason(process)
        let held = child.held.values.map(\.lease)
        if !stopping && !child.retiring {
            let why = child.killedForTimeLimit ? "killed" : crashed ? "crashed" : "recycled"
            state.withLock { $0.exits[why, default: 0] += 1 }
            observer?.processEnded(why)
        }
        if (crashed && !child.killedForTimeLimit) || !held.isEmpty {
            logger.error("worker process died", metadata: [
                "pid": "\(pid)", "reason": "\(reason)", "jobs": "\(held.count)", "stderr_tail": "\(child.tail.text)",
            ])
        }
        let item = Work.exited(child, crashed: crashed, reason: reason, stopping: stopping, delay: delay)
        if case .terminated = work.continuation.yield(item) {
            // Cancelled: nobody settles its jobs any more (the process was told to release them).
            state.withLock { $0.unsettledExits -= 1 }
            finishIfDone()
        }
    }

    private func handle(_ item: Work) async {
        switch item {
        case .quiet(let id):
            guard let registry = broker as? any WorkerRegistry, (try? await registry.give(.quiet, to: id)) != nil else { return }
            _ = state.withLock { $0.quieted.insert(id) }
        case .timedOut(let held, let error):
            do {
                _ = try await broker.fail(held.lease, message: error.description, retryAfter: held.retryAfter)
            } catch {
                logger.error("could not record a timed-out job; its lease will expire", metadata: ["job": "\(held.lease.id)", "error": "\(error)"])
            }
        case .exited(let child, let crashed, let reason, let stopping, let delay):
            // A dead process cannot remove its own entry from the worker list.
            if let workerID = child.workerID, let registry = broker as? any WorkerRegistry {
                try? await registry.unregister(workerID)
            }
            await settleHeld(Array(child.held.values), crashed: crashed && !child.killedForTimeLimit, reason: reason)
            state.withLock { $0.unsettledExits -= 1 }
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

    /// The jobs a dead process held: crashed (counted) when it died on its own, else released. A job
    /// whose task had ended (its outcome was being reported) did not crash the process: it is
    /// released, and the crash is charged to the jobs still running, shared if there were several.
    private func settleHeld(_ held: [Held], crashed: Bool, reason: String) async {
        // Only the jobs that ran in the process itself can have crashed it: those whose task had
        // ended, and those running in processes of their own (which end with it), go back uncharged.
        let charged = { (job: Held) in !job.ended && !job.isolated }
        let released = crashed ? held.filter { !charged($0) } : held
        let running = crashed ? held.filter(charged).map(\.lease) : []
        if !released.isEmpty {
            do { try await broker.release(released.map(\.lease)) } catch {
                logger.error("could not release the jobs of a stopped process; their leases will expire", metadata: ["error": "\(error)"])
            }
        }
        for lease in running {
            // Retried through a Redis blip for up to a lease, so that the crash is counted.
            let deadline = ContinuousClock.now + configuration.lease
            var attempt = 0
            while true {
                do {
                    let state = try await broker.crashed(
                        lease, reason: reason, maxCrashes: configuration.maxCrashes, shared: running.count > 1)
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

    /// Once stopping and every process has exited: ends the stream of work (so ``run()`` returns
    /// after the work in progress) and wakes ``run()`` if it was cancelled.
    private func finishIfDone() {
        let (done, continuation) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard state.stopping && state.children.isEmpty && state.unsettledExits == 0 else { return (false, nil) }
            defer { state.finished = nil }
            return (true, state.finished)
        }
        if done { work.continuation.finish() }
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
    /// A chunk is being handled.
    let value = Atomic<Bool>(false)
    /// The reader saw the end of the child's output and handled everything before it.
    let ended = Atomic<Bool>(false)
}

/// Hears what a ``WorkerSupervisor``'s processes report: attempts finished (for metrics) and
/// processes that ended unexpectedly (`crashed`), were killed at a hard limit (`killed`) or
/// recycled themselves (`recycled`).
public protocol SupervisorObserver: Sendable {
    func recorded(_ outcome: JobOutcome)
    func processEnded(_ reason: String)
}
