/// A Redis Functions library (Lua), loaded once per version.
///
/// The version is a hash of the source, so it changes whenever the code does. The loaded library
/// carries an extra read-only function, `<name>_version`, that returns it:
/// ``RedisClient/load(_:)`` calls it and runs `FUNCTION LOAD REPLACE` only when the answer differs.
/// Functions are stored with the dataset, so they survive a restart of a Redis with persistence;
/// ``RedisClient/call(_:_:keys:arguments:)`` loads the library again if Redis has lost it.
///
/// ```swift
/// let library = RedisFunctionLibrary(name: "demo", source: """
///     redis.register_function('demo_incr', function(keys, args)
///       return redis.call('INCRBY', keys[1], args[1])
///     end)
///     """)
/// try await client.load(library)
/// let total = try await client.call(library, "demo_incr", keys: ["counter"], arguments: [5]).int
/// ```
public struct RedisFunctionLibrary: Sendable, Hashable {
    /// The library name (letters, digits and underscores).
    public let name: String
    /// The Lua source, without the `#!lua` line.
    public let source: String
    /// A hash of the source, as 16 hex digits.
    public let version: String

    /// Creates a library from its name and Lua source.
    public init(name: String, source: String) {
        precondition(
            !name.isEmpty && name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || ($0 < 128 && Character(Unicode.Scalar($0)).isLetter) || ($0 >= 48 && $0 <= 57) },
            "a Redis function library name has letters, digits and underscores only")
        self.name = name
        self.source = source
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in source.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        self.version = String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The name of the generated function that returns ``version``.
    public var versionFunction: String { "\(name)_version" }

    /// The code sent with `FUNCTION LOAD`.
    public var code: String {
        """
        #!lua name=\(name)
        \(source)
        redis.register_function{function_name='\(versionFunction)', callback=function() return '\(version)' end, flags={'no-writes'}}
        """
    }
}

extension RedisClient {
    /// Loads `library` unless Redis already has this version of it; on a cluster, on every primary
    /// (replicas get it through replication).
    /// - Returns: `true` if the library was (re)loaded anywhere, `false` if the stored version was
    ///   current everywhere.
    @discardableResult
    public func load(_ library: RedisFunctionLibrary) async throws -> Bool {
        var loaded = false
        for node in try await primaries() where try await Self.load(library, on: node) { loaded = true }
        return loaded
    }

    private static func load(_ library: RedisFunctionLibrary, on node: RedisNodePool) async throws -> Bool {
        do {
            let stored = try await node.send(RedisCommand("FCALL_RO", library.versionFunction, 0))
            if stored.string == library.version { return false }
        } catch RedisError.server(let error) where Self.isMissingFunction(error) {
            // Not loaded yet.
        }
        try await node.send(RedisCommand("FUNCTION", "LOAD", "REPLACE", library.code))
        return true
    }

    /// Calls a function of `library` with `FCALL`, loading the library first if Redis lacks it.
    public func call(
        _ library: RedisFunctionLibrary, _ function: String, keys: [any RedisArgument] = [],
        arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        try await invoke("FCALL", library, function, keys: keys, arguments: arguments)
    }

    /// Calls a read-only (`no-writes`) function of `library` with `FCALL_RO`.
    public func callReadOnly(
        _ library: RedisFunctionLibrary, _ function: String, keys: [any RedisArgument] = [],
        arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        try await invoke("FCALL_RO", library, function, keys: keys, arguments: arguments)
    }

    private func invoke(
        _ verb: String, _ library: RedisFunctionLibrary, _ function: String, keys: [any RedisArgument],
        arguments: [any RedisArgument]
    ) async throws -> RedisValue {
        let command = Self.functionCall(function, keys: keys, arguments: arguments, verb: verb)
        do {
            return try await send(command)
        } catch RedisError.server(let error) where Self.isMissingFunction(error) {
            try await load(library)
            return try await send(command)
        }
    }

    /// The `FCALL` (or `FCALL_RO`) command that calls `function`, for callers that send it
    /// themselves, in a pipeline; they handle a missing library (``isMissingFunction(_:)``).
    static func functionCall(
        _ function: String, keys: [any RedisArgument], arguments: [any RedisArgument], verb: String = "FCALL"
    ) -> RedisCommand {
        var command = RedisCommand(verb, function, keys.count)
        for key in keys { command.append(key) }
        for argument in arguments { command.append(argument) }
        return command
    }

    static func isMissingFunction(_ error: RedisServerError) -> Bool {
        error.code == "ERR" && error.message.contains("Function not found")
    }
}
