/// An error reply from Redis, split into its code (the first word, such as `WRONGTYPE`) and message.
public struct RedisServerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The error code: the leading upper-case word of the reply (`ERR`, `WRONGTYPE`, `NOSCRIPT`, `OOM`,
    /// `READONLY`, `LOADING`, `BUSY`, `NOPERM`, `WRONGPASS`, ...).
    public let code: String
    /// The whole error text as Redis sent it, code included.
    public let message: String

    /// Parses an error reply's text.
    public init(message: String) {
        self.message = message
        let word = message.prefix { $0 != " " }
        let isCode = !word.isEmpty && word.allSatisfy { $0.isUppercase || $0 == "_" || $0.isNumber }
        self.code = isCode ? String(word) : "ERR"
    }

    public var description: String { message }
}

/// Every way a Redis call can fail.
///
/// Whether the command may have run decides what a caller can do: a command that was never sent is
/// always safe to retry; one whose outcome is unknown (``connectionLost(_:)``, ``timeout(_:)``) is safe
/// to retry only if it is idempotent.
public enum RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The connection URL or configuration is invalid.
    case invalidConfiguration(String)
    /// A feature this build cannot provide (for example TLS with Debian's hiredis 0.14).
    case unsupported(String)
    /// Connecting failed; the command was not sent. The client keeps reconnecting with backoff.
    case connectFailed(String)
    /// The server rejected the credentials (`AUTH`); the command was not sent.
    case authenticationFailed(RedisServerError)
    /// The connection is down and waiting before its next reconnect; the command was not sent.
    case notConnected(String)
    /// The connection broke after the command was written: its outcome is unknown.
    case connectionLost(String)
    /// No reply came within the command timeout: the outcome is unknown, and the connection was
    /// discarded so that later replies cannot be matched to the wrong caller.
    case timeout(Duration)
    /// Redis answered with an error reply.
    case server(RedisServerError)
    /// The reply could not be parsed; the connection was discarded.
    case protocolError(String)
    /// The client or connection was closed.
    case closed
    /// The call is not allowed on this kind of connection (for example a blocking command on a
    /// shared connection).
    case misuse(String)

    /// Whether the command certainly did not run, so that any command may be retried.
    public var wasNotSent: Bool {
        switch self {
        case .connectFailed, .authenticationFailed, .notConnected, .closed, .misuse, .invalidConfiguration,
            .unsupported:
            true
        case .connectionLost, .timeout, .server, .protocolError:
            false
        }
    }

    /// Whether retrying later may succeed: connection problems, timeouts, and the server errors that
    /// describe a passing state (`LOADING`, `BUSY`, `TRYAGAIN`, `MASTERDOWN`, `READONLY` during a
    /// failover, `OOM` once memory is freed).
    public var isTransient: Bool {
        switch self {
        case .connectFailed, .notConnected, .connectionLost, .timeout, .protocolError:
            true
        case .server(let error):
            ["LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "OOM", "CLUSTERDOWN", "MISCONF", "ASK", "MOVED"].contains(error.code)
        case .authenticationFailed, .closed, .misuse, .invalidConfiguration, .unsupported:
            false
        }
    }

    public var description: String {
        switch self {
        case .invalidConfiguration(let text): "invalid Redis configuration: \(text)"
        case .unsupported(let text): "unsupported: \(text)"
        case .connectFailed(let text): "cannot connect to Redis: \(text)"
        case .authenticationFailed(let error): "Redis rejected the credentials: \(error.message)"
        case .notConnected(let text): "not connected to Redis (reconnecting): \(text)"
        case .connectionLost(let text): "connection to Redis lost, outcome unknown: \(text)"
        case .timeout(let limit): "no reply from Redis within \(limit), outcome unknown"
        case .server(let error): "Redis error: \(error.message)"
        case .protocolError(let text): "Redis protocol error: \(text)"
        case .closed: "the Redis client is closed"
        case .misuse(let text): text
        }
    }
}
