/// What a Redis server says about how safely it keeps data, read from `INFO`.
///
/// Tern treats Redis as a database: a server that can silently drop jobs (no append-only file, or a
/// `maxmemory-policy` that evicts keys) is unsafe. ``problems`` names each reason; `tern redis-check`
/// fails on them and `tern dev` warns.
public struct RedisDurability: Sendable, Hashable {
    /// The server version (`redis_version`).
    public var version: String
    /// Whether the append-only file is on (`aof_enabled`).
    public var appendOnly: Bool
    /// The eviction policy (`maxmemory_policy`).
    public var maxMemoryPolicy: String

    /// Policies under which Redis never evicts keys on its own.
    public static let safePolicies: Set<String> = ["noeviction"]

    /// The reasons this server can lose jobs, one sentence each; empty when it is safe.
    public var problems: [String] {
        var problems: [String] = []
        if !appendOnly {
            problems.append(
                "appendonly is off, so a Redis restart loses every job accepted since the last snapshot "
                    + "(set `appendonly yes` and `appendfsync everysec`)")
        }
        if !Self.safePolicies.contains(maxMemoryPolicy) {
            problems.append(
                "maxmemory-policy is \(maxMemoryPolicy), so Redis may evict job keys under memory pressure "
                    + "(set `maxmemory-policy noeviction`)")
        }
        return problems
    }

    /// Parses the text of `INFO server`, `INFO persistence` and `INFO memory`.
    public init(info: String) {
        var fields: [Substring: Substring] = [:]
        for line in info.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon]] = line[line.index(after: colon)...]
        }
        version = fields["redis_version"].map(String.init) ?? "unknown"
        appendOnly = fields["aof_enabled"] == "1"
        maxMemoryPolicy = fields["maxmemory_policy"].map(String.init) ?? "unknown"
    }
}

extension RedisClient {
    /// Reads the server's version and durability settings (`INFO`, allowed to restricted ACL users
    /// that have `+info`). On a cluster every primary is read and the weakest settings are reported:
    /// the append-only file counts as on only if it is on everywhere.
    public func durability() async throws -> RedisDurability {
        var combined: RedisDurability?
        for node in try await primaries() {
            let replies = try await node.pipeline([
                RedisCommand("INFO", "server"), RedisCommand("INFO", "persistence"), RedisCommand("INFO", "memory"),
            ])
            var text = ""
            for reply in replies { text += try reply.throwingServerError().string ?? "" }
            let report = RedisDurability(info: text)
            guard var worst = combined else {
                combined = report
                continue
            }
            worst.appendOnly = worst.appendOnly && report.appendOnly
            if RedisDurability.safePolicies.contains(worst.maxMemoryPolicy) { worst.maxMemoryPolicy = report.maxMemoryPolicy }
            combined = worst
        }
        guard let combined else { throw RedisError.protocolError("no primary to read durability settings from") }
        return combined
    }
}
