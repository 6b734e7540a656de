import Logging
import Synchronization

/// A pool of Redis connections: the entry point for Redis in Tern.
///
/// Ordinary commands share ``RedisConfiguration/poolSize`` multiplexed connections (on the
/// event-loop transport at least one per event loop), each command going to the one with the fewest
/// commands waiting, or to its own loop's for a caller on an event loop;
/// concurrent callers' commands are pipelined automatically. Blocking commands (`BLMOVE`,
/// `BZPOPMIN`, ...) block the connection they run on, so they go through ``sendBlocking(_:blockFor:)``,
/// which lends a dedicated connection from a bounded second pool.
///
/// On a Redis Cluster (``RedisConfiguration/cluster``) the client keeps such a pool per primary and
/// sends each command to the primary that holds its first key's slot, following `MOVED` and `ASK`
/// (see ``RedisCommand/slot`` and docs/redis-client.md, "Cluster"); a pipeline is split by node and its
/// replies come back in order.
///
/// ```swift
/// let client = RedisClient(configuration: try RedisConfiguration(url: "redis://127.0.0.1:6379"))
/// defer { client.close() }
/// try await client.send(RedisCommand("SET", "greeting", "hello"))
/// let greeting = try await client.send(RedisCommand("GET", "greeting")).string
/// ```
public final class RedisClient: Sendable {
    /// The configuration every connection uses.
    public let configuration: RedisConfiguration
    let route: Route

    /// Where commands go: one server, or the nodes of a cluster.
    enum Route {
        case single(RedisNodePool)
        case cluster(RedisCluster)
    }

    /// Creates a client; its connections connect in the background.
    public init(configuration: RedisConfiguration, logger: Logger = RedisConnection.silentLogger) {
        self.configuration = configuration
        if configuration.cluster != nil {
            route = .cluster(RedisCluster(configuration: configuration, logger: logger))
        } else {
            route = .single(RedisNodePool(configuration: configuration, logger: logger))
        }
    }

    deinit { close() }

    /// Whether this client talks to a Redis Cluster.
    public var isCluster: Bool {
        if case .cluster = route { true } else { false }
    }

    /// Sends one command on a shared connection.
    /// - Throws: ``RedisError/misuse(_:)`` for a blocking command; otherwise as
    ///   ``RedisConnection/send(_:timeout:)``.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        switch route {
        case .single(let pool): try await pool.send(command, timeout: timeout)
        case .cluster(let cluster): try await cluster.send(command, timeout: timeout)
        }
    }

    /// Sends one command given as a name and arguments.
    @discardableResult
    public func send(_ name: String, _ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(name, arguments: arguments))
    }

    /// Sends many commands in one write on one shared connection; one reply per command, in order,
    /// error replies as ``RedisValue/error(_:)``. On a cluster, one write per node the commands'
    /// slots live on (a `MULTI` … `EXEC` block goes whole to the node of its first key).
    public func pipeline(_ commands: [RedisCommand], timeout: Duration? = nil) async throws -> [RedisValue] {
        switch route {
        case .single(let pool): try await pool.pipeline(commands, timeout: timeout)
        case .cluster(let cluster): try await cluster.pipeline(commands, timeout: timeout)
        }
    }

    /// Sends many commands as ``pipeline(_:timeout:)`` does, each with an outcome of its own: on a
    /// cluster, when one node cannot be reached, only its commands fail, and the other nodes'
    /// replies still come back. On a single server a failure is every command's.
    public func pipelineEach(_ commands: [RedisCommand], timeout: Duration? = nil) async throws -> [Result<RedisValue, any Error>] {
        switch route {
        case .single(let pool):
            do {
                return try await pool.pipeline(commands, timeout: timeout).map { .success($0) }
            } catch RedisError.misuse(let text) {
                // A blocking command or a malformed transaction is the caller's error, not an outcome.
                throw RedisError.misuse(text)
            } catch {
                return commands.map { _ in .failure(error) }
            }
        case .cluster(let cluster):
            return try await cluster.pipelineEach(commands, timeout: timeout)
        }
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
    public func sendBlocking(_ command: RedisCommand, blockFor: Duration) async throws -> RedisValue {
        switch route {
        case .single(let pool): try await pool.sendBlocking(command, blockFor: blockFor)
        case .cluster(let cluster): try await cluster.sendBlocking(command, blockFor: blockFor)
        }
    }

    /// Sends `commands` in one write on a dedicated connection, a blocking command among them: the
    /// commands after it run as soon as it returns, with no round trip of their own. Replies as
    /// ``pipeline(_:timeout:)``. Cancelling closes the connection (see
    /// ``sendBlocking(_:blockFor:)``), and the commands after the blocking one may then have run.
    /// - Throws: ``RedisError/unsupported(_:)`` on a cluster, where a redirect could split them.
    public func pipelineBlocking(_ commands: [RedisCommand], blockFor: Duration) async throws -> [RedisValue] {
        switch route {
        case .single(let pool): try await pool.pipelineBlocking(commands, blockFor: blockFor)
        case .cluster: throw RedisError.unsupported("a blocking pipeline on a cluster")
        }
    }

    /// Whether at least one shared connection is up.
    public var isConnected: Bool {
        switch route {
        case .single(let pool): pool.isConnected
        case .cluster(let cluster): cluster.isConnected
        }
    }

    /// Closes every connection, blocking ones included. Commands not yet sent fail with
    /// ``RedisError/closed``; commands waiting for their reply fail with
    /// ``RedisError/connectionLost(_:)`` (they may have run). Idempotent.
    public func close() {
        switch route {
        case .single(let pool): pool.close()
        case .cluster(let cluster): cluster.close()
        }
    }

    /// The pools of every primary: the one server, or each primary of the cluster (its slot map
    /// loaded first), for commands that must reach every node (`FUNCTION LOAD`, `INFO`).
    func primaries() async throws -> [RedisNodePool] {
        switch route {
        case .single(let pool): [pool]
        case .cluster(let cluster): try await cluster.primaryPools()
        }
    }
}
