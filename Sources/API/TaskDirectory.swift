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
    func registry(for task: String?) async -> TaskRegistry {
        if let task, compiled[task] != nil { return compiled }
        return await current().registry
    }

    /// The registry for jobs naming `tasks`: the compiled one when it has all of them.
    func registry(for tasks: [String]) async -> TaskRegistry {
        if tasks.allSatisfy({ compiled[$0] != nil }) { return compiled }
        return await current().registry
    }

    /// The compiled and published tasks now, and the catalogues they came from.
    func current() async -> Snapshot {
        let cached = snapshot.withLock { $0 }
        guard let store, ContinuousClock.now - cached.taken >= Self.refreshEvery else { return cached }
        let now = ContinuousClock.now
        do {
            let since = Int64(WallClock.nowMilliseconds()) - Self.window.nanoseconds / 1_000_000
            let catalogues = try await store.catalogues(seenSince: since)
            var registry = compiled
            for seen in catalogues {
                for task in seen.catalogue.tasks { registry.add(published: task) }
            }
            let fresh = Snapshot(registry: registry, catalogues: catalogues, taken: now)
            snapshot.withLock { $0 = fresh }
            return fresh
        } catch {
            // Keep what was read last; try again after the refresh interval, not on every request.
            return snapshot.withLock { snapshot in
                snapshot.taken = now
                return snapshot
            }
        }
    }

    /// The OpenAPI document of the current tasks, made by `make` once per snapshot.
    func document(_ make: (TaskRegistry) -> [UInt8]) async -> [UInt8] {
        let current = await current()
        if let document = current.document { return document }
        let document = make(current.registry)
        snapshot.withLock { if $0.taken == current.taken { $0.document = document } }
        return document
    }
}
