import Foundation
import TernCore

/// Where and how to connect to Redis.
///
/// ```swift
/// var configuration = try RedisConfiguration(url: "redis://tern:secret@127.0.0.1:6379/0")
/// configuration.commandTimeout = .seconds(2)
/// let client = RedisClient(configuration: configuration)
/// ```
public struct RedisConfiguration: Sendable, Hashable {
    /// The server's address.
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// A TCP host (name or address) and port.
        case tcp(host: String, port: Int)
        /// A unix domain socket path.
        case unix(path: String)

        /// `host:port`, `[v6]:port` or `unix:/path`.
        public var description: String {
            switch self {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unix(let path): "unix:\(path)"
            }
        }
    }

    /// How a connection moves its bytes.
    public enum Transport: Sendable, Hashable {
        /// hiredis on a thread of its own per connection, with busy-polling (see ``busyPoll``): the
        /// fastest for callers on Swift's global pool, such as workers. No TLS.
        case dedicatedThread
        /// A SwiftNIO channel on the process's event loops (`MultiThreadedEventLoopGroup.singleton`),
        /// hiredis parsing its replies. A ``RedisClient`` keeps one per loop and gives callers on a
        /// loop (the API's handlers) that loop's connection, so a command costs no thread hop.
        /// Required for ``tls``; ``busyPoll`` does not apply.
        case eventLoop
    }

    /// The server's address.
    public var endpoint: Endpoint
    /// The sentinels that name the primary (`redis+sentinel://`), or `nil` to connect to
    /// ``endpoint`` itself. With Sentinel, ``endpoint`` is only the first sentinel.
    public var sentinel: RedisSentinel?
    /// The seed nodes of a Redis Cluster (`redis+cluster://`), or `nil` for a single server. The
    /// client learns the other nodes from them; ``endpoint`` is the first seed.
    public var cluster: [Endpoint]?
    /// TLS settings (`rediss://`), or `nil` for a plain connection. TLS always uses the
    /// ``Transport/eventLoop`` transport.
    public var tls: RedisTLS?
    /// How connections move their bytes; default ``Transport/dedicatedThread``. TLS overrides it.
    public var transport: Transport
    /// The ACL user name for `AUTH`, or `nil` for the `default` user.
    public var username: String?
    /// The password for `AUTH`, or `nil` to skip `AUTH`.
    public var password: String?
    /// The database number (`SELECT`), 0 by default.
    public var database: Int
    /// The connection name shown by `CLIENT LIST` (`CLIENT SETNAME`); default `tern`.
    public var clientName: String?
    /// The limit for the TCP or unix-socket connect, and again for each handshake reply (`AUTH`,
    /// `SELECT`, `CLIENT SETNAME`); default 2 s. Host-name resolution is not bounded by it.
    public var connectTimeout: Duration
    /// How long a command may wait for its reply before it fails with ``RedisError/timeout(_:)`` and
    /// the connection is discarded (default 5 s). Blocking commands get their block time on top.
    public var commandTimeout: Duration
    /// The delays between reconnect attempts (default 25 ms doubling to 1 s, with jitter). The first
    /// attempt after a working connection breaks is immediate.
    public var reconnectBackoff: Backoff
    /// How many multiplexed connections a ``RedisClient`` keeps (default 2). With automatic
    /// pipelining, one or two connections carry all of a process's ordinary commands.
    public var poolSize: Int
    /// The most dedicated connections a ``RedisClient`` opens for blocking commands (default 32);
    /// callers beyond it wait for one to be returned.
    public var maxBlockingConnections: Int

    /// The most a connection's thread busy-polls before it sleeps (default 250 µs; zero turns it
    /// off). It polls for a reply for twice the recent average reply time (at least 50 µs, at most
    /// this), not at all while replies take longer than this, and after a reply for up to half of
    /// this for the caller's next command. On virtual machines a thread wake-up costs about as much
    /// as a loopback round trip, so busy-polling doubles the rate of a caller that awaits each
    /// command; it costs CPU only while commands are flowing. Turn it off where cores are scarce
    /// and every cycle belongs to jobs.
    public var busyPoll: Duration

    /// Creates a configuration for an endpoint, with defaults for everything else.
    public init(endpoint: Endpoint) {
        self.endpoint = endpoint
        self.tls = nil
        self.sentinel = nil
        self.cluster = nil
        self.transport = .dedicatedThread
        self.username = nil
        self.password = nil
        self.database = 0
        self.clientName = "tern"
        self.connectTimeout = .seconds(2)
        self.commandTimeout = .seconds(5)
        self.reconnectBackoff = Backoff(base: .milliseconds(25), cap: .seconds(1))
        self.poolSize = 2
        self.maxBlockingConnections = 32
        self.busyPoll = .microseconds(250)
    }

    /// The transport connections use: ``transport``, or the event loop's when TLS is on.
    public var effectiveTransport: Transport { tls == nil ? transport : .eventLoop }

    /// The URL when none is configured: `redis://127.0.0.1:6379`.
    public static let defaultURL = "redis://127.0.0.1:6379"

    /// Parses a connection URL.
    ///
    /// Accepted forms:
    /// - `redis://[[user]:password@]host[:port][/db]` (port 6379, database 0 by default; an IPv6
    ///   address goes in brackets: `redis://[::1]:6379`);
    /// - `rediss://[[user]:password@]host[:port][/db][?ca=FILE][&cert=FILE&key=FILE][&sni=NAME]`: TLS
    ///   (see ``RedisTLS``), the server's certificate checked against the CA file (else the system's
    ///   trust store) and its name against `sni` (else the host);
    /// - `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db]`: the
    ///   sentinels (port 26379 by default) to ask for the primary of `master-name` (see
    ///   ``RedisSentinel``); the credentials and database are the data nodes';
    /// - `redis+cluster://[[user]:password@]host[:port][,host[:port]...]` (and `rediss+cluster://`
    ///   with the TLS query of `rediss://`): seed nodes of a Redis Cluster (see ``cluster``), port 6379
    ///   by default; a cluster has only database 0;
    /// - `unix:///path/to/redis.sock[?db=N][&user=U][&password=P]`.
    ///
    /// User names, passwords and query values may be percent-encoded.
    public init(url: String) throws(RedisError) {
        guard let schemeEnd = url.range(of: "://") else {
            throw .invalidConfiguration("'\(Self.redacted(url))' is not a URL: expected redis://host:port or unix:///path")
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        let rest = String(url[schemeEnd.upperBound...])
        switch scheme {
        case "redis":
            self = try Self.parseTCP(rest, url: url)
        case "unix":
            self = try Self.parseUnix(rest, url: url)
        case "redis+sentinel":
            self = try Self.parseSentinel(rest, url: url)
        case "redis+cluster":
            self = try Self.parseCluster(rest, url: url)
        case "rediss+cluster":
            self = try Self.parseCluster(rest, url: url, tls: true)
        case "rediss":
            self = try Self.parseTCP(rest, url: url, tls: true)
            self.tls = try Self.parseTLS(rest, url: url)
        default:
            throw .invalidConfiguration("unknown scheme '\(scheme)://': use redis://, rediss://, redis+sentinel://, redis+cluster://, rediss+cluster:// or unix://")
        }
    }

    private static func parseTCP(_ rest: String, url: String, tls: Bool = false) throws(RedisError) -> RedisConfiguration {
        // The query (TLS file paths hold slashes) comes off before the path.
        let beforeQuery = rest.firstIndex(of: "?").map { rest[..<$0] } ?? rest[...]
        if !tls && beforeQuery.endIndex != rest.endIndex {
            // Silently ignoring ?ca=... would connect without TLS.
            throw .invalidConfiguration("\(redacted(url)) has a query, which redis:// takes none of: for TLS use rediss://")
        }
        var authority = String(beforeQuery)
        var path = ""
        if let slash = beforeQuery.firstIndex(of: "/") {
            authority = String(beforeQuery[..<slash])
            path = String(beforeQuery[beforeQuery.index(after: slash)...])
        }
        var username: String?
        var password: String?
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            authority = String(authority[authority.index(after: at)...])
            if let colon = userinfo.firstIndex(of: ":") {
                let user = String(userinfo[..<colon])
                username = user.isEmpty ? nil : try percentDecoded(user)
                password = try percentDecoded(String(userinfo[userinfo.index(after: colon)...]))
            } else if !userinfo.isEmpty {
                // redis://secret@host is the password-only form most clients accept.
                password = try percentDecoded(String(userinfo))
            }
        }
        let (host, port) = try parseHostPort(authority, url: url)
        var configuration = RedisConfiguration(endpoint: .tcp(host: host, port: port))
        configuration.username = username
        configuration.password = password
        if !path.isEmpty {
            guard let database = Int(path), database >= 0 else {
                throw .invalidConfiguration("database '\(path)' in \(redacted(url)) is not a number ≥ 0")
            }
            configuration.database = database
        }
        return configuration
    }

    private static func parseSentinel(_ rest: String, url: String) throws(RedisError) -> RedisConfiguration {
        guard !rest.contains("?") else {
            throw .invalidConfiguration("\(redacted(url)) has a query, which redis+sentinel:// takes none of")
        }
        guard let slash = rest.firstIndex(of: "/") else {
            throw .invalidConfiguration("no master name in \(redacted(url)): redis+sentinel://host:port,.../master-name")
        }
        let path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        guard let name = path.first, !name.isEmpty, path.count <= 2 else {
            throw .invalidConfiguration("no master name in \(redacted(url)): redis+sentinel://host:port,.../master-name")
        }
        // The data nodes' credentials and database, parsed as redis:// would, on the first sentinel.
        let hosts = rest[..<slash]
        let credentials = hosts.lastIndex(of: "@").map { String(hosts[...$0]) } ?? ""
        let list = hosts.lastIndex(of: "@").map { hosts[hosts.index(after: $0)...] } ?? hosts
        var nodes: [Endpoint] = []
        for node in list.split(separator: ",", omittingEmptySubsequences: false) {
            let (host, port) = try parseHostPort(String(node), url: url, defaultPort: 26379)
            nodes.append(.tcp(host: host, port: port))
        }
        guard case .tcp(let firstHost, let firstPort) = nodes[0] else { throw .invalidConfiguration("no sentinel in \(redacted(url))") }
        let bracketed = firstHost.contains(":") ? "[\(firstHost)]" : firstHost
        var configuration = try parseTCP(
            credentials + "\(bracketed):\(firstPort)" + (path.count == 2 ? "/\(path[1])" : ""), url: url)
        configuration.sentinel = RedisSentinel(masterName: try percentDecoded(String(name)), nodes: nodes)
        return configuration
    }

    private static func parseCluster(_ rest: String, url: String, tls: Bool = false) throws(RedisError) -> RedisConfiguration {
        let query = rest.firstIndex(of: "?").map { String(rest[$0...]) } ?? ""
        var beforeQuery = rest.firstIndex(of: "?").map { rest[..<$0] } ?? rest[...]
        if !tls && !query.isEmpty {
            throw .invalidConfiguration("\(redacted(url)) has a query, which redis+cluster:// takes none of: for TLS use rediss+cluster://")
        }
        if let slash = beforeQuery.firstIndex(of: "/") {
            let path = beforeQuery[beforeQuery.index(after: slash)...]
            guard path.isEmpty || path == "0" else {
                throw .invalidConfiguration("database '\(path)' in \(redacted(url)): a Redis Cluster has only database 0")
            }
            beforeQuery = beforeQuery[..<slash]
        }
        let credentials = beforeQuery.lastIndex(of: "@").map { String(beforeQuery[...$0]) } ?? ""
        let list = beforeQuery.lastIndex(of: "@").map { beforeQuery[beforeQuery.index(after: $0)...] } ?? beforeQuery
        var nodes: [Endpoint] = []
        for node in list.split(separator: ",", omittingEmptySubsequences: false) {
            let (host, port) = try parseHostPort(String(node), url: url)
            nodes.append(.tcp(host: host, port: port))
        }
        guard case .tcp(let firstHost, let firstPort) = nodes[0] else { throw .invalidConfiguration("no node in \(redacted(url))") }
        let bracketed = firstHost.contains(":") ? "[\(firstHost)]" : firstHost
        var configuration = try parseTCP(credentials + "\(bracketed):\(firstPort)" + query, url: url, tls: tls)
        if tls { configuration.tls = try parseTLS(query, url: url) }
        configuration.cluster = nodes
        return configuration
    }

    private static func parseTLS(_ rest: String, url: String) throws(RedisError) -> RedisTLS {
        var tls = RedisTLS()
        guard let mark = rest.firstIndex(of: "?") else { return tls }
        for pair in rest[rest.index(after: mark)...].split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = try percentDecoded(parts.count > 1 ? String(parts[1]) : "")
            guard !value.isEmpty else { throw .invalidConfiguration("empty '\(parts[0])' in \(redacted(url))") }
            switch parts[0] {
            case "ca": tls.caFile = value
            case "cert": tls.certificateFile = value
            case "key": tls.keyFile = value
            case "sni": tls.serverName = value
            default:
                throw .invalidConfiguration("unknown parameter '\(parts[0])' in \(redacted(url)): use ca, cert, key or sni")
            }
        }
        if (tls.certificateFile == nil) != (tls.keyFile == nil) {
            throw .invalidConfiguration("\(redacted(url)) names only one of cert and key: client authentication needs both")
        }
        return tls
    }

    private static func parseHostPort(
        _ authority: String, url: String, defaultPort: Int = 6379
    ) throws(RedisError) -> (String, Int) {
        var host = authority
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw .invalidConfiguration("unclosed '[' in \(redacted(url))")
            }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        }
        guard !host.isEmpty else { throw .invalidConfiguration("no host in \(redacted(url))") }
        guard let portText else { return (host, defaultPort) }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw .invalidConfiguration("port '\(portText)' in \(redacted(url)) is not in 1...65535")
        }
        return (host, port)
    }

    private static func parseUnix(_ rest: String, url: String) throws(RedisError) -> RedisConfiguration {
        var path = rest
        var query = ""
        if let mark = rest.firstIndex(of: "?") {
            path = String(rest[..<mark])
            query = String(rest[rest.index(after: mark)...])
        }
        guard path.hasPrefix("/") else {
            throw .invalidConfiguration("unix socket path in \(redacted(url)) must be absolute: unix:///path/to/redis.sock")
        }
        var configuration = RedisConfiguration(endpoint: .unix(path: try percentDecoded(path)))
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            let value = try percentDecoded(parts.count > 1 ? String(parts[1]) : "")
            switch key {
            case "db":
                guard let database = Int(value), database >= 0 else {
                    throw .invalidConfiguration("db '\(value)' in \(redacted(url)) is not a number ≥ 0")
                }
                configuration.database = database
            case "user": configuration.username = value.isEmpty ? nil : value
            case "password": configuration.password = value
            default:
                throw .invalidConfiguration("unknown parameter '\(key)' in \(redacted(url)): use db, user or password")
            }
        }
        return configuration
    }

    private static func percentDecoded(_ text: String) throws(RedisError) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw .invalidConfiguration("bad percent-encoding in a Redis URL")
            }
            bytes.append(high << 4 | low)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The URL with any password replaced by `***`, for messages and logs.
    public static func redacted(_ url: String) -> String {
        var text = url
        // The user information ends at the last `@` before the path, as the parser reads it.
        if let schemeEnd = text.range(of: "://"),
            case let authority = text[schemeEnd.upperBound...].prefix(while: { $0 != "/" && $0 != "?" }),
            let at = authority.lastIndex(of: "@")
        {
            let userinfo = text[schemeEnd.upperBound..<at]
            let user = userinfo.firstIndex(of: ":").map { userinfo[..<$0] + ":***" } ?? "***"
            text.replaceSubrange(schemeEnd.upperBound..<at, with: user)
        }
        if let range = text.range(of: "password=") {
            let end = text[range.upperBound...].firstIndex(of: "&") ?? text.endIndex
            text.replaceSubrange(range.upperBound..<end, with: "***")
        }
        return text
    }

    /// A description of the endpoint that never includes credentials.
    public var endpointDescription: String {
        if let cluster { return "cluster " + cluster.map(\.description).joined(separator: ",") }
        return sentinel?.description ?? endpoint.description
    }

    /// The endpoint a single connection tries on its `attempt`-th connect (0 first): ``endpoint``,
    /// or for a cluster each seed in turn, so that one dead seed does not keep it down.
    func endpoint(attempt: Int) -> Endpoint {
        guard let cluster, !cluster.isEmpty else { return endpoint }
        return cluster[attempt % cluster.count]
    }

}
