/// Redis Cluster's key-to-slot mapping: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384.
///
/// A key's hash tag is the text between its first `{` and the first `}` after it, when that text is
/// not empty: `tern:{default}:pending` and `tern:{default}:job:1` share the slot of `default`.
public enum RedisClusterSlot {
    /// The number of slots in a cluster.
    public static let count = 16_384

    /// The slot of `key`.
    public static func of(_ key: some Collection<UInt8>) -> Int {
        let bytes = Array(key)
        var hashed = bytes[...]
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
            let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            hashed = bytes[(open + 1)..<close]
        }
        return Int(crc16(hashed) & 0x3FFF)
    }

    /// The slot of `key`.
    public static func of(_ key: String) -> Int { of(key.utf8) }

    private static let table: [UInt16] = (0..<256).map { byte in
        var crc = UInt16(byte) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }

    static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes { crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)] }
        return crc
    }
}

extension RedisCommand {
    /// Commands that name no key: in a cluster any node may run them.
    static let keylessCommands: Set<String> = [
        "PING", "ECHO", "TIME", "INFO", "FUNCTION", "CLIENT", "CLUSTER", "CONFIG", "DBSIZE", "SCRIPT", "COMMAND",
        "MULTI", "EXEC", "DISCARD", "ASKING", "READONLY", "READWRITE", "PUBLISH", "WAIT", "ROLE", "SCAN",
        "RANDOMKEY", "FLUSHALL", "FLUSHDB", "LASTSAVE", "SLOWLOG", "LATENCY", "ACL", "AUTH", "DEBUG", "MEMORY",
        "SAVE", "BGSAVE", "BGREWRITEAOF", "SHUTDOWN", "SWAPDB", "MIGRATE", "OBJECT",
    ]

    /// Commands whose keys follow a key count in their second argument (`FCALL fn 1 key ...`).
    static let scriptCommands: Set<String> = ["FCALL", "FCALL_RO", "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"]

    /// The cluster slot of the command's first key, or `nil` for a command that names none.
    ///
    /// The first key is the first argument, except for scripts (`FCALL`, `EVAL`, ...), whose first key
    /// follows the key count. Every key of one command must share a slot in a cluster; Redis refuses a
    /// command that spans slots with `CROSSSLOT`.
    public var slot: Int? {
        if Self.keylessCommands.contains(name) { return nil }
        if Self.scriptCommands.contains(name) {
            guard let count = argument(2).flatMap({ Int(String(decoding: $0, as: UTF8.self)) }), count > 0 else { return nil }
            return argument(3).map { RedisClusterSlot.of($0) }
        }
        return argument(1).map { RedisClusterSlot.of($0) }
    }

    /// Whether the command is a script (a Function or `EVAL`), whose undeclared keys Redis cannot
    /// check before it runs.
    var isScript: Bool { Self.scriptCommands.contains(name) }

    /// The bytes of argument `index` (0 is the name), or `nil` past the last.
    func argument(_ index: Int) -> ArraySlice<UInt8>? {
        guard index < argumentCount else { return nil }
        var position = 0
        var current = 0
        while position < body.count {
            // "$<length>\r\n<bytes>\r\n"
            var length = 0
            position += 1
            while body[position] != 13 {
                length = length * 10 + Int(body[position] - 48)
                position += 1
            }
            position += 2
            if current == index { return body[position..<(position + length)] }
            position += length + 2
            current += 1
        }
        return nil
    }
}
