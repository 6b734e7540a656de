import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The connections to one Redis server: the whole of a ``RedisClient`` on a single Redis, one per
/// node in a cluster.
///
/// Ordinary commands share ``RedisConfiguration/poolSize`` multiplexed connections (on the
/// event-loop transport at least one per event loop), each command going to the one with the fewest
/// commands waiting, or to its own loop's for a caller on an event loop;
/// concurrent callers' commands are pipelined automatically. Blocking commands (`BLMOVE`,
/// `BZPOPMIN`, ...) block the connection they run on, so they go through ``sendBlocking(_:blockFor:)``,
/// which lends a dedicated connection from a bounded second pool.
final class RedisNodePool: Sendable {
    /// The configuration every connection uses.
    let configuration: RedisConfiguration
    private let logger: Logger
    private let connections: [RedisConnection]
    private let onEventLoops: Bool
    private let blocking: Mutex<BlockingPool>

    private struct BlockingPool {
        var idle: [RedisConnection] = []
        /// Connections lent out right now, so that ``close()`` can close them too.
        var lent: [ObjectIdentifier: RedisConnection] = [:]
        var open = 0
        var waiters: [(id: Int, continuation: CheckedContinuation<RedisConnection, any Error>)] = []
        var nextWaiter = 0
        var closed = false
    }

    /// Creates a client; its connections connect in the background.
    init(configuration: RedisConfiguration, logger: Logger = RedisConnection.silentLogger) {
        self.configuration = configuration
        self.logger = logger
        onEventLoops = configuration.effectiveTransport == .eventLoop
        if onEventLoops {
            // At least one connection per event loop, so a caller on a loop always finds its own.
            let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
            self.connections = (0..<max(configuration.poolSize, loops.count)).map { index in
                RedisConnection(configuration: configuration, logger: logger, eventLoop: loops[index % loops.count])
            }
        } else {
            self.connections = (0..<max(1, configuration.poolSize)).map { _ in
                RedisConnection(configuration: configuration, logger: logger)
            }
        }
        self.blocking = Mutex(BlockingPool())
    }

    deinit { close() }

