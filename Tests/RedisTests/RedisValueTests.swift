import Broker
import TernTesting
import Testing

@Suite("Values round-trip and replies map to their types", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct RedisValueTests {
    @Test("every byte value, empty and 1 MiB values round-trip unchanged")
    func binaryRoundTrip() async throws {
        let server = try await TestRedis.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server))
        defer { client.close() }
        let key = TestRedis.prefix() + "bytes"
        let allBytes = (0...255).map(UInt8.init)
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for value in [allBytes, [], big, Array("héllo wörld ✓".utf8), [0, 13, 10, 0]] {
            try await client.send(RedisCommand("SET", key, value))
            let reply = try await client.send(RedisCommand("GET", key))
            #expect(reply == .bulkString(value))
            #expect(try await client.send(RedisCommand("STRLEN", key)) == .integer(value.count))
        }
        try await client.send(RedisCommand("SET", key, "text ✓"))
        #expect(try await client.send(RedisCommand("GET", key)).string == "text ✓")
    }

    @Test("integers, arrays, nil, statuses and nested errors map to RedisValue")
    func replyTypes() async throws {
        let server = try await TestRedis.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server))
        defer { client.close() }
        let prefix = TestRedis.prefix()
        #expect(try await client.send("SET", prefix + "s", "v") == .simpleString("OK"))
        #expect(try await client.send("INCRBY", prefix + "n", 41) == .integer(41))
        #expect(try await client.send("INCR", prefix + "n").int == 42)
        #expect(try await client.send("INCRBY", prefix + "neg", -7) == .integer(-7))
        #expect(try await client.send("GET", prefix + "missing") == .null)
        #expect(try await client.send("RPUSH", prefix + "l", "a", "b", "c") == .integer(3))
        let list = try await client.send("LRANGE", prefix + "l", 0, -1)
        #expect(list == .array([.bulkString(Array("a".utf8)), .bulkString(Array("b".utf8)), .bulkString(Array("c".utf8))]))
        #expect(try await client.send("LRANGE", prefix + "none", 0, -1) == .array([]))
        #expect(try await client.send("INCRBYFLOAT", prefix + "f", 1.5).string == "1.5")
        let nested = try await client.send("EVAL", "return {1, 'two', redis.error_reply('MYCODE nested'), false}", 0)
        #expect(
            nested
                == .array([
                    .integer(1), .bulkString(Array("two".utf8)),
                    .error(RedisServerError(message: "MYCODE nested")), .null,
                ]))
    }

    @Test("server errors surface typed, with Redis's error code")
    func serverErrorCodes() async throws {
        let server = try await TestRedis.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server))
        defer { client.close() }
        let key = TestRedis.prefix() + "string"
        try await client.send("SET", key, "x")
        try await expectServerError("WRONGTYPE") { try await client.send("LPUSH", key, "y") }
        try await expectServerError("ERR") { try await client.send("INCR", key) }
        try await expectServerError("ERR") { try await client.send("NOSUCHCOMMAND") }
        try await expectServerError("NOSCRIPT") {
            try await client.send("EVALSHA", String(repeating: "0", count: 40), 0)
        }
        try await client.send("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+get")
        var limited = try TestRedis.configuration(server)
        limited.username = "reader"
        limited.password = "pw"
        let reader = RedisClient(configuration: limited)
        defer { reader.close() }
        try await expectServerError("NOPERM") { try await reader.send("SET", key, "z") }
        try await client.send("CONFIG", "SET", "maxmemory", "1")
        try await expectServerError("OOM") { try await client.send("SET", key + "2", "x") }
        try await client.send("CONFIG", "SET", "maxmemory", "0")
        // The connection is still in step after all those errors.
        #expect(try await client.send("GET", key).string == "x")
    }

    @Test("a pipeline returns one reply per command, error replies in place")
    func pipelineWithErrors() async throws {
        let server = try await TestRedis.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server))
        defer { client.close() }
        let key = TestRedis.prefix() + "k"
        let replies = try await client.pipeline([
            RedisCommand("SET", key, "v"), RedisCommand("LPUSH", key, "x"), RedisCommand("GET", key),
        ])
        #expect(replies.count == 3)
        #expect(replies[0] == .simpleString("OK"))
        if case .error(let error) = replies[1] { #expect(error.code == "WRONGTYPE") } else {
            Issue.record("expected an error reply, got \(replies[1])")
        }
        #expect(replies[2].string == "v")
        #expect(try await client.pipeline([]) == [])
    }
}

func expectServerError(_ code: String, _ body: () async throws -> Void) async throws {
    do {
        try await body()
        Issue.record("expected a \(code) error, got success")
    } catch RedisError.server(let error) {
        #expect(error.code == code, "message: \(error.message)")
    }
}
