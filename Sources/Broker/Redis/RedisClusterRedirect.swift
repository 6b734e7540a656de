/// What a cluster node's error reply asks of the client.
enum RedisClusterRedirect: Equatable {
    /// `MOVED <slot> <host:port>`: the slot lives on another node now; the slot map is stale.
    case moved(slot: Int, to: RedisConfiguration.Endpoint)
    /// `ASK <slot> <host:port>`: the slot is migrating and the key is not here; ask the target once,
    /// after `ASKING`.
    case ask(slot: Int, to: RedisConfiguration.Endpoint)
    /// `TRYAGAIN` (a multi-key command during a migration), `CLUSTERDOWN` (no quorum, or a slot
    /// without a node yet) or `LOADING`: try again shortly.
    case retry

    /// The redirect an error reply carries, or `nil` for any other error.
    init?(_ error: RedisServerError) {
        switch error.code {
        case "MOVED", "ASK":
            let parts = error.message.split(separator: " ")
            guard parts.count >= 3, let slot = Int(parts[1]), let colon = parts[2].lastIndex(of: ":"),
                let port = Int(parts[2][parts[2].index(after: colon)...])
            else { return nil }
            var host = String(parts[2][..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            let endpoint = RedisConfiguration.Endpoint.tcp(host: host, port: port)
            self = error.code == "MOVED" ? .moved(slot: slot, to: endpoint) : .ask(slot: slot, to: endpoint)
        case "TRYAGAIN", "CLUSTERDOWN", "LOADING":
            self = .retry
        default:
            return nil
        }
    }

    /// The redirect in the first error reply among `replies` that carries one.
    static func first(in replies: ArraySlice<RedisValue>) -> RedisClusterRedirect? {
        for reply in replies {
            if case .error(let error) = reply, let redirect = RedisClusterRedirect(error) { return redirect }
        }
        return nil
    }
}
