import Broker
import Foundation
import Logging
import Synchronization
import TernCore

/// Claims jobs from a broker and runs them, up to ``WorkerConfiguration/concurrency`` at once.
///
/// Claimed jobs sit in Redis's active set under a lease that the heartbeat extends; every report
/// carries the lease token. A reaper returns expired leases (of any worker) to their queues. On
/// ``shutdown()`` the worker stops claiming at once, lets running jobs finish within the grace
/// period, then returns the rest to their queues without using up an attempt.
///
/// ```swift
/// let worker = JobWorker(broker: broker, registry: registry, configuration: configuration, logger: logger)
/// try await worker.run()  // until worker.shutdown()
/// ```
public final class JobWorker: Sendable {
    struct Running {
        let job: ClaimedJob
        let control: JobControl
        /// Its task has ended; its outcome is being reported.
        var reporting = false
    }

    struct State {
        /// Every job this worker holds: running, or reporting its outcome.
        var running: [JobID: Running] = [:]
        /// How many of `running` have ended their task and are reporting their outcome: they no
        /// longer take a slot of ``WorkerConfiguration/concurrency``.
        var reporting = 0
        var startedMilliseconds = Int64(WallClock.nowMilliseconds())
        var stopping = false
        /// Release running jobs now instead of waiting out the grace period.
        var hurry = false
        var slotWaiter: CheckedContinuation<Void, Never>?
        var processed = 0
        /// Jobs claimed since the worker started (see ``WorkerConfiguration/maxJobs``).
        var claimed = 0
        /// The most a heartbeat came later than its interval (see ``worstHeartbeatDelay``).
        var worstHeartbeatDelay: Duration = .zero
        /// When the task catalogue was last stored in the broker.
        var catalogueStored: ContinuousClock.Instant?
        /// Whether the last attempt to store it failed.
        var catalogueFailing = false
        /// When the duty thread last began a round of heartbeats and registration (see ``health``).
        var lastDutyRound: ContinuousClock.Instant?
        /// When the worker last registered itself, and why the last registration failed, if it did.
        var lastRegistered: ContinuousClock.Instant?
        var registrationError: String?
        /// An operator's quiet order holds: the worker claims nothing (``WorkerOrder/quiet``).
        var quiet = false
        /// How many times ``quiet()`` was called (SIGTSTP), and the count whose quiet order to its own
        /// id was stored last: while one is not stored, the worker stays quiet whatever it reads.
        var quietAsked = 0
        var quietStored = 0
        /// Ends the idle wait under way, when the worker stops or goes quiet.
        var idleInterrupt: JobControl?
        /// An order left for its id before it started was withdrawn (a supervised process, whose
        /// id is new, has none): until then it follows no order.
        var ordersReady = false

        /// The slots in use: jobs whose task is running.
        var busy: Int { running.count - reporting }
    }

    let broker: any JobBroker
    let registry: TaskRegistry
    /// What this worker publishes of its tasks (`nil` with none registered), for APIs without them.
    let catalogue: TaskCatalogue?
    let configuration: WorkerConfiguration
    let logger: Logger
    /// The process's application resources, which jobs reach through their context.
    let dependencies: DependencyStore
    /// The application's execution middleware and lifecycle observers.
    let middleware: Middleware
    let state = Mutex(State())
    /// Told of each job claimed (before it starts) and settled (after its outcome is reported):
    /// how a supervisor knows which jobs a worker process holds.
    let events: (@Sendable (WorkerEvent) -> Void)?

