import Logging
import Synchronization

/// The cluster side of a ``RedisClient``: the slot map, a ``RedisNodePool`` per node, and the
/// redirects.
///
/// - The slot map comes from `CLUSTER SLOTS`, asked of a connected node first, then of the other
///   known nodes, then of the seeds; it is loaded on first use and again after a `MOVED`, and when a
///   node cannot be reached.
/// - `MOVED` updates the slot at once and sends the command again to the named node. `ASK` sends it
///   once to the migration's target after `ASKING` — except for a script (a Function): Tern's
///   Functions name only their queue's base (which is never a key) and reach undeclared keys, so on
///   a migrating slot they could see half of the queue. A script is therefore never run during its
///   slot's migration: on `ASK` it waits, like on `TRYAGAIN` and `CLUSTERDOWN`, until the slot
///   has moved (the source then answers `MOVED`) or the command timeout passes.
/// - A command that could not be sent because its node is down (``RedisError/notConnected(_:)``,
///   ``RedisError/connectFailed(_:)``) is sent again at once if the reloaded map names another node
///   for its slot (a replica has taken over), and fails fast otherwise, as on a single server; one
///   whose outcome is unknown (``RedisError/connectionLost(_:)``, ``RedisError/timeout(_:)``) fails
///   as on a single server, and the map is reloaded behind it.
final class RedisCluster: Sendable {
    typealias Endpoint = RedisConfiguration.Endpoint

    let configuration: RedisConfiguration
    private let logger: Logger
    private let state: Mutex<State>

    private struct State {
        var slots = [Endpoint?](repeating: nil, count: RedisClusterSlot.count)
        var primaries: [Endpoint] = []
        var nodes: Set<Endpoint> = []
        var pools: [Endpoint: RedisNodePool] = [:]
        var refresh: Task<Void, any Error>?
        var closed = false
    }

