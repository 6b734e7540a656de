import Broker
import TernTesting
import Testing

@Suite("Redis Functions", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct FunctionTests {
    static let library = RedisFunctionLibrary(
        name: "terntest",
        source: """
            redis.register_function('terntest_add', function(keys, args)
              return redis.call('INCRBY', keys[1], args[1])
            end)
            redis.register_function{function_name='terntest_get', callback=function(keys, args)
              return redis.call('GET', keys[1])
            end, flags={'no-writes'}}
            """)

    @Test("a library loads once per version and survives a restart with AOF")
    func loadOnceAndSurviveRestart() async throws {
        let server = try await TestRedis.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server))
        defer { client.close() }
        let key = TestRedis.prefix() + "sum"
        #expect(try await client.load(Self.library) == true)
        #expect(try await client.load(Self.library) == false)
        #expect(try await client.call(Self.library, "terntest_add", keys: [key], arguments: [5]).int == 5)
        #expect(try await client.callReadOnly(Self.library, "terntest_get", keys: [key]).int == 5)
        let version = try await client.send("FCALL_RO", Self.library.versionFunction, 0).string
        #expect(version == Self.library.version)

        await server.stopAndWait(keepingData: true)
        try await server.restart()
        // Loaded from the append-only file: nothing to load, and the data is there too.
        #expect(try await eventually { try await client.load(Self.library) } == false)
        #expect(try await client.call(Self.library, "terntest_add", keys: [key], arguments: [1]).int == 6)
    }

    @Test("a changed library replaces the old version; a lost one is loaded again on first call")
    func replaceAndReload() async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server))
        defer { client.close() }
        let key = TestRedis.prefix() + "n"
        try await client.load(Self.library)
        let changed = RedisFunctionLibrary(
            name: "terntest",
            source: """
                redis.register_function('terntest_add', function(keys, args)
                  return redis.call('INCRBY', keys[1], 2 * args[1])
                end)
                """)
        #expect(changed.version != Self.library.version)
        #expect(try await client.load(changed) == true)
        #expect(try await client.call(changed, "terntest_add", keys: [key], arguments: [5]).int == 10)

        try await client.send("FUNCTION", "FLUSH")
        #expect(try await client.call(Self.library, "terntest_add", keys: [key], arguments: [1]).int == 11)
        #expect(try await client.load(Self.library) == false)
    }
}
