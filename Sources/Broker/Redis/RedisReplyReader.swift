import CHiredis

/// hiredis's protocol reader on its own, for transports that move the bytes themselves: feed it
/// what arrived, then take the complete replies.
final class RedisReplyReader {
    private let reader: UnsafeMutablePointer<redisReader>

    init() {
        guard let reader = redisReaderCreate() else { fatalError("hiredis cannot allocate a reader: out of memory") }
        self.reader = reader
    }

    deinit { redisReaderFree(reader) }

    /// Adds bytes read from the connection.
    func feed(_ bytes: UnsafeRawBufferPointer) throws(RedisError) {
        guard !bytes.isEmpty else { return }
        let status = redisReaderFeed(reader, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
        if status != REDIS_OK { throw .protocolError(errorText) }
    }

    /// The next complete reply, or `nil` until more bytes arrive.
    func next() throws(RedisError) -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else { throw .protocolError(errorText) }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return RedisReply.value(of: raw.assumingMemoryBound(to: redisReply.self))
    }

    private var errorText: String {
        let text = withUnsafeBytes(of: reader.pointee.errstr) { buffer in
            String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "unreadable reply" : text
    }
}