    /// The most `MOVED` and `ASK` redirects one command follows.
    static let maxRedirects = 16

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.state = Mutex(State())
    }

    var isConnected: Bool { state.withLock { $0.pools.values.contains { $0.isConnected } } }

    func close() {
        let (pools, refresh) = state.withLock { state in
            state.closed = true
            defer { state.pools.removeAll() }
            return (Array(state.pools.values), state.refresh)
        }
        refresh?.cancel()
        for pool in pools { pool.close() }
    }

    // MARK: Commands

    func send(_ command: RedisCommand, timeout: Duration?) async throws -> RedisValue {
        if command.isBlocking {
            throw RedisError.misuse(
                "\(command.name) blocks its connection: use sendBlocking(_:blockFor:), which lends a dedicated one")
        }
        return try await unit([command], slot: command.slot, timeout: timeout)[0].throwingServerError()
    }

    func pipeline(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RedisValue] {
        try await pipelineEach(commands, timeout: timeout).map { try $0.get() }
    }

    /// A pipeline whose commands succeed or fail each on its own: the commands of a node that
    /// fails get that node's error, and the others their replies.
    func pipelineEach(_ commands: [RedisCommand], timeout: Duration?) async throws -> [Result<RedisValue, any Error>] {
        if let blockingCommand = commands.first(where: \.isBlocking) {
            throw RedisError.misuse("\(blockingCommand.name) blocks its connection and cannot be pipelined")
        }
        let units = Self.units(commands)
        if units.count <= 1 {
            guard let unit = units.first else { return [] }
            return await outcome(of: unit, in: commands, timeout: timeout)
        }
        if state.withLock({ $0.primaries.isEmpty }) { try? await refresh() }
        // One pipeline per node, all at once; a unit answered with a redirect, or whose node could
        // not be reached, goes again on its own.
        var groups: [Endpoint: [Int]] = [:]
        var redo: [Int] = []
        state.withLock { state in
            for (index, unit) in units.enumerated() {
                if let node = unit.slot.map({ state.slots[$0] }) ?? state.primaries.first {
                    groups[node, default: []].append(index)
                } else {
                    redo.append(index)
                }
            }
        }
        var results = [Result<RedisValue, any Error>](repeating: .success(.null), count: commands.count)
        await withTaskGroup(of: ([Int], Result<[RedisValue], any Error>).self) { group in
            for (node, members) in groups {
                let batch = members.flatMap { commands[units[$0].range] }
                group.addTask {
                    do {
                        return (members, .success(try await self.pool(node).pipeline(batch, timeout: timeout)))
                    } catch {
                        return (members, .failure(error))
                    }
                }
            }
            for await (members, result) in group {
                switch result {
                case .success(let replies):
                    var offset = 0
                    for member in members {
                        let range = units[member].range
                        let part = replies[offset..<(offset + range.count)]
                        offset += range.count
                        if RedisClusterRedirect.first(in: part) != nil {
                            redo.append(member)
                        } else {
                            for (index, reply) in zip(range, part) { results[index] = .success(reply) }
                        }
                    }
                case .failure(let error as RedisError) where wasNotSent(error):
                    redo.append(contentsOf: members)
                case .failure(let error):
                    if let error = error as? RedisError { noteLost(error) }
                    for member in members { for index in units[member].range { results[index] = .failure(error) } }
                }
            }
        }
        for member in redo.sorted() {
            let unit = units[member]
            for (index, result) in zip(unit.range, await outcome(of: unit, in: commands, timeout: timeout)) {
                results[index] = result
            }
        }
        return results
    }

    /// One unit sent with its redirects followed; a failure is the outcome of each of its commands.
    private func outcome(
        of unit: (range: Range<Int>, slot: Int?), in commands: [RedisCommand], timeout: Duration?
    ) async -> [Result<RedisValue, any Error>] {
        do {
            return try await self.unit(Array(commands[unit.range]), slot: unit.slot, timeout: timeout).map { .success($0) }
        } catch {
            return unit.range.map { _ in .failure(error) }
        }
    }

    /// Runs a blocking command on a dedicated connection of its slot's node. While the slot migrates
    /// (`ASK`, `TRYAGAIN`) it waits for the migration instead, and answers `nil` (a blocking pop's
    /// timeout) once `blockFor` has passed.
    func sendBlocking(_ command: RedisCommand, blockFor: Duration) async throws -> RedisValue {
        let deadline = ContinuousClock.now + blockFor
        return try await routed(slot: command.slot, deadline: deadline, waitsOutMigration: true) { node, _ in
            do {
                return (try await pool(node).sendBlocking(command, blockFor: blockFor), nil)
            } catch RedisError.server(let error) {
                guard let redirect = RedisClusterRedirect(error) else { throw RedisError.server(error) }
                return (.null, redirect)
            }
        }
    }

    /// Sends one command, or one `MULTI` … `EXEC` block, to the node of `slot`, following redirects.
    /// Returns the replies, the last redirect error among them once the redirects or the time run out.
    private func unit(_ commands: [RedisCommand], slot: Int?, timeout: Duration?) async throws -> [RedisValue] {
        let deadline = ContinuousClock.now + (timeout ?? configuration.commandTimeout)
        // Scripts and transactions are never run half on each side of a migration (see the type's doc).
        let waitsOutMigration = commands.contains { $0.isScript } || commands.first?.name == "MULTI"
        return try await routed(slot: slot, deadline: deadline, waitsOutMigration: waitsOutMigration) { node, asking in
            let replies =
                asking
                ? Array(try await pool(node).pipeline([RedisCommand("ASKING")] + commands, timeout: timeout).dropFirst())
                : try await pool(node).pipeline(commands, timeout: timeout)
            return (replies, RedisClusterRedirect.first(in: replies[...]))
        }
    }

    /// Runs `attempt` on the node of `slot` until it brings no redirect: after `MOVED` on the named
    /// node, after `ASK` once on the target with `ASKING` (unless `waitsOutMigration`), and after
    /// `TRYAGAIN`, `CLUSTERDOWN` or a waited-out `ASK` on the slot's node again, 5 to 100 ms later.
    /// Once 16 redirects have been followed, or the time has run out, returns the last attempt's value. A node that
    /// cannot be reached is left as ``retryElsewhere(after:node:slot:deadline:)`` says.
    private func routed<Value>(
        slot: Int?, deadline: ContinuousClock.Instant, waitsOutMigration: Bool,
        _ attempt: (_ node: Endpoint, _ asking: Bool) async throws -> (Value, RedisClusterRedirect?)
    ) async throws -> Value {
        var target: Endpoint?
        var asking = false
        var redirects = 0
        var pause = Duration.milliseconds(5)
        while true {
            let node: Endpoint?
            if let target { node = target } else { node = try await self.node(for: slot) }
            let asked = asking
            (target, asking) = (nil, false)
            do {
                guard let node else { throw RedisError.notConnected("no node of the cluster serves slot \(slot ?? -1)") }
                let (value, redirect) = try await attempt(node, asked)
                guard let redirect else { return value }
                if ContinuousClock.now >= deadline { return value }
                switch redirect {
                case .moved(let slot, let to):
                    redirects += 1
                    if redirects > Self.maxRedirects { return value }
                    target = learn(slot: slot, at: to)
                    continue
                case .ask(_, let to) where !waitsOutMigration:
                    redirects += 1
                    if redirects > Self.maxRedirects { return value }
                    (target, asking) = (to, true)
                    continue
                case .ask, .retry:
                    break
                }
            } catch let error as RedisError where wasNotSent(error) {
                // The node is down: try again at once if the reloaded map names another node for the
                // slot (a replica took over); else fail fast, as a single server's connection does.
                try await retryElsewhere(after: error, node: node, slot: slot, deadline: deadline)
                continue
            } catch let error as RedisError {
                noteLost(error)
                throw error
            }
            // Shielded calls (completions batched for other callers, releases at shutdown) wait out
            // a migration even when their task is cancelled: the deadline still ends the wait.
            if RedisCancellationShield.isActive {
                await RedisCancellationShield.sleep(for: pause)
            } else {
                try await Task.sleep(for: pause)
            }
            pause = min(pause * 2, .milliseconds(100))
        }
    }

    /// After `error` (not sent: `node` is down), reloads the map and returns if it now names
    /// another node for `slot`; throws `error` otherwise, or once `deadline` has passed.
    private func retryElsewhere(after error: RedisError, node: Endpoint?, slot: Int?, deadline: ContinuousClock.Instant) async throws {
        if ContinuousClock.now >= deadline { throw error }
        try? await refresh()
        guard let next = lookup(slot), next != node else { throw error }
    }

    /// A pipeline's units: each `MULTI` … `EXEC` (or `DISCARD`) block whole, every other command
    /// alone; each routed by the first key in it.
    static func units(_ commands: [RedisCommand]) -> [(range: Range<Int>, slot: Int?)] {
        var units: [(range: Range<Int>, slot: Int?)] = []
        var index = 0
        while index < commands.count {
            var end = index + 1
            if commands[index].name == "MULTI",
                let last = commands[index...].firstIndex(where: { $0.name == "EXEC" || $0.name == "DISCARD" })
            {
                end = last + 1
            }
            units.append((index..<end, commands[index..<end].lazy.compactMap(\.slot).first))
            index = end
        }
        return units
    }

    // MARK: Nodes and the slot map

    /// The node serving `slot` (any primary for a command without a key), loading the map when it
    /// has none.
    private func node(for slot: Int?) async throws -> Endpoint? {
        if let node = lookup(slot) { return node }
        try await refresh()
        return lookup(slot)
    }

    private func lookup(_ slot: Int?) -> Endpoint? {
        state.withLock { state in slot.map { state.slots[$0] } ?? state.primaries.first }
    }

    /// Records a `MOVED` at once and reloads the whole map behind it; returns the node.
    private func learn(slot: Int, at node: Endpoint) -> Endpoint {
        state.withLock { $0.slots[slot] = node }
        Task { try? await self.refresh() }
        return node
    }

    /// A command's outcome is unknown: the node may be gone, so reload the map behind the caller.
    private func noteLost(_ error: RedisError) {
        switch error {
        case .connectionLost, .timeout: Task { try? await self.refresh() }
        default: break
        }
    }

    private func wasNotSent(_ error: RedisError) -> Bool {
        switch error {
        case .notConnected, .connectFailed: true
        case .closed: !state.withLock { $0.closed }
        default: false
        }
    }

    /// The pool of `node`, opened on first use.
    func pool(_ node: Endpoint) throws(RedisError) -> RedisNodePool {
        try state.withLock { state throws(RedisError) in
            if state.closed { throw .closed }
            if let pool = state.pools[node] { return pool }
            var configuration = configuration
            configuration.cluster = nil
            configuration.endpoint = node
            let pool = RedisNodePool(configuration: configuration, logger: logger)
            state.pools[node] = pool
            return pool
        }
    }

    /// Every primary's pool, the map loaded afresh first.
    func primaryPools() async throws -> [RedisNodePool] {
        try await refresh()
        return try state.withLock { $0.primaries }.map { node throws(RedisError) in try pool(node) }
    }

    /// Reloads the slot map; concurrent callers share one reload.
    func refresh() async throws {
        let task = try state.withLock { state throws(RedisError) -> Task<Void, any Error> in
            if state.closed { throw .closed }
            if let running = state.refresh { return running }
            let task = Task { try await self.loadSlots() }
            state.refresh = task
            return task
        }
        try await task.value
    }

    private func loadSlots() async throws {
        defer { state.withLock { $0.refresh = nil } }
        let (connected, known) = state.withLock { state in
            (state.pools.filter { $0.value.isConnected }.map(\.key), state.primaries + state.nodes.sorted { "\($0)" < "\($1)" })
        }
        var candidates: [Endpoint] = []
        for node in connected + known + (configuration.cluster ?? []) where !candidates.contains(node) {
            candidates.append(node)
        }
        var failures: [String] = []
        for node in candidates {
            do {
                let reply = try await pool(node).send(RedisCommand("CLUSTER", "SLOTS"), timeout: configuration.commandTimeout)
                try apply(try RedisClusterSlotMap(reply, askedAt: node))
                return
            } catch let error as RedisError {
                failures.append("\(node): \(error)")
            }
        }
        logger.warning("Redis Cluster: no node gave its slot map", metadata: ["errors": "\(failures)"])
        throw RedisError.connectFailed("no node of the cluster gave its slot map: \(failures.joined(separator: "; "))")
    }

    private func apply(_ map: RedisClusterSlotMap) throws(RedisError) {
        let gone = try state.withLock { state throws(RedisError) -> [RedisNodePool] in
            if state.closed { throw .closed }
            state.slots = map.slots
            state.primaries = map.primaries
            state.nodes = map.nodes
            let stale = state.pools.keys.filter { !map.nodes.contains($0) }
            return stale.compactMap { state.pools.removeValue(forKey: $0) }
        }
        // A node no longer in the cluster (or dead: CLUSTER SLOTS leaves failed nodes out).
        for pool in gone { pool.close() }
        logger.debug("Redis Cluster slot map loaded", metadata: ["primaries": "\(map.primaries)"])
    }
}