    /// Creates a worker; jobs reach `dependencies` through their context (the caller owns the store
    /// and shuts it down after ``run()`` returns), and run inside `middleware`'s execution
    /// middleware, whose observers see their lifecycle; `events`, if given, hears of every job
    /// claimed and settled.
    public init(
        broker: any JobBroker, registry: TaskRegistry, configuration: WorkerConfiguration, logger: Logger,
        dependencies: DependencyStore = .empty, middleware: Middleware = Middleware(),
        events: (@Sendable (WorkerEvent) -> Void)? = nil
    ) {
        self.events = events
        self.middleware = middleware
        self.dependencies = dependencies
        self.broker = broker
        self.registry = registry
        catalogue = registry.names.isEmpty ? nil : TaskCatalogue(registry)
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerID)"
        self.logger = logger
        state.withLock { $0.ordersReady = configuration.supervisorPID != nil }
    }

    /// Jobs whose task is running now: the slots of ``WorkerConfiguration/concurrency`` in use. A
    /// job whose task has ended frees its slot while its outcome is being reported.
    public var busy: Int { state.withLock { $0.busy } }

    /// How many more jobs may start now: the free slots, no more than one concurrency's worth of
    /// outcomes still being reported (so that a slow Redis cannot make them pile up), and no more
    /// than ``WorkerConfiguration/maxJobs`` allows.
    private func freeSlots(_ state: State) -> Int {
        if state.quiet { return 0 }
        let free = min(
            configuration.concurrency - state.busy,
            2 * configuration.concurrency - state.running.count)
        guard let maxJobs = configuration.maxJobs else { return free }
        return min(free, maxJobs - state.claimed)
    }

    /// Jobs this worker has finished (any outcome) since it started.
    public var processed: Int { state.withLock { $0.processed } }

    /// The most any heartbeat came later than ``WorkerConfiguration/heartbeatInterval`` since the
    /// worker started: the longest time between two successive successful heartbeats of running
    /// jobs' leases, less the interval (a Redis outage in between is not counted). A lease is lost
    /// only if this approaches ``WorkerConfiguration/lease``.
    public var worstHeartbeatDelay: Duration { state.withLock { $0.worstHeartbeatDelay } }

    /// Asks the worker to stop: no more claims; ``run()`` returns once running jobs finish or the
    /// grace period ends and the rest are released. With `waitingForJobs` false (a second signal),
    /// running jobs are released at once instead of being waited for.
    public func shutdown(waitingForJobs: Bool = true) {
        let (waiter, interrupt, first, running) = state.withLock { state in
            let first = !state.stopping
            state.stopping = true
            if !waitingForJobs { state.hurry = true }
            defer { state.slotWaiter = nil }
            return (state.slotWaiter, state.idleInterrupt, first, state.busy)
        }
        interrupt?.signal(.shutdown)
        waiter?.resume()
        if first {
            logger.info(
                "stopping: claiming no more jobs", metadata: [
                    "running": "\(running)", "grace": "\(waitingForJobs ? configuration.shutdownGrace.shortDescription : "none")",
                ])
        }
    }

    var isStopping: Bool { state.withLock { $0.stopping } }

    /// Runs until ``shutdown()``. Cancelling the calling task is the same as
    /// `shutdown(waitingForJobs: false)`: running jobs are cancelled and released to their queues
    /// at once. The worker's own Redis calls are shielded from the cancellation
    /// (``RedisCancellationShield``), so it still reports finished jobs, releases the rest and
    /// leaves the registry before it returns.
    public func run() async throws {
        await withTaskCancellationHandler {
            await RedisCancellationShield.shielded { await self.runUntilShutdown() }
        } onCancel: {
            self.shutdown(waitingForJobs: false)
        }
    }

    private func runUntilShutdown() async {
        logger.info(
            "worker started",
            metadata: [
                "queues": "\(configuration.queues.map(\.rawValue).joined(separator: ","))",
                "concurrency": "\(configuration.concurrency)",
            ])
        let count = configuration.jobThreads ?? min(configuration.concurrency, JobThreads.maxCount)
        let threads = count > 0 ? JobThreads(count: count) : nil
        defer { threads?.stop() }
        // Heartbeats and the reaper run on a thread of their own, never queued behind jobs or
        // anything else on the shared pool: a busy process must not lose its leases.
        let duties = DutyThread()
        defer { duties.stop() }
        // Listed (and its catalogue published) before it claims: a job's `worker` always names a
        // worker that `tern workers` has shown.
        await declareLimits()
        await announce()
        await withTaskGroup(of: Void.self) { group in
            group.addTask(executorPreference: duties) { await self.heartbeatLoop(duties) }
            group.addTask(executorPreference: duties) { await self.reaperLoop(duties) }
            await withDiscardingTaskGroup { jobs in
                await fetchLoop(jobs: &jobs, threads: threads)
                await drain()
            }
            group.cancelAll()
        }
        if let registry = broker as? any WorkerRegistry {
            try? await registry.unregister(configuration.workerID)
        }
        logger.info(
            "worker stopped",
            metadata: [
                "processed": "\(processed)",
                "worst_heartbeat_delay_ms": "\(worstHeartbeatDelay.nanoseconds / 1_000_000)",
            ])
    }

    // MARK: Claiming

    private func fetchLoop(jobs: inout DiscardingTaskGroup, threads: JobThreads?) async {
        var failures = 0
        // With several queues, a queue whose claim fails (its Redis Cluster node is down) is
        // skipped until its own backoff ends, so the other queues' nodes keep being served.
        var failing = FailingQueues()
        // Set when a wait's own claim found nothing: the next round goes straight back to waiting.
        var claimedWhileWaiting = false
        while !isStopping {
            if Task.isCancelled {
                shutdown()
                break
            }
            let free = state.withLock { freeSlots($0) }
            if free <= 0 {
                await waitForSlot()
                continue
            }
            do {
                var claimed = 0
                let open = failing.open(configuration.queues)
                if open.isEmpty {
                    try? await Task.sleep(until: failing.nextRetry, clock: .continuous)
                    continue
                }
                let skipClaims = claimedWhileWaiting
                claimedWhileWaiting = false
                for queue in queueVisitOrder() where !skipClaims && claimed < free && state.withLock({ !$0.stopping && !$0.quiet }) && open.contains(queue) {
                    let jobsOfQueue: [ClaimedJob]
                    do {
                        jobsOfQueue = try await broker.claim(
                            queue: queue, limit: free - claimed, worker: configuration.workerID, lease: configuration.lease)
                        failing.succeeded(queue)
                    } catch where configuration.queues.count > 1 && !(error is CancellationError) {
                        let delay = failing.failed(queue)
                        logger.warning(
                            "claiming failed; retrying",
                            metadata: ["queue": "\(queue)", "error": "\(error)", "retry_in": "\(delay)"])
                        continue
                    }
                    // Start them at once: a failing claim on the next queue must not strand these.
                    start(jobsOfQueue, in: &jobs, threads: threads)
                    claimed += jobsOfQueue.count
                }
                failures = 0
                if claimed == 0 {
                    if !isStopping {
                        // Wake for a scheduled or retrying job on time, not only on new work.
                        var wait = configuration.idleWait
                        let ready = failing.open(configuration.queues)
                        if let due = try await broker.nextDue(queues: ready) { wait = min(wait, due) }
                        if wait >= .milliseconds(1), ready.count == 1, broker.claimsWhileWaiting {
                            let found = try await waitAndClaimOrShutdown(wait, queue: ready[0], limit: free)
                            start(found, in: &jobs, threads: threads)
                            // A wait ended by a quiet order claimed nothing to go by.
                            claimedWhileWaiting = found.isEmpty && !state.withLock { $0.quiet }
                        } else if wait >= .milliseconds(1) {
                            try await waitForWorkOrShutdown(wait, queues: ready)
                        }
                    }
                    continue
                }
            } catch {
                failures += 1
                let delay = Backoff(base: .milliseconds(50), cap: .seconds(2)).delay(attempt: failures)
                logger.warning("claiming failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// Starts claimed jobs. Every claim is reported before any of these jobs starts: a job that
    /// kills the process at once must not take along a job its supervisor never heard of.
    private func start(_ claimed: [ClaimedJob], in jobs: inout DiscardingTaskGroup, threads: JobThreads?) {
        for job in claimed { events?(.claimed(job)) }
        for job in claimed {
            let control = JobControl()
            state.withLock { state in
                state.running[job.id] = Running(job: job, control: control)
                state.claimed += 1
            }
            jobs.addTask { await self.execute(job, control: control, threads: threads) }
        }
    }

    /// Blocks on Redis until work may be there or `timeout` passes, and claims up to `limit` jobs
    /// in the same round trip. ``shutdown()`` and a quiet order end the wait through Redis rather
    /// than by cancelling it: a cancelled wait closes its connection, and jobs its claim took in
    /// that instant would wait out their lease. What a stopping or quiet worker claimed is released
    /// at once.
    private func waitAndClaimOrShutdown(_ timeout: Duration, queue: QueueName, limit: Int) async throws -> [ClaimedJob] {
        let broker = self.broker, workerID = configuration.workerID, interrupt = idleInterrupt()
        let interrupter = Task {
            guard await interrupt.waitForStop(limit: nil) != nil else { return }
            try? await broker.interruptWait(worker: workerID, queue: queue)
        }
        defer { interrupter.cancel() }
        let found = try await broker.waitAndClaim(
            queue: queue, limit: limit, worker: workerID, lease: configuration.lease, timeout: timeout)
        guard state.withLock({ $0.stopping || $0.quiet }), !found.isEmpty else { return found }
        await report("release", id: nil) { try await broker.release(found.map(\.lease)) }
        return []
    }

    /// Blocks on Redis until work may be there, `timeout` passes, ``shutdown()`` is called or a quiet
    /// order comes.
    private func waitForWorkOrShutdown(_ timeout: Duration, queues: [QueueName]) async throws {
        let interrupt = idleInterrupt()
        let outcome: Result<Void, any Error>? = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask {
                do {
                    _ = try await self.broker.waitForWork(queues: queues, timeout: timeout)
                    return .success(())
                } catch {
                    return Task.isCancelled ? nil : .failure(error)
                }
            }
            group.addTask {
                _ = await interrupt.waitForStop(limit: nil)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        try outcome?.get()
    }

    private func queueVisitOrder() -> [QueueName] {
        guard case .weighted(let weights) = configuration.queueOrder, weights.count == configuration.queues.count
        else { return configuration.queues }
        var remaining = Array(zip(configuration.queues, weights.map { max(1, $0) }))
        var order: [QueueName] = []
        while !remaining.isEmpty {
            var pick = Int.random(in: 0..<remaining.reduce(0) { $0 + $1.1 })
            let index = remaining.firstIndex { entry in
                pick -= entry.1
                return pick < 0
            }!
            order.append(remaining.remove(at: index).0)
        }
        return order
    }

    private func waitForSlot() async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                if state.stopping || freeSlots(state) > 0 { return true }
                state.slotWaiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Frees the slot of a job whose task has ended, while its outcome is being reported.
    func taskEnded(_ id: JobID) {
        events?(.taskEnded(id))
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.running[id]?.reporting == false else { return nil }
            state.running[id]?.reporting = true
            state.reporting += 1
            defer { state.slotWaiter = nil }
            return state.slotWaiter
        }
        waiter?.resume()
    }

    func finished(_ id: JobID) {
        events?(.settled(id))
        let waiter = state.withLock { state in
            if state.running.removeValue(forKey: id)?.reporting == true { state.reporting -= 1 }
            state.processed += 1
            defer { state.slotWaiter = nil }
            return state.slotWaiter
        }
        waiter?.resume()
    }

    // MARK: Shutdown

    /// Waits for running jobs up to the grace period, then releases the rest at once.
    private func drain() async {
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        while state.withLock({ !$0.running.isEmpty }) && ContinuousClock.now < deadline && !Task.isCancelled && !state.withLock({ $0.hurry }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        // Jobs whose task has ended are reporting their outcome: let them, never release them.
        let remaining = state.withLock { Array($0.running.values) }.filter { $0.control.claimForRelease() }
        if !remaining.isEmpty {
            let leases = remaining.map(\.job.lease)
            await report("release", id: nil) { try await self.broker.release(leases) }
            logger.notice("released unfinished jobs to their queues", metadata: ["count": "\(leases.count)"])
        }
    }

    // MARK: Background duties

    /// This worker as it describes itself to the registry.
    public var info: WorkerInfo {
        let (busy, processed, started) = state.withLock { ($0.busy, $0.processed, $0.startedMilliseconds) }
        return WorkerInfo(
            id: configuration.workerID, host: ProcessInfo.processInfo.hostName, pid: getpid(),
            queues: configuration.queues.map(\.rawValue), concurrency: configuration.concurrency, busy: busy,
            processed: processed, startedMilliseconds: started,
            lastSeenMilliseconds: Int64(WallClock.nowMilliseconds()), supervisorPID: configuration.supervisorPID,
            catalogue: catalogue?.version, mode: mode)
    }

    /// The limits this worker declares: its tasks' own, then the configured ones (which win).
    var declaredLimits: [LimitDeclaration] {
        var byScope: [String: LimitDeclaration] = [:]
        for name in registry.names {
            guard let entry = registry[name], let limit = entry.options.limit else { continue }
            let declaration = LimitDeclaration(queue: entry.options.queue, scope: .of(task: name, limit), limit: limit)
            byScope[declaration.queue.rawValue + " " + declaration.scope.field] = declaration
        }
        for declaration in configuration.limits { byScope[declaration.queue.rawValue + " " + declaration.scope.field] = declaration }
        return byScope.keys.sorted().map { byScope[$0]! }
    }

    /// Stores the declared limits in their queues (an operator's `tern limits set` still wins).
    private func declareLimits() async {
        for declaration in declaredLimits {
            do {
                try await broker.setLimit(.some(declaration.limit), scope: declaration.scope, queue: declaration.queue, declared: true)
            } catch {
                logger.warning(
                    "limit not declared; jobs run under the limits Redis holds",
                    metadata: ["queue": "\(declaration.queue)", "scope": "\(declaration.scope)", "error": "\(error)"])
            }
        }
    }

    private func announce() async {
        await publishCatalogue()
        guard let registry = broker as? any WorkerRegistry else { return }
        await withdrawOldOrder()
        await storeAskedQuiet(registry)
        do {
            let order = try await registry.register(info, ttl: Self.registrationTTL(configuration))
            state.withLock {
                $0.lastRegistered = .now
                $0.lastDutyRound = .now
                $0.registrationError = nil
            }
            // The entry shows the order followed at once, not a heartbeat later.
            let mode = self.mode
            if state.withLock({ $0.ordersReady }) { follow(order) }
            if self.mode != mode { try await registry.register(info, ttl: Self.registrationTTL(configuration)) }
        } catch {
            state.withLock { $0.registrationError = "\(error)" }
            logger.debug("worker registration failed", metadata: ["error": "\(error)"])
        }
    }

    /// Stores the task catalogue when the worker starts and every minute after (retried with each
    /// announcement while it fails): that marks it seen, and restores it if Redis lost it.
    private func publishCatalogue() async {
        guard let catalogue, let store = broker as? any TaskCatalogueStore else { return }
        let now = ContinuousClock.now
        let (due, wasFailing) = state.withLock { state in
            (state.catalogueStored.map { now - $0 >= .seconds(60) } ?? true, state.catalogueFailing)
        }
        guard due else { return }
        do {
            try await store.publish(catalogue)
            state.withLock {
                $0.catalogueStored = now
                $0.catalogueFailing = false
            }
            logger.debug("task catalogue published", metadata: ["catalogue": "\(catalogue.version)", "tasks": "\(catalogue.tasks.count)"])
        } catch {
            state.withLock { $0.catalogueFailing = true }
            // Once per run of failures: a Redis outage is reported elsewhere, a refused command is not.
            if !wasFailing {
                logger.warning("task catalogue not published; APIs without these tasks' code refuse their jobs", metadata: ["error": "\(error)"])
            }
        }
    }

    private func heartbeatLoop(_ duties: DutyThread) async {
        // The previous heartbeat, if it succeeded: a Redis outage is reported as such, not as a delay.
        var last: ContinuousClock.Instant? = .now
        while !Task.isCancelled {
            dutyProgress()
            await duties.sleep(for: configuration.heartbeatInterval)
            if Task.isCancelled { break }
            let extended = await extendLeases()
            dutyProgress()
            switch extended {
            case true?:
                let now = ContinuousClock.now
                if let last { noteHeartbeat(delay: now - last - configuration.heartbeatInterval) }
                last = now
            case false?:
                last = nil
            case nil:
                // No lease to extend: nothing reached Redis, so there is no delay to measure.
                last = nil
            }
            await announce()
        }
    }

    /// Marks the duty thread as making progress, for the liveness probe (``health``): at each round
    /// and after each of its calls to Redis, so that a slow Redis does not look like a stuck thread.
    private func dutyProgress() { state.withLock { $0.lastDutyRound = .now } }

    /// Records how late a heartbeat was, and warns when leases were at risk (over half a lease).
    private func noteHeartbeat(delay: Duration) {
        state.withLock { $0.worstHeartbeatDelay = max($0.worstHeartbeatDelay, delay) }
        if delay > configuration.lease / 2 {
            logger.warning(
                "heartbeat late; leases were at risk",
                metadata: ["late_ms": "\(delay.nanoseconds / 1_000_000)", "lease": "\(configuration.lease)"])
        }
    }

    /// Extends the leases of the running jobs and passes on lost leases and cancel requests.
    /// Returns false when Redis could not be reached, `nil` when no job was running.
    private func extendLeases() async -> Bool? {
        let running = state.withLock { Array($0.running.values) }
        guard !running.isEmpty else { return nil }
        do {
            let outcome = try await broker.heartbeat(running.map(\.job.lease), lease: configuration.lease)
            // A job that finished since the snapshot shows up as lost; only jobs still running matter.
            let current = state.withLock { $0.running }
            for id in outcome.lost {
                guard let entry = current[id], !entry.control.isSettling else { continue }
                logger.warning("lease lost; the job is no longer this worker's", metadata: ["job": "\(id)"])
                entry.control.signal(.leaseLost)
            }
            for id in outcome.cancelRequested { current[id]?.control.signal(.cancelRequested) }
            return true
        } catch {
            logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Lease entries, due jobs and finished jobs per terminal state a reaper pass handles per call.
    static let reapLimit = 1000

    private func reaperLoop(_ duties: DutyThread) async {
        while !Task.isCancelled {
            await duties.sleep(for: configuration.reaperInterval)
            for queue in configuration.queues {
                do {
                    let report = try await broker.reap(queue, limit: Self.reapLimit)
                    // A full sweep means more finished jobs are due: go on (bounded) so that the
                    // sweep keeps up with any completion rate.
                    var dropped = report.dropped
                    var rounds = 1
                    while dropped >= Self.reapLimit, rounds < 100, !Task.isCancelled {
                        dropped = try await broker.reap(queue, limit: Self.reapLimit).dropped
                        rounds += 1
                    }
                    if report.requeued + report.failed + report.repaired > 0 {
                        logger.notice(
                            "reaper returned jobs whose lease expired",
                            metadata: [
                                "queue": "\(queue)", "requeued": "\(report.requeued)", "failed": "\(report.failed)",
                                "repaired": "\(report.repaired)",
                            ])
                    }
                } catch {
                    logger.warning("reaper pass failed", metadata: ["queue": "\(queue)", "error": "\(error)"])
                }
            }
        }
    }
}

/// What a worker tells its supervisor.
public enum WorkerEvent: Sendable {
    /// The worker claimed the job and is about to run it.
    case claimed(ClaimedJob)
    /// The job's task has ended (it no longer takes a slot); its outcome is being reported.
    case taskEnded(JobID)
    /// The job's attempt ended with this outcome (sent just before ``settled(_:)``).
    case finished(JobOutcome)
    /// The job's outcome is reported (or it was released): the worker no longer holds it.
    case settled(JobID)
}

/// How one attempt of a job ended in this worker, for metrics.
public struct JobOutcome: Sendable, Hashable {
    /// The outcome's label.
    public enum Kind: String, Sendable, CaseIterable {
        case succeeded, failed, retrying, cancelled, crashed
        /// Past a time limit (soft, or hard for an isolated job); retried or failed by its policy.
        case timedOut = "timed_out"
        /// Released at shutdown, back to its queue.
        case released
        /// The lease was lost: another worker owns the job now.
        case leaseLost = "lease_lost"
    }

    public var task: String
    public var outcome: Kind
    /// From the start of the attempt to its end (before the report).
    public var duration: Duration

    public init(task: String, outcome: Kind, duration: Duration) {
        self.task = task
        self.outcome = outcome
        self.duration = duration
    }
}

/// The queues whose last claim failed, each skipped until its own backoff ends.
struct FailingQueues {
    private var entries: [QueueName: (failures: Int, retryAt: ContinuousClock.Instant)] = [:]

    /// The queues of `queues` not waiting out a backoff, in order.
    func open(_ queues: [QueueName]) -> [QueueName] {
        let now = ContinuousClock.now
        return queues.filter { (entries[$0]?.retryAt ?? now) <= now }
    }

    /// When the first backed-off queue may be tried again.
    var nextRetry: ContinuousClock.Instant { entries.values.map(\.retryAt).min() ?? .now }

    mutating func succeeded(_ queue: QueueName) { entries[queue] = nil }

    /// Records a failed claim; returns the backoff (50 ms doubling to 2 s).
    mutating func failed(_ queue: QueueName) -> Duration {
        let failures = (entries[queue]?.failures ?? 0) + 1
        let delay = Backoff(base: .milliseconds(50), cap: .seconds(2)).delay(attempt: failures)
        entries[queue] = (failures, .now + delay)
        return delay
    }
}
