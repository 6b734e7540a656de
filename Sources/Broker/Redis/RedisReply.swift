import CHiredis

/// Converts hiredis replies into ``RedisValue``: the one place that reads a `redisReply`.
enum RedisReply {
    /// Converts a reply tree; the caller frees it with `freeReplyObject` right after.
    static func value(of reply: UnsafePointer<redisReply>) -> RedisValue {
        let node = reply.pointee
        switch node.type {
        case REDIS_REPLY_STRING:
            return .bulkString(bytes(node))
        case REDIS_REPLY_INTEGER:
            return .integer(Int(node.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_STATUS:
            return .simpleString(String(decoding: bytes(node), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(RedisServerError(message: String(decoding: bytes(node), as: UTF8.self)))
        case REDIS_REPLY_ARRAY:
            guard let elements = node.element else { return .array([]) }
            var values: [RedisValue] = []
            values.reserveCapacity(node.elements)
            for index in 0..<node.elements {
                values.append(elements[index].map { value(of: $0) } ?? .null)
            }
            return .array(values)
        default:
            return .error(RedisServerError(message: "ERR unknown reply type \(node.type)"))
        }
    }

    private static func bytes(_ node: redisReply) -> [UInt8] {
        guard let text = node.str, node.len > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: text, count: node.len))
    }
}
