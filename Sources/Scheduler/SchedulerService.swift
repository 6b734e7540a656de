import Broker
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TernCore
import Tracing

/// How a scheduler looks for due ticks.
public struct SchedulerConfiguration: Sendable {
    /// How often each replica looks for due ticks (default 250 ms): a tick is emitted at most this
    /// long after its time.
    public var pollInterval = Duration.milliseconds(250)
    /// A tick later than this (default 60 s) was missed: the schedule's catch-up policy decides.
    /// Ticks later than the poll interval but within this (a replica that paused) are still emitted.
    public var lateness = Duration.seconds(60)

    public init() {}
}

/// Hears what a scheduler does, for its metrics. Called on the scheduler's task: keep it short.
public protocol SchedulerObserver: Sendable {
    /// A due tick was handled: emitted, a duplicate (another replica emitted it) or skipped for
    /// overlap. `delay` is how long after its time, on Redis's clock, it was handled.
    func ticked(schedule: String, result: TickEmission, delay: Duration)
    /// A pass ended, or failed (Redis unreachable: it is retried on the next interval). `schedules`
    /// is the number of enabled schedules followed, `leftOut` the configured and stored ones that do
    /// not fit the tasks compiled in or published.
    func passEnded(failed: Bool, schedules: Int, leftOut: Int)
}

/// Emits the ticks of schedules as jobs. Run any number of replicas: every replica computes the
/// due ticks from Redis time and emits them through `tern_schedule`, which enqueues a tick's job at
/// most once (the schedule's mark in Redis only grows), so replicas add availability, never
/// duplicates, and while one replica runs no tick is skipped.
///
/// A schedule may name a task compiled into this process or one that a worker published in its
/// task catalogue (``TaskCatalogueStore``, any catalogue still stored): a scheduler without an
/// application's code runs its schedules. The compiled task wins over a published one of the same
/// name; between two catalogues, the one announced last when the catalogues were read wins. The
/// catalogues are read again when their versions change.
public final class SchedulerService: Sendable {
    public let broker: RedisJobBroker
    /// The schedules given at start-up (the config file's).
    public let configured: [Schedule]
    /// Where schedules created over the API are kept, if this scheduler follows them.
    let store: ScheduleStore?
    /// The tasks compiled into this process.
    let compiled: TaskRegistry
    /// What was loaded last: the tasks (compiled and published), the schedules that fit them.
    private struct Loaded {
        var loaded = false
        /// The stored schedules' version and the published catalogues' versions, when loaded.
        var version: String?
        var catalogues: String?
        var registry: TaskRegistry
        /// The configured schedules of published tasks, and the stored schedules, that fit the tasks.
        var schedules: [Schedule] = []
        var leftOut = 0
    }
    private let loaded: Mutex<Loaded>
    /// Configured schedules whose task is not compiled in: they wait for a catalogue that has it.
    private let awaitingCatalogue: [Schedule]
    let configuration: SchedulerConfiguration
    let logger: Logger
    /// When this replica first saw each schedule with no mark in Redis (a new schedule starts there).
    private let firstSeen = Mutex<[String: Int64]>([:])
    private let stopping = Atomic<Bool>(false)
    /// Called for each job this replica emitted: the schedule, the tick and the job.
    let onEmit: (@Sendable (Schedule, Int64, JobID) -> Void)?
    /// Hears each tick handled and each pass, for metrics.
    let observer: (any SchedulerObserver)?

    /// Validates `schedules`: fully those of a task in `registry` (the tasks compiled in); those of
    /// another task only in their own fields, and against the published catalogues when they are
    /// read (a schedule of a task that no catalogue has is left out and logged until one has it).
    /// - Throws: ``ScheduleError`` for the first invalid schedule, or two sharing a name.
    public init(
        broker: RedisJobBroker, schedules: [Schedule], registry: TaskRegistry,
        configuration: SchedulerConfiguration = SchedulerConfiguration(), logger: Logger,
        store: ScheduleStore? = nil, onEmit: (@Sendable (Schedule, Int64, JobID) -> Void)? = nil,
        observer: (any SchedulerObserver)? = nil
    ) throws(ScheduleError) {
        var names: Set<String> = []
        var awaiting: [Schedule] = []
        for schedule in schedules {
            if registry[schedule.task] != nil {
                try schedule.validate(against: registry)
            } else {
                try schedule.validateOwnFields()
                awaiting.append(schedule)
            }
            guard names.insert(schedule.name).inserted else { throw .duplicateName(schedule.name) }
        }
        self.broker = broker
        self.configured = schedules
        self.awaitingCatalogue = awaiting
        self.store = store
        self.compiled = registry
        self.loaded = Mutex(Loaded(registry: registry))
        self.configuration = configuration
        self.logger = logger
        self.onEmit = onEmit
        self.observer = observer
    }

