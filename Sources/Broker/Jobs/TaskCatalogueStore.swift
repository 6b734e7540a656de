import Foundation
import TernCore

/// How long a published catalogue is kept after the last worker that announced it: a week.
public enum TaskCatalogueRetention {
    /// A week, in milliseconds.
    public static let milliseconds = 7 * 86_400_000
}

/// A published catalogue and when a worker last announced it.
public struct SeenCatalogue: Sendable, Hashable {
    public var catalogue: TaskCatalogue
    /// When a worker last announced it, in milliseconds since 1970 (the worker's clock).
    public var seenMilliseconds: Int64

    public init(catalogue: TaskCatalogue, seenMilliseconds: Int64) {
        self.catalogue = catalogue
        self.seenMilliseconds = seenMilliseconds
    }
}

/// Where workers publish their task catalogues for APIs that do not have the tasks' code. A worker
/// stores its catalogue when it starts and again every minute, which marks it seen; its entry in
/// the ``WorkerRegistry`` names the version (``WorkerInfo/catalogue``).
public protocol TaskCatalogueStore: Sendable {
    /// Stores `catalogue` (kept for ``TaskCatalogueRetention`` after it was last seen) and marks it
    /// seen now.
    func publish(_ catalogue: TaskCatalogue) async throws
    /// The catalogues seen since `sinceMilliseconds`, the most recently seen first.
    func catalogues(seenSince sinceMilliseconds: Int64) async throws -> [SeenCatalogue]
}

extension RedisJobBroker: TaskCatalogueStore {
    public func publish(_ catalogue: TaskCatalogue) async throws {
        let data = try JSONEncoder().encode(catalogue)
        let nowMilliseconds = Int64(WallClock.nowMilliseconds())
        let replies = try await client.pipeline([
            RedisCommand("SET", keys.catalogue(catalogue.version), data, "PX", TaskCatalogueRetention.milliseconds),
            // GT: a worker whose clock is behind cannot move a version back out of the window.
            RedisCommand("ZADD", keys.catalogues, "GT", Int(nowMilliseconds), catalogue.version),
            RedisCommand("ZREMRANGEBYSCORE", keys.catalogues, "-inf", Int(nowMilliseconds) - TaskCatalogueRetention.milliseconds),
        ])
        for reply in replies { try reply.throwingServerError() }
    }

    public func catalogues(seenSince sinceMilliseconds: Int64) async throws -> [SeenCatalogue] {
        let reply = try await client.send(
            RedisCommand("ZRANGEBYSCORE", keys.catalogues, Int(sinceMilliseconds), "+inf", "WITHSCORES"))
        let flat = reply.array ?? []
        var seen: [(version: String, milliseconds: Int64)] = []
        var index = 0
        while index + 1 < flat.count {
            if let version = flat[index].string, let score = flat[index + 1].string.flatMap(Double.init) {
                seen.append((version, Int64(score)))
            }
            index += 2
        }
        guard !seen.isEmpty else { return [] }
        let values = try await client.pipeline(seen.map { RedisCommand("GET", keys.catalogue($0.version)) })
        var found: [SeenCatalogue] = []
        for (entry, value) in zip(seen, values) {
            // A catalogue whose key expired (or was never stored) is skipped.
            guard let bytes = value.bytes, let catalogue = try? JSONDecoder().decode(TaskCatalogue.self, from: Data(bytes)) else { continue }
            found.append(SeenCatalogue(catalogue: catalogue, seenMilliseconds: entry.milliseconds))
        }
        return found.sorted { $0.seenMilliseconds > $1.seenMilliseconds }
    }
}
