import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Tasks
import TernCore
import TernTesting
import Testing

@Suite("HTTP API on real Redis", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct APIRedisTests {
    @Test("a job enqueued over HTTP runs; with Redis down every answer is a fast 503 with Retry-After, and it recovers")
    func redisOutage() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var redisConfiguration = try TestRedis.configuration(environment.server, commandTimeout: .seconds(1))
        redisConfiguration.connectTimeout = .milliseconds(500)
        let client = RedisClient(configuration: redisConfiguration)
        defer { client.close() }
        let broker = try RedisJobBroker(client: client, prefix: environment.broker.keys.prefix)
        let api = APIContext(broker: broker, registry: environment.registry, configuration: APIConfiguration(), access: .none) {
            _ = try await client.send(RedisCommand("PING"))
        }
        let app = Application(router: buildRouter(api))
        try await app.test(.router) { http in
            let id = try await environment.withWorker { _ in
                let id = try await http.execute(
                    uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: #"{"task":"echo","input":{"via":"http"}}"#)
                ) { response in
                    #expect(response.status == .created)
                    let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                    return try #require(object?["id"] as? String)
                }
                _ = try await environment.waitFor(try #require(JobID(id)), .succeeded)
                return id
            }
            try await http.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect(object?["state"] as? String == "succeeded")
                #expect((object?["result"] as? [String: Any])?["via"] as? String == "http")
            }

            await environment.server.kill()
            for (uri, method) in [("/readyz", HTTPRequest.Method.get), ("/v1/jobs/\(id)", .get), ("/v1/queues", .get)] {
                let started = ContinuousClock.now
                try await http.execute(uri: uri, method: method) { response in
                    #expect(response.status == .serviceUnavailable, "\(uri)")
                    #expect(response.headers[.retryAfter] == "1")
                }
                recordTiming("a 503 with Redis down (1 s command timeout)", ContinuousClock.now - started, bound: .seconds(5))
            }
            try await http.execute(
                uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"task":"echo","input":1}"#)
            ) { response in
                #expect(response.status == .serviceUnavailable)
            }

            try await environment.server.restart()
            try await eventually {
                try await http.execute(uri: "/readyz", method: .get) { response in
                    guard response.status == .ok else { throw WaitError("not ready yet") }
                }
            }
        }
    }
}
