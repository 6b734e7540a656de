import Broker
import Testing

@testable import Tern

@Suite("Start-up messages for Redis failures")
struct RedisExplainTests {
    @Test("refused, TLS, not ready: each message says what to do")
    func messages() throws {
        let configuration = try RedisConfiguration(url: "rediss://h:6380")
        let refused = RedisStartup.explain(
            RedisError.connectFailed("h:6380: Connection refused"), configuration, command: "tern")
        #expect(refused == "tern: cannot reach Redis at h:6380: cannot connect to Redis: h:6380: Connection refused. Is redis-server running? (scripts/dev starts one.)")
        let tls = RedisStartup.explain(
            RedisError.notConnected("h:6380: TLS: handshakeFailed(CERTIFICATE_VERIFY_FAILED)"), configuration, command: "tern")
        #expect(tls.hasPrefix("tern: cannot connect to Redis at h:6380 over TLS: "))
        #expect(tls.hasSuffix("Check ca, cert, key and sni in the rediss:// URL."))
        let loading = RedisStartup.explain(
            RedisError.server(RedisServerError(message: "LOADING Redis is loading the dataset in memory")), configuration, command: "tern")
        #expect(loading == "tern: Redis at h:6380 is not ready: Redis error: LOADING Redis is loading the dataset in memory. It usually passes by itself; try again.")
    }
}