    /// Runs passes every poll interval until ``shutdown()``, cancellation or, in a `ServiceGroup`,
    /// its graceful shutdown (the wait between passes ends at once). A failed pass (Redis down) is
    /// logged and retried on the next interval.
    public func run() async throws {
        logger.info("scheduler running", metadata: ["schedules": "\(configured.filter(\.enabled).map(\.name))"])
        await withGracefulShutdownHandler {
            while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                do {
                    _ = try await pass()
                    observed(failed: false)
                } catch is CancellationError {
                    break
                } catch {
                    observed(failed: true)
                    logger.warning("scheduler pass failed; retrying", metadata: ["error": "\(error)"])
                }
                let interval = configuration.pollInterval
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        logger.info("scheduler stopped")
    }

    private func observed(failed: Bool) {
        guard let observer else { return }
        let leftOut = loaded.withLock { $0.leftOut }
        observer.passEnded(failed: failed, schedules: schedules.filter(\.enabled).count, leftOut: leftOut)
    }

    /// Ends ``run()`` after the pass in progress.
    public func shutdown() { stopping.store(true, ordering: .relaxed) }

    /// One pass: reads Redis time, the stored schedules' version, the published catalogues'
    /// versions and each schedule's mark in one round trip, and emits every due tick. When the
    /// stored schedules or the catalogues changed, they are loaded again first. Returns what was
    /// emitted, by schedule name.
    ///
    /// A schedule whose mark cannot be read, or whose tick cannot be emitted, for a reason of its
    /// own (an error reply, or its node of a cluster down) does not hold the others back: they are
    /// emitted, and the pass then throws that schedule's error (the first, if several failed).
    @discardableResult
    public func pass() async throws -> [String: [TickEmission]] {
        let (registry, enabled) = loaded.withLock { ($0.registry, schedules(with: $0).filter(\.enabled)) }
        let followsCatalogues = store != nil || !awaitingCatalogue.isEmpty
        guard followsCatalogues || !enabled.isEmpty else { return [:] }
        var commands = [RedisCommand("TIME")]
        if let store { commands.append(store.versionCommand) }
        if followsCatalogues { commands.append(RedisCommand("ZRANGE", broker.keys.catalogues, 0, -1)) }
        for schedule in enabled {
            commands.append(RedisCommand("HGET", broker.keys.scheduleMark(queue(of: schedule, registry), schedule.name), "mark"))
        }
        var replies = try await broker.client.pipelineEach(commands)
        let version = try store == nil ? nil : replies.remove(at: 1).get().throwingServerError().string
        if followsCatalogues {
            let catalogues = try (replies.remove(at: 1).get().throwingServerError().array ?? []).compactMap(\.string).sorted().joined(separator: " ")
            if loaded.withLock({ !$0.loaded || $0.version != version || $0.catalogues != catalogues }) {
                try await reload(version: version, catalogues: catalogues)
                return try await pass()
            }
        }
        let timeReply = try replies[0].get().throwingServerError()
        let time = timeReply.array ?? []
        guard time.count == 2, let seconds = time[0].string.flatMap(Int64.init), let micros = time[1].string.flatMap(Int64.init) else {
            throw RedisError.protocolError("TIME answered \(timeReply)")
        }
        let now = seconds * 1000 + micros / 1000
        var emitted: [String: [TickEmission]] = [:]
        var firstError: (any Error)?
        for (schedule, reply) in zip(enabled, replies.dropFirst()) {
            do {
                // An error reply (a refused command, a node loading) is not "no mark": that would
                // skip the catch-up, or emit again what another replica emitted.
                let mark = try reply.get().throwingServerError().string.flatMap(Int64.init)
                emitted[schedule.name] = try await emit(schedule, mark: mark, now: now, registry: registry)
            } catch let error where Self.concernsOneSchedule(error, cluster: broker.client.isCluster) {
                logger.warning("schedule skipped in this pass", metadata: ["schedule": "\(schedule.name)", "error": "\(error)"])
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
        return emitted
    }

    /// Whether `error`, met by one schedule, leaves the others worth trying in the same pass: an
    /// error reply (a refused command, a node loading), or any error on a cluster (where another
    /// schedule's queue may live on a healthy node). Another error on one server (a timeout, a
    /// lost connection) would meet every schedule: the pass stops there.
    static func concernsOneSchedule(_ error: any Error, cluster: Bool) -> Bool {
        if error is CancellationError { return false }
        if let redis = error as? RedisError, case .server = redis { return true }
        return cluster
    }

    /// Emits the due ticks of one schedule whose mark is `mark` (`nil`: none yet).
    private func emit(_ schedule: Schedule, mark: Int64?, now: Int64, registry: TaskRegistry) async throws -> [TickEmission]? {
        // The first pass that sees no mark starts a second ago, and so do the passes after it
        // until a mark is seen (an emission failed). Once one is, the start is forgotten: a
        // schedule whose mark moves (to another queue) later starts afresh, not from back then.
        let start: Int64
        if let mark {
            start = mark
            _ = firstSeen.withLock { $0.removeValue(forKey: schedule.name) }
        } else {
            start = firstSeen.withLock { seen in
                if let first = seen[schedule.name] { return first }
                seen[schedule.name] = now - 1000
                return now - 1000
            }
        }
        var results: [TickEmission] = []
        let due = Self.dueTicks(schedule, from: start, hasMark: mark != nil, now: now, lateness: configuration.lateness)
        for (tick, newMark) in due {
            guard var request = schedule.request(registry: registry) else { continue }
            // A span per tick (docs/operations.md#tracing): which schedule, which tick, what came
            // of it; the job's runs are its children.
            let result = try await withSpan("schedule \(schedule.name)", ofKind: .producer) { span in
                request.headers = JobTracing.headers(request.headers, tracing: span.context)
                span.attributes["tern.schedule"] = schedule.name
                span.attributes["tern.tick_ms"] = Int(tick)
                span.attributes["tern.task"] = request.task
                let result = try await broker.emitTick(
                    schedule: schedule.name, tick: tick, mark: newMark, skipIfRunning: schedule.skipIfRunning, request: request)
                switch result {
                case .emitted(let id): span.attributes["messaging.message.id"] = id.rawValue
                case .duplicate: span.attributes["tern.tick"] = "duplicate"
                case .overlapped: span.attributes["tern.tick"] = "overlapped"
                }
                return result
            }
            results.append(result)
            observer?.ticked(schedule: schedule.name, result: result, delay: .milliseconds(max(0, now - tick)))
            if case .emitted(let id) = result {
                onEmit?(schedule, tick, id)
                logger.debug("tick emitted", metadata: ["schedule": "\(schedule.name)", "tick": "\(tick)", "job": "\(id)"])
            }
        }
        return results.isEmpty ? nil : results
    }

    /// The ticks to emit after `start` at `now`, each with the mark it leaves: missed ticks (later
    /// than the lateness) by the catch-up policy, then every tick on time.
    public static func dueTicks(
        _ schedule: Schedule, from start: Int64, hasMark: Bool, now: Int64, lateness: Duration
    ) -> [(tick: Int64, mark: Int64)] {
        let onTimeFrom = now - lateness.nanoseconds / 1_000_000
        var result: [(Int64, Int64)] = []
        if hasMark && start < onTimeFrom {
            switch schedule.catchUp {
            case .skip:
                break
            case .once:
                if let first = schedule.next(after: start), first <= onTimeFrom { result.append((first, onTimeFrom)) }
            case .all(let limit):
                var from = start
                while result.count < limit, let tick = schedule.next(after: from), tick <= onTimeFrom {
                    result.append((tick, tick))
                    from = tick
                }
                if let last = result.last, let more = schedule.next(after: last.0), more <= onTimeFrom {
                    result[result.count - 1].1 = onTimeFrom  // the rest beyond the limit are skipped
                }
            }
        }
        var from = max(start, onTimeFrom)
        while result.count < 10_000, let tick = schedule.next(after: from), tick <= now {
            result.append((tick, tick))
            from = tick
        }
        return result
    }

    /// The schedules followed now: the configured ones that fit the tasks, then the stored ones;
    /// a configured schedule wins over a stored one of the same name.
    public var schedules: [Schedule] { loaded.withLock { schedules(with: $0) } }

    private func schedules(with loaded: Loaded) -> [Schedule] {
        let awaiting = Set(awaitingCatalogue.map(\.name))
        return configured.filter { !awaiting.contains($0.name) } + loaded.schedules
    }

    /// Reads the published catalogues and the stored schedules (at `version`; the catalogues at
    /// `catalogues`), and keeps the schedules that fit the tasks. A schedule that does not fit is
    /// logged and left out.
    private func reload(version: String?, catalogues: String) async throws {
        var registry = compiled
        for seen in try await broker.catalogues(seenSince: 0) {
            for task in seen.catalogue.tasks { _ = registry.add(published: task) }
        }
        var schedules: [Schedule] = []
        var leftOut = 0
        for schedule in awaitingCatalogue {
            do {
                try schedule.validate(against: registry)
                schedules.append(schedule)
            } catch {
                leftOut += 1
                logger.warning(
                    "configured schedule left out until a worker publishes its task",
                    metadata: ["schedule": "\(schedule.name)", "error": "\(error)"])
            }
        }
        // A configured schedule wins over a stored one of the same name, even while it is left out.
        let configuredNames = Set(configured.map(\.name))
        for definition in try await store?.all() ?? [] where !configuredNames.contains(definition.name) {
            do {
                let schedule = try definition.schedule()
                try schedule.validate(against: registry)
                schedules.append(schedule)
            } catch {
                leftOut += 1
                logger.warning("stored schedule left out", metadata: ["schedule": "\(definition.name)", "error": "\(error)"])
            }
        }
        loaded.withLock {
            $0 = Loaded(loaded: true, version: version, catalogues: catalogues, registry: registry, schedules: schedules, leftOut: leftOut)
        }
        logger.info(
            "schedules loaded",
            metadata: ["schedules": "\(schedules.map(\.name))", "version": "\(version ?? "0")", "catalogues": "\(catalogues)"])
    }

    private func queue(of schedule: Schedule, _ registry: TaskRegistry) -> QueueName {
        schedule.queue ?? registry[schedule.task]?.options.queue ?? .default
    }
}

/// A scheduler is a `Service`: in a `ServiceGroup`, graceful shutdown ends ``SchedulerService/run()``
/// after the pass in progress.
extension SchedulerService: Service {}
