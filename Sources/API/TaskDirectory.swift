import Broker
import Foundation
import Synchronization
import TernCore

/// The tasks the API accepts: those compiled into this process and those that workers published
/// (``TaskCatalogueStore``) and announced within the last ``window``. The compiled Swift type wins
/// over a published task of the same name; between two published catalogues, the one a worker
/// announced last wins.
///
/// Published catalogues are read at most every 2 s, and only for a request that names a task this
/// process has no code for, lists the tasks, or reads `/openapi.json`: jobs of compiled tasks never
/// wait for them. While Redis cannot be read, the last catalogues read stay in use.
public final class TaskDirectory: Sendable {
    /// A catalogue that no worker announced for this long no longer counts: 15 minutes.
    public static let window: Duration = .seconds(900)
    /// How long catalogues read from Redis are reused.
    static let refreshEvery: Duration = .seconds(2)

    /// The tasks at one moment.
    struct Snapshot: Sendable {
        var registry: TaskRegistry
        var catalogues: [SeenCatalogue]
        var taken: ContinuousClock.Instant
        /// Whether catalogues were ever read: until then a job of a task without compiled code gets
        /// a 503, not a wrong "unknown task".
        var loaded = false
        /// Counts the catalogue reads that succeeded: which registry a document was made from.
        var generation = 0
        /// The OpenAPI document of ``registry``, once made.
        var document: [UInt8]?
    }

    /// The tasks compiled into this process.
    public let compiled: TaskRegistry
    private let store: (any TaskCatalogueStore)?
    private let snapshot: Mutex<Snapshot>

    /// A directory of `compiled` and, if `broker` stores catalogues, the published tasks.
    public init(compiled: TaskRegistry, broker: any JobBroker) {
        self.compiled = compiled
        store = broker as? any TaskCatalogueStore
        // Taken long ago, so the first request reads the catalogues.
        snapshot = Mutex(Snapshot(registry: compiled, catalogues: [], taken: .now - .seconds(3_600)))
    }

    /// The registry to validate a job of `task` with: the compiled one when it has the task, else
    /// the compiled and published tasks together.
    /// - Throws: 503 `store_unavailable` while the published catalogues were never read.
    func registry(for task: String?) async throws(Problem) -> TaskRegistry {
        // No name, or one no task can have: the enqueue's own checks answer with a 422.
        guard let task, TaskRegistry.isValidName(task), compiled[task] == nil else { return compiled }
        return try await withPublished()
    }

    /// The registry for jobs naming `tasks`: the compiled one when it has all of them.
    func registry(for tasks: [String]) async throws(Problem) -> TaskRegistry {
        if tasks.allSatisfy({ compiled[$0] != nil || !TaskRegistry.isValidName($0) }) { return compiled }
        return try await withPublished()
    }

    /// The compiled and published tasks; a 503 rather than a wrong "unknown task" while Redis has
    /// not yet been read.
    private func withPublished() async throws(Problem) -> TaskRegistry {
        let current = await current()
        if store != nil && !current.loaded { throw Problem.unavailable(CataloguesUnread()) }
        return current.registry
    }

    /// The published catalogues could not be read yet.
    struct CataloguesUnread: Error, CustomStringConvertible {
        var description: String { "the published task catalogues could not be read from Redis" }
    }

    /// The compiled and published tasks now, and the catalogues they came from. At most one read
    /// every ``refreshEvery``, by one caller; the others meanwhile get the last snapshot.
    func current() async -> Snapshot {
        guard let store else { return snapshot.withLock { $0 } }
        let now = ContinuousClock.now
        let (cached, refresh) = snapshot.withLock { snapshot -> (Snapshot, Bool) in
            guard now - snapshot.taken >= Self.refreshEvery else { return (snapshot, false) }
            let cached = snapshot
            snapshot.taken = now  // claimed: concurrent callers use `cached` until this read ends
            return (cached, true)
        }
        guard refresh else { return cached }
        do {
            let since = Int64(WallClock.nowMilliseconds()) - Self.window.nanoseconds / 1_000_000
            let catalogues = try await store.catalogues(seenSince: since)
            var registry = compiled
            for seen in catalogues {
                for task in seen.catalogue.tasks { registry.add(published: task) }
            }
            return snapshot.withLock { snapshot in
                snapshot = Snapshot(
                    registry: registry, catalogues: catalogues, taken: now, loaded: true, generation: snapshot.generation + 1)
                return snapshot
            }
        } catch {
            // Keep what was read last; the next read is due after the refresh interval.
            return snapshot.withLock { $0 }
        }
    }

    /// The OpenAPI document of the current tasks, made by `make` once per snapshot.
    func document(_ make: (TaskRegistry) -> [UInt8]) async -> [UInt8] {
        let current = await current()
        if let document = current.document { return document }
        let document = make(current.registry)
        snapshot.withLock { if $0.generation == current.generation { $0.document = document } }
        return document
    }
}
