import CHiredis
import Foundation

/// Where Redis Sentinel finds the primary: the name the sentinels monitor and the sentinels to ask.
///
/// Every connect asks the sentinels, in order, for the primary's address (`SENTINEL
/// get-master-addr-by-name`), connects there, and checks with `ROLE` that the server is the
/// primary; a connection that gets a `READONLY` reply is dropped and resolved again. A failover
/// therefore costs the commands in flight at that moment (they fail with
/// ``RedisError/connectionLost(_:)``) and the time Sentinel takes to promote a replica.
///
/// ```swift
/// let configuration = try RedisConfiguration(url: "redis+sentinel://10.0.0.1,10.0.0.2,10.0.0.3/tern")
/// ```
public struct RedisSentinel: Sendable, Hashable {
    /// The master name the sentinels monitor (`sentinel monitor <name> ...`).
    public var masterName: String
    /// The sentinels, asked in this order; the first that answers wins.
    public var nodes: [RedisConfiguration.Endpoint]

    public init(masterName: String, nodes: [RedisConfiguration.Endpoint]) {
        self.masterName = masterName
        self.nodes = nodes
    }

    /// The sentinels and the master name, never credentials.
    var description: String {
        "'\(masterName)' via Sentinel \(nodes.map(\.description).joined(separator: ","))"
    }

    /// Asks each sentinel in turn for the primary's address. Blocking: at most `timeout` per sentinel.
    func resolve(timeout: Duration) -> Result<RedisConfiguration.Endpoint, RedisError> {
        var failures: [String] = []
        for node in nodes {
            guard case .tcp(let host, let port) = node else { continue }
            guard let context = redisConnectWithTimeout(host, Int32(port), timeval(timeout)) else {
                failures.append("\(host):\(port): cannot allocate a context")
                continue
            }
            defer { redisFree(context) }
            if context.pointee.err != 0 {
                failures.append("\(host):\(port): \(RedisHandshake.errorText(context))")
                continue
            }
            _ = redisSetTimeout(context, timeval(timeout))
            switch RedisHandshake.command(context, ["SENTINEL", "get-master-addr-by-name", masterName]) {
            case .failure(let error):
                failures.append("\(host):\(port): \(error)")
            case .success(.array(let parts)) where parts.count == 2:
                guard let address = parts[0].string, let portText = parts[1].string, let masterPort = Int(portText) else {
                    failures.append("\(host):\(port): an unreadable address")
                    continue
                }
                return .success(.tcp(host: address, port: masterPort))
            case .success(.null), .success(.array):
                failures.append("\(host):\(port): monitors no master named '\(masterName)'")
            case .success(let other):
                failures.append("\(host):\(port): \(other)")
            }
        }
        return .failure(.connectFailed("no Sentinel gave the primary of '\(masterName)': \(failures.joined(separator: "; "))"))
    }
}
