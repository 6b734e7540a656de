import Broker
import Foundation
import Synchronization
import TernCore

/// Where schedules created over the HTTP API are kept.
public protocol ScheduleStoring: Sendable {
    /// Every stored definition, sorted by name.
    func all() async throws -> [ScheduleDefinition]
    /// The stored definition named `name`.
    func get(_ name: String) async throws -> ScheduleDefinition?
    /// Stores `definition`; `true` if it is new.
    @discardableResult func put(_ definition: ScheduleDefinition) async throws -> Bool
    /// Deletes the definition named `name`; `false` if there was none.
    @discardableResult func delete(_ name: String) async throws -> Bool
    /// Changes the stored definition named `name` atomically: a change made meanwhile is not
    /// undone, and a deleted definition is not brought back. Returns the new definition, or `nil`
    /// if there is none.
    func update(_ name: String, _ change: (inout ScheduleDefinition) -> Void) async throws -> ScheduleDefinition?
    /// The last tick schedule `name` emitted on `queue`, and its job's id.
    func lastRun(_ name: String, queue: QueueName) async throws -> (tick: Int64, job: String)?
    /// Schedule `name`'s mark on `queue` and its last run, read together.
    func progress(_ name: String, queue: QueueName) async throws -> ScheduleProgress
}

/// What a schedule has done, as Redis holds it.
public struct ScheduleProgress: Sendable, Hashable {
    /// The mark: the ticks up to this time (milliseconds since 1970) are done, whether emitted,
    /// skipped for overlap, or missed and skipped by the catch-up policy. `nil` before the first.
    public var markMilliseconds: Int64?
    /// The last tick emitted (or run now) and its job's id.
    public var lastTick: Int64?
    public var lastJob: String?

    public init(markMilliseconds: Int64? = nil, lastTick: Int64? = nil, lastJob: String? = nil) {
        self.markMilliseconds = markMilliseconds
        self.lastTick = lastTick
        self.lastJob = lastJob
    }
}

extension ScheduleStoring {
    /// The last run only: a store that keeps no mark.
    public func progress(_ name: String, queue: QueueName) async throws -> ScheduleProgress {
        let last = try await lastRun(name, queue: queue)
        return ScheduleProgress(lastTick: last?.tick, lastJob: last?.job)
    }
}

/// Schedules kept in memory, for tests and the embedded mode.
public final class MemoryScheduleStore: ScheduleStoring {
    private let definitions = Mutex<[String: ScheduleDefinition]>([:])

    public init() {}

    public func all() async throws -> [ScheduleDefinition] { definitions.withLock { $0.values.sorted { $0.name < $1.name } } }
    public func get(_ name: String) async throws -> ScheduleDefinition? { definitions.withLock { $0[name] } }
    public func put(_ definition: ScheduleDefinition) async throws -> Bool {
        definitions.withLock { $0.updateValue(definition, forKey: definition.name) == nil }
    }
    public func delete(_ name: String) async throws -> Bool { definitions.withLock { $0.removeValue(forKey: name) != nil } }
    public func update(_ name: String, _ change: (inout ScheduleDefinition) -> Void) async throws -> ScheduleDefinition? {
        definitions.withLock { definitions in
            guard var definition = definitions[name] else { return nil }
            change(&definition)
            definitions[name] = definition
            return definition
        }
    }
    /// Nothing runs schedules in memory.
    public func lastRun(_ name: String, queue: QueueName) async throws -> (tick: Int64, job: String)? { nil }
}

/// The schedules created over the HTTP API, kept in Redis: a hash of definitions (JSON) by name,
/// and a version number that every change increments, so schedulers reload only after a change.
public struct ScheduleStore: ScheduleStoring {
    let client: RedisClient
    let keys: RedisJobKeys
    /// `<prefix>:schedules`.
    let hashKey: String
    /// `<prefix>:schedules:version`.
    let versionKey: String

    public init(client: RedisClient, keys: RedisJobKeys) {
        self.client = client
        self.keys = keys
        hashKey = keys.schedules
        versionKey = keys.schedulesVersion
    }

    /// Every stored definition, by name. Entries that no longer decode are left out.
    public func all() async throws -> [ScheduleDefinition] {
        let reply = try await client.send(RedisCommand("HGETALL", hashKey))
        let items = reply.array ?? []
        return stride(from: 1, to: items.count, by: 2).compactMap { index in
            items[index].bytes.flatMap { try? JSONDecoder().decode(ScheduleDefinition.self, from: Data($0)) }
        }.sorted { $0.name < $1.name }
    }

    /// The stored definition named `name`.
    public func get(_ name: String) async throws -> ScheduleDefinition? {
        let reply = try await client.send(RedisCommand("HGET", hashKey, name))
        return reply.bytes.flatMap { try? JSONDecoder().decode(ScheduleDefinition.self, from: Data($0)) }
    }

    /// Stores `definition`; `true` if it is new.
    @discardableResult
    public func put(_ definition: ScheduleDefinition) async throws -> Bool {
        let data = try JSONEncoder().encode(definition)
        let replies = try await client.pipeline([RedisCommand("HSET", hashKey, definition.name, data), RedisCommand("INCR", versionKey)])
        try replies.forEach { try $0.throwingServerError() }
        return replies[0].int == 1
    }

    /// Deletes the definition named `name`; `false` if there was none.
    @discardableResult
    public func delete(_ name: String) async throws -> Bool {
        let replies = try await client.pipeline([RedisCommand("HDEL", hashKey, name), RedisCommand("INCR", versionKey)])
        try replies.forEach { try $0.throwingServerError() }
        return replies[0].int == 1
    }

    /// Reads, changes and writes back only if the stored definition did not change meanwhile (a
    /// Function compares them); else reads again, up to 100 times. A definition that no longer
    /// decodes counts as none.
    public func update(_ name: String, _ change: (inout ScheduleDefinition) -> Void) async throws -> ScheduleDefinition? {
        for _ in 0..<100 {
            guard let stored = try await client.send(RedisCommand("HGET", hashKey, name)).throwingServerError().bytes,
                var definition = try? JSONDecoder().decode(ScheduleDefinition.self, from: Data(stored))
            else { return nil }
            change(&definition)
            if try await client.swapSchedule(name, in: keys, expected: stored, replacement: try JSONEncoder().encode(definition)) {
                return definition
            }
        }
        throw RedisError.protocolError("schedule '\(name)' kept changing while it was updated; try again")
    }

    public func lastRun(_ name: String, queue: QueueName) async throws -> (tick: Int64, job: String)? {
        let progress = try await progress(name, queue: queue)
        guard let tick = progress.lastTick, let job = progress.lastJob else { return nil }
        return (tick, job)
    }

    public func progress(_ name: String, queue: QueueName) async throws -> ScheduleProgress {
        let reply = try await client.send(RedisCommand("HMGET", keys.scheduleMark(queue, name), "tick", "job", "mark"))
        let fields = (reply.array ?? []).map(\.string)
        guard fields.count == 3 else { return ScheduleProgress() }
        let tick = fields[0].flatMap(Int64.init)
        return ScheduleProgress(
            markMilliseconds: fields[2].flatMap(Int64.init), lastTick: tick, lastJob: tick == nil ? nil : fields[1])
    }

    /// The command that reads the version, for a scheduler's pipeline.
    var versionCommand: RedisCommand { RedisCommand("GET", versionKey) }
}
