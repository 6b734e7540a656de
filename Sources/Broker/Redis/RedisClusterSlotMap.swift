/// A cluster's slot map as one node described it in its `CLUSTER SLOTS` reply.
struct RedisClusterSlotMap {
    typealias Endpoint = RedisConfiguration.Endpoint

    /// The primary serving each slot; `nil` for a slot no node serves.
    var slots = [Endpoint?](repeating: nil, count: RedisClusterSlot.count)
    /// The primaries, in the order the reply first names them.
    var primaries: [Endpoint] = []
    /// Every node named, primaries and replicas.
    var nodes: Set<Endpoint> = []

    /// Reads a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ...], replica...], ...]`. An
    /// empty host (or `?`) means the node that answered, `asked`.
    init(_ reply: RedisValue, askedAt asked: Endpoint) throws(RedisError) {
        guard let ranges = try reply.throwingServerError().array else { throw .protocolError("CLUSTER SLOTS: not an array") }
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int,
                0 <= start, start <= end, end < RedisClusterSlot.count
            else { throw .protocolError("CLUSTER SLOTS: an unreadable slot range") }
            for (position, entry) in parts[2...].enumerated() {
                guard let fields = entry.array, fields.count >= 2, var host = fields[0].string, let port = fields[1].int else {
                    throw .protocolError("CLUSTER SLOTS: an unreadable node")
                }
                if host.isEmpty || host == "?", case .tcp(let askedHost, _) = asked { host = askedHost }
                let node = Endpoint.tcp(host: host, port: port)
                nodes.insert(node)
                guard position == 0 else { continue }
                if !primaries.contains(node) { primaries.append(node) }
                for slot in start...end { slots[slot] = node }
            }
        }
        guard !primaries.isEmpty else { throw .protocolError("CLUSTER SLOTS: no slot is served") }
    }
}
