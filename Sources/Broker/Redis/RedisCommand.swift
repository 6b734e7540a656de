import Foundation

/// A value that can be sent as one argument of a Redis command.
public protocol RedisArgument: Sendable {
    /// Appends this argument as a RESP bulk string (`$<length>\r\n<bytes>\r\n`).
    func appendRedisBulk(to buffer: inout [UInt8])
}

extension RedisArgument {
    @inlinable
    static func appendBulk(_ bytes: some Collection<UInt8>, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "$"))
        appendDecimal(bytes.count, to: &buffer)
        buffer.append(13)
        buffer.append(10)
        buffer.append(contentsOf: bytes)
        buffer.append(13)
        buffer.append(10)
    }
}

@inlinable
func appendDecimal(_ value: Int, to buffer: inout [UInt8]) {
    if value >= 0 && value < 10 {
        buffer.append(UInt8(ascii: "0") &+ UInt8(value))
    } else {
        buffer.append(contentsOf: String(value).utf8)
    }
}

extension String: RedisArgument {
    public func appendRedisBulk(to buffer: inout [UInt8]) { Self.appendBulk(utf8, to: &buffer) }
}

extension Substring: RedisArgument {
    public func appendRedisBulk(to buffer: inout [UInt8]) { Self.appendBulk(utf8, to: &buffer) }
}

extension Array: RedisArgument where Element == UInt8 {
    public func appendRedisBulk(to buffer: inout [UInt8]) { Self.appendBulk(self, to: &buffer) }
}

extension ArraySlice: RedisArgument where Element == UInt8 {
    public func appendRedisBulk(to buffer: inout [UInt8]) { Self.appendBulk(self, to: &buffer) }
}

extension Data: RedisArgument {
    public func appendRedisBulk(to buffer: inout [UInt8]) { Self.appendBulk(self, to: &buffer) }
}

extension Int: RedisArgument {
    public func appendRedisBulk(to buffer: inout [UInt8]) { Self.appendBulk(String(self).utf8, to: &buffer) }
}

extension Int64: RedisArgument {
    public func appendRedisBulk(to buffer: inout [UInt8]) { Self.appendBulk(String(self).utf8, to: &buffer) }
}

extension UInt64: RedisArgument {
    public func appendRedisBulk(to buffer: inout [UInt8]) { Self.appendBulk(String(self).utf8, to: &buffer) }
}

extension Double: RedisArgument {
    /// Sent in Swift's shortest round-tripping form (`1.5`, `1e+20`), with `inf`/`-inf` as Redis
    /// spells them.
    public func appendRedisBulk(to buffer: inout [UInt8]) {
        let text = isInfinite ? (self < 0 ? "-inf" : "inf") : "\(self)"
        Self.appendBulk(text.utf8, to: &buffer)
    }
}

/// One Redis command, encoded once when it is built.
///
/// ```swift
/// var command = RedisCommand("HSET", "job:1", "state", "queued")
/// command.append("attempts")
/// command.append(0)
/// let added = try await client.send(command).int
/// ```
public struct RedisCommand: Sendable, CustomStringConvertible {
    /// The command's name, upper-cased (`SET`, `FCALL`, ...).
    public let name: String
    /// The number of arguments, the name included.
    public private(set) var argumentCount: Int
    /// The arguments encoded as RESP bulk strings, without the `*<count>` header.
    private(set) var body: [UInt8]
    /// Whether the command blocks its connection: one of ``blockingCommands``, or `XREAD`/`XREADGROUP`
    /// with the `BLOCK` option.
    private(set) var isBlocking: Bool
    /// Whether the command changes the connection's reply mode: one of ``unsupportedCommands``, or
    /// `CLIENT REPLY`.
    private(set) var changesReplyMode: Bool
    /// For `XREAD`/`XREADGROUP`: whether the `STREAMS` keyword has passed (options come before it).
    private var pastOptions = false

    /// Creates a command from its name and arguments.
    public init(_ name: String, _ arguments: any RedisArgument...) {
        self.init(name, arguments: arguments)
    }

    /// Creates a command from its name and an array of arguments.
    public init(_ name: String, arguments: [any RedisArgument]) {
        self.name = name.uppercased()
        self.argumentCount = 1
        self.body = []
        self.isBlocking = Self.blockingCommands.contains(self.name)
        self.changesReplyMode = Self.unsupportedCommands.contains(self.name)
        body.reserveCapacity(16 + name.utf8.count + arguments.count * 24)
        name.appendRedisBulk(to: &body)
        for argument in arguments { append(argument) }
    }

    /// Appends one argument.
    public mutating func append(_ argument: some RedisArgument) {
        let start = body.count
        argument.appendRedisBulk(to: &body)
        argumentCount += 1
        if name == "XREAD" || name == "XREADGROUP" || name == "CLIENT" { inspectArgument(from: start) }
    }

    /// Appends one argument given as an existential.
    public mutating func append(_ argument: any RedisArgument) {
        let start = body.count
        argument.appendRedisBulk(to: &body)
        argumentCount += 1
        if name == "XREAD" || name == "XREADGROUP" || name == "CLIENT" { inspectArgument(from: start) }
    }

    /// Notes `XREAD ... BLOCK` (an option, so only before `STREAMS`) and `CLIENT REPLY`.
    private mutating func inspectArgument(from start: Int) {
        var index = start
        while index < body.count && body[index] != 10 { index += 1 }
        let word = String(decoding: body[(index + 1)..<(body.count - 2)], as: UTF8.self).uppercased()
        if name == "CLIENT" {
            if argumentCount == 2 && word == "REPLY" { changesReplyMode = true }
        } else if !pastOptions {
            if word == "STREAMS" { pastOptions = true } else if word == "BLOCK" { isBlocking = true }
        }
    }

    /// Appends the whole command, header included, in the wire format.
    func encode(into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "*"))
        appendDecimal(argumentCount, to: &buffer)
        buffer.append(13)
        buffer.append(10)
        buffer.append(contentsOf: body)
    }

    /// The command's name and argument count; arguments are never printed, as they may hold secrets.
    public var description: String { "\(name) (\(argumentCount) arguments)" }

    /// Commands that block the connection they run on. They must run on a dedicated connection:
    /// ``RedisClient/sendBlocking(_:blockFor:)``.
    public static let blockingCommands: Set<String> = [
        "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "WAIT", "WAITAOF",
    ]

    /// Commands that put a connection into a mode where replies no longer answer commands one to one
    /// (`CLIENT REPLY OFF|SKIP` too); they are refused with ``RedisError/misuse(_:)``.
    public static let unsupportedCommands: Set<String> = [
        "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR", "SYNC",
        "PSYNC", "RESET", "HELLO", "QUIT", "SELECT", "WATCH", "UNWATCH",
    ]

    /// Transaction commands: on a multiplexed connection they are allowed only inside one
    /// ``RedisConnection/pipeline(_:timeout:)`` that starts with `MULTI` and ends with `EXEC` or
    /// `DISCARD`, so no other caller's command can fall inside the transaction.
    public static let transactionCommands: Set<String> = ["MULTI", "EXEC", "DISCARD"]
}