    /// Sends one command on a shared connection.
    /// - Throws: ``RedisError/misuse(_:)`` for a blocking command; otherwise as
    ///   ``RedisConnection/send(_:timeout:)``.
    @discardableResult
    func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        if command.isBlocking {
            throw RedisError.misuse(
                "\(command.name) blocks its connection: use sendBlocking(_:blockFor:), which lends a dedicated one")
        }
        return try await connection().send(command, timeout: timeout)
    }

    /// Sends many commands in one write on one shared connection; one reply per command, in order,
    /// error replies as ``RedisValue/error(_:)``.
    func pipeline(_ commands: [RedisCommand], timeout: Duration? = nil) async throws -> [RedisValue] {
        if let blockingCommand = commands.first(where: \.isBlocking) {
            throw RedisError.misuse("\(blockingCommand.name) blocks its connection and cannot be pipelined")
        }
        return try await connection().pipeline(commands, timeout: timeout)
    }

    /// Runs a blocking command on a dedicated connection.
    ///
    /// The reply may take `blockFor` (the block time written in the command) plus the command
    /// timeout. A connection whose command was cancelled or failed is closed rather than reused,
    /// so a later caller never queues behind a stale block.
    /// - Parameters:
    ///   - command: a blocking command with a finite block time.
    ///   - blockFor: the block time the command carries.
    /// A blocking command is never shielded from cancellation (see ``RedisCancellationShield``).
    func sendBlocking(_ command: RedisCommand, blockFor: Duration) async throws -> RedisValue {
        try await RedisCancellationShield.unshielded {
            try await onBlockingConnection { try await $0.send(command, timeout: blockFor + self.configuration.commandTimeout) }
        }
    }

    /// Sends `commands` in one write on a dedicated connection, as ``sendBlocking(_:blockFor:)``
    /// does for one: the commands after a blocking one run when it returns, in the same round trip.
    func pipelineBlocking(_ commands: [RedisCommand], blockFor: Duration) async throws -> [RedisValue] {
        try await RedisCancellationShield.unshielded {
            try await onBlockingConnection { try await $0.pipeline(commands, timeout: blockFor + self.configuration.commandTimeout) }
        }
    }

    private func onBlockingConnection<T: Sendable>(_ body: (RedisConnection) async throws -> T) async throws -> T {
        let connection = try await leaseBlocking()
        do {
            let value = try await body(connection)
            returnBlocking(connection, healthy: true)
            return value
        } catch let error as RedisError {
            if case .server = error {
                returnBlocking(connection, healthy: true)
            } else {
                returnBlocking(connection, healthy: false)
            }
            throw error
        } catch {
            returnBlocking(connection, healthy: false)
            throw error
        }
    }

    /// Whether at least one shared connection is up.
    var isConnected: Bool { connections.contains { $0.isConnected } }

    /// Closes every connection, blocking ones included. Commands not yet sent fail with
    /// ``RedisError/closed``; commands waiting for their reply fail with
    /// ``RedisError/connectionLost(_:)`` (they may have run). Idempotent.
    func close() {
        for connection in connections { connection.close() }
        let (idle, waiters) = blocking.withLock { pool in
            pool.closed = true
            defer {
                pool.idle.removeAll()
                pool.lent.removeAll()
                pool.waiters.removeAll()
            }
            return (pool.idle + pool.lent.values, pool.waiters)
        }
        for connection in idle { connection.close() }
        for waiter in waiters { waiter.continuation.resume(throwing: RedisError.closed) }
    }

    /// The connection with the fewest commands waiting, the first on a tie. Sticking to one
    /// connection while it keeps up lets its thread stay awake between commands (see
    /// ``RedisConfiguration/busyPoll``); the others take over as soon as it has more waiting.
    private func connection() -> RedisConnection {
        // On the event-loop transport a caller on a loop takes that loop's connection: no hop.
        if onEventLoops, let local = connections.first(where: { $0.eventLoop?.inEventLoop == true }) { return local }
        var best = connections[0]
        var least = best.waiting
        for connection in connections.dropFirst() where least > 0 {
            let waiting = connection.waiting
            if waiting < least {
                best = connection
                least = waiting
            }
        }
        return best
    }

    // MARK: Blocking pool

    private func leaseBlocking() async throws -> RedisConnection {
        enum Lease { case ready(RedisConnection), created(RedisConnection), wait(Int), closed }
        let id = blocking.withLock { pool -> Int in
            pool.nextWaiter += 1
            return pool.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let lease: Lease = blocking.withLock { pool in
                    if pool.closed || Task.isCancelled { return .closed }
                    if let connection = pool.idle.popLast() {
                        pool.lent[ObjectIdentifier(connection)] = connection
                        return .ready(connection)
                    }
                    if pool.open < max(1, configuration.maxBlockingConnections) {
                        pool.open += 1
                        let connection = RedisConnection(configuration: configuration, logger: logger)
                        pool.lent[ObjectIdentifier(connection)] = connection
                        return .created(connection)
                    }
                    pool.waiters.append((id, continuation))
                    return .wait(id)
                }
                switch lease {
                case .ready(let connection), .created(let connection): continuation.resume(returning: connection)
                case .closed:
                    continuation.resume(throwing: Task.isCancelled ? CancellationError() : RedisError.closed)
                case .wait: break
                }
            }
        } onCancel: {
            let waiter = blocking.withLock { pool in
                pool.waiters.firstIndex { $0.id == id }.map { pool.waiters.remove(at: $0) }
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func returnBlocking(_ connection: RedisConnection, healthy: Bool) {
        enum Next { case handOver(CheckedContinuation<RedisConnection, any Error>, RedisConnection), keep, drop }
        if !healthy { connection.close() }
        let next: Next = blocking.withLock { pool in
            pool.lent[ObjectIdentifier(connection)] = nil
            if pool.closed {
                pool.open -= 1
                return .drop
            }
            if !pool.waiters.isEmpty {
                let handed = healthy ? connection : RedisConnection(configuration: configuration, logger: logger)
                pool.lent[ObjectIdentifier(handed)] = handed
                return .handOver(pool.waiters.removeFirst().continuation, handed)
            }
            if healthy {
                pool.idle.append(connection)
                return .keep
            }
            pool.open -= 1
            return .drop
        }
        switch next {
        case .handOver(let continuation, let connection): continuation.resume(returning: connection)
        case .drop: if healthy { connection.close() }
        case .keep: break
        }
    }
}
