import Foundation
import Synchronization
import TernCore

/// The memory broker's worker registry: entries live for their time to live on the injected clock.
final class MemoryWorkerTable: Sendable {
    private let entries = Mutex<[String: (info: WorkerInfo, expires: Int64)]>([:])

    func register(_ info: WorkerInfo, expires: Int64) {
        entries.withLock { $0[info.id] = (info, expires) }
    }

    func unregister(_ id: String) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
        _ = orders.withLock { $0.removeValue(forKey: id) }
    }

    /// Orders given to workers, by worker id.
    private let orders = Mutex<[String: WorkerOrder]>([:])

    func order(of id: String) -> WorkerOrder? { orders.withLock { $0[id] } }

    func give(_ order: WorkerOrder?, to id: String) { orders.withLock { $0[id] = order } }

    /// Published catalogues by version, with when each was last seen.
    private let catalogues = Mutex<[String: SeenCatalogue]>([:])

    func publish(_ catalogue: TaskCatalogue, now: Int64) {
        catalogues.withLock { catalogues in
            let seen = max(now, catalogues[catalogue.version]?.seenMilliseconds ?? now)
            catalogues[catalogue.version] = SeenCatalogue(catalogue: catalogue, seenMilliseconds: seen)
            catalogues = catalogues.filter { $0.value.seenMilliseconds > now - Int64(TaskCatalogueRetention.milliseconds) }
        }
    }

    func catalogues(since: Int64) -> [SeenCatalogue] {
        catalogues.withLock { catalogues in
            catalogues.values.filter { $0.seenMilliseconds >= since }.sorted { $0.seenMilliseconds > $1.seenMilliseconds }
        }
    }

    func live(now: Int64) -> [WorkerInfo] {
        entries.withLock { entries in
            entries = entries.filter { $0.value.expires > now }
            return entries.values.map(\.info).sorted { $0.id < $1.id }
        }
    }
}

extension MemoryJobBroker: WorkerRegistry {
    @discardableResult
    public func register(_ info: WorkerInfo, ttl: Duration) async throws -> WorkerOrder? {
        workerTable.register(info, expires: clock() + ttl.nanoseconds / 1_000_000)
        return workerTable.order(of: info.id)
    }

    public func give(_ order: WorkerOrder?, to id: String) async throws {
        workerTable.give(order, to: id)
    }

    public func unregister(_ id: String) async throws {
        workerTable.unregister(id)
    }

    public func workers() async throws -> [WorkerInfo] {
        workerTable.live(now: clock())
    }
}

extension MemoryJobBroker: TaskCatalogueStore {
    public func publish(_ catalogue: TaskCatalogue) async throws {
        workerTable.publish(catalogue, now: clock())
    }

    public func catalogues(seenSince sinceMilliseconds: Int64) async throws -> [SeenCatalogue] {
        workerTable.catalogues(since: sinceMilliseconds)
    }
}
