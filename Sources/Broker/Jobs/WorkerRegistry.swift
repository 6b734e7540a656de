import Foundation
import TernCore

/// A running worker process, as it describes itself with each heartbeat.
public struct WorkerInfo: Sendable, Hashable, Codable {
    /// The worker's unique id (`<host>:<pid>:<random>` by default).
    public var id: String
    public var host: String
    public var pid: Int32
    /// The queues it claims from, in order.
    public var queues: [String]
    public var concurrency: Int
    /// Jobs running now.
    public var busy: Int
    /// Jobs finished since it started.
    public var processed: Int
    /// When it started, in milliseconds since 1970.
    public var startedMilliseconds: Int64
    /// When it last reported, in milliseconds since 1970 (its own clock).
    public var lastSeenMilliseconds: Int64
    /// The pid of the supervisor that runs this process, if one does.
    public var supervisorPID: Int32?
    /// Set on a supervisor's own entry: how many worker processes it runs. Its ``concurrency`` and
    /// ``busy`` are then the totals of its processes.
    public var processes: Int?
    /// The version of the task catalogue it publishes (``TaskCatalogue/version``), if it has tasks.
    public var catalogue: String?
    /// Set on a supervisor's own entry: its worker processes that ended and were replaced since it
    /// started, by reason (`crashed`, `killed` at a hard time limit, `recycled`).
    public var processExits: [String: Int]?
    /// Whether it claims jobs: `nil` (running) unless it is quiet or stopping.
    public var mode: Mode?

    /// What a worker is doing besides running: quiet (claiming nothing, after an operator's
    /// ``WorkerOrder/quiet``) or stopping (finishing its jobs before it exits).
    public enum Mode: String, Sendable, Hashable, Codable {
        case quiet, stopping
    }

    public init(
        id: String, host: String, pid: Int32, queues: [String], concurrency: Int, busy: Int, processed: Int,
        startedMilliseconds: Int64, lastSeenMilliseconds: Int64, supervisorPID: Int32? = nil, processes: Int? = nil,
        catalogue: String? = nil, processExits: [String: Int]? = nil, mode: Mode? = nil
    ) {
        self.mode = mode
        self.processExits = processExits
        self.catalogue = catalogue
        self.processes = processes
        self.supervisorPID = supervisorPID
        self.id = id
        self.host = host
        self.pid = pid
        self.queues = queues
        self.concurrency = concurrency
        self.busy = busy
        self.processed = processed
        self.startedMilliseconds = startedMilliseconds
        self.lastSeenMilliseconds = lastSeenMilliseconds
    }
}

/// What an operator asks a live worker to do (`POST /v1/workers/{id}/quiet` or `/stop`). A worker
/// reads its order each time it registers (every heartbeat interval) and keeps to it.
public enum WorkerOrder: String, Sendable, Hashable, Codable {
    /// Claim no more jobs, finish those running, stay listed (undone by clearing the order).
    case quiet
    /// Stop as on SIGTERM: claim no more jobs, finish those running within the grace period, exit.
    case stop
}

/// Where workers announce themselves, so that they can be listed. An entry disappears when its
/// worker stops reporting for its time to live.
public protocol WorkerRegistry: Sendable {
    /// Records or refreshes `info` for `ttl`; returns the order an operator gave the worker, if any.
    @discardableResult
    func register(_ info: WorkerInfo, ttl: Duration) async throws -> WorkerOrder?
    /// Removes a worker that is stopping, and its order.
    func unregister(_ id: String) async throws
    /// The live workers, by id.
    func workers() async throws -> [WorkerInfo]
    /// Gives worker `id` an order, or with `nil` withdraws it. A worker forgets its order when it
    /// unregisters, and one given before it started does not apply to it (it withdraws it when it
    /// starts); an order nobody reads is kept an hour.
    func give(_ order: WorkerOrder?, to id: String) async throws
}

/// How long an order is kept while its worker does not register (it refreshes it when it does).
public enum WorkerOrderRetention {
    public static let milliseconds = 3_600_000
}

extension RedisJobBroker: WorkerRegistry {
    @discardableResult
    public func register(_ info: WorkerInfo, ttl: Duration) async throws -> WorkerOrder? {
        let data = try JSONEncoder().encode(info)
        let replies = try await client.pipeline([
            RedisCommand("SET", keys.worker(info.id), data, "PX", Int(ttl.nanoseconds / 1_000_000)),
            RedisCommand("ZADD", keys.workers, Int(info.lastSeenMilliseconds), info.id),
            // Ids of workers that stopped reporting an hour ago or more.
            RedisCommand("ZREMRANGEBYSCORE", keys.workers, "-inf", Int(info.lastSeenMilliseconds) - 3_600_000),
            RedisCommand("GET", keys.workerOrder(info.id)),
            // Kept while the worker registers (a no-op without an order).
            RedisCommand("PEXPIRE", keys.workerOrder(info.id), WorkerOrderRetention.milliseconds),
        ])
        for reply in replies { try reply.throwingServerError() }
        return replies[3].string.flatMap(WorkerOrder.init(rawValue:))
    }

    public func unregister(_ id: String) async throws {
        let replies = try await client.pipeline([
            RedisCommand("DEL", keys.worker(id), keys.workerOrder(id)), RedisCommand("ZREM", keys.workers, id),
        ])
        for reply in replies { try reply.throwingServerError() }
    }

    public func give(_ order: WorkerOrder?, to id: String) async throws {
        let command = order.map { RedisCommand("SET", keys.workerOrder(id), $0.rawValue, "PX", WorkerOrderRetention.milliseconds) }
            ?? RedisCommand("DEL", keys.workerOrder(id))
        try await client.send(command).throwingServerError()
    }

    public func workers() async throws -> [WorkerInfo] {
        let ids = try await client.send(RedisCommand("ZRANGE", keys.workers, 0, -1)).array?.compactMap(\.string) ?? []
        guard !ids.isEmpty else { return [] }
        let values = try await client.pipeline(ids.map { RedisCommand("GET", keys.worker($0)) })
        var live: [WorkerInfo] = []
        var gone: [String] = []
        for (id, value) in zip(ids, values) {
            if let bytes = value.bytes, let info = try? JSONDecoder().decode(WorkerInfo.self, from: Data(bytes)) {
                live.append(info)
            } else {
                gone.append(id)
            }
        }
        if !gone.isEmpty { try await client.send(RedisCommand("ZREM", arguments: [keys.workers] + gone)) }
        return live.sorted { $0.id < $1.id }
    }
}
