/// A reply from Redis, converted from hiredis's `redisReply` (RESP2).
///
/// Bulk strings are raw bytes, so binary values round-trip unchanged. An error reply nested in an
/// array (or returned by ``RedisConnection/pipeline(_:timeout:)``) is a value of its own; a top-level error
/// reply to ``RedisConnection/send(_:timeout:)`` is thrown as ``RedisError/server(_:)`` instead.
public enum RedisValue: Sendable, Hashable {
    /// A nil bulk string or nil array.
    case null
    /// An integer reply.
    case integer(Int)
    /// A status reply such as `OK`.
    case simpleString(String)
    /// A bulk string, as the bytes Redis sent.
    case bulkString([UInt8])
    /// An array reply.
    case array([RedisValue])
    /// An error reply.
    case error(RedisServerError)
}

extension RedisValue {
    /// The value as text: a status or a bulk string decoded as UTF-8 (invalid bytes repaired), an
    /// integer in decimal; `nil` otherwise.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// The value as an integer: an integer reply, or a string that parses as one; `nil` otherwise.
    public var int: Int? {
        switch self {
        case .integer(let value): value
        case .bulkString, .simpleString: string.flatMap { Int($0) }
        default: nil
        }
    }

    /// The bytes of a bulk string or a status; `nil` otherwise.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): bytes
        case .simpleString(let text): Array(text.utf8)
        default: nil
        }
    }

    /// The elements of an array reply; `nil` otherwise.
    public var array: [RedisValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// Whether this is an error reply.
    public var isError: Bool {
        if case .error = self { return true }
        return false
    }

    /// Whether this is a nil reply.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Returns the value, or throws ``RedisError/server(_:)`` if it is an error reply.
    @discardableResult
    public func throwingServerError() throws(RedisError) -> RedisValue {
        if case .error(let error) = self { throw .server(error) }
        return self
    }
}

extension RedisValue {
    /// Whether this is a `READONLY` error: the server is a replica now, so the primary moved.
    var isReadOnlyError: Bool {
        if case .error(let error) = self { error.code == "READONLY" } else { false }
    }

    /// Why a connection that got a `READONLY` reply is dropped.
    static let readOnlyReason =
        "the server answered READONLY: it is a replica now (a failover?), so the connection is reopened to find the primary"
}
