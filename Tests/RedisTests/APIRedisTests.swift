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
    @Test("refused requests write nothing to Redis: unknown tasks, bad queue names, inputs that do not fit, a batch of only such jobs")
    func refusedRequestsWriteNothing() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let api = APIContext(broker: environment.broker, registry: environment.registry, configuration: APIConfiguration(), access: .none) {}
        let app = Application(router: buildRouter(api))
        func keys() async throws -> [String] {
            try await environment.client.send(RedisCommand("KEYS", "*")).array?.compactMap(\.string).sorted() ?? []
        }
        let before = try await keys()
        let requests: [(HTTPRequest.Method, String, String, HTTPResponse.Status)] = [
            (.post, "/v1/jobs", #"{"task":"nope","input":{}}"#, .unprocessableContent),
            (.post, "/v1/jobs", #"{"task":"sleep","input":{"ms":"long"}}"#, .unprocessableContent),
            (.post, "/v1/jobs", #"{"task":"echo","input":1,"queue":"Bad:Queue{x}"}"#, .unprocessableContent),
            (.post, "/v1/jobs", #"{"task":"echo","input":1,"queue":"{tern}:x"}"#, .unprocessableContent),
            (.post, "/v1/jobs", #"{"task":"echo","input":1,"queue":"\#(String(repeating: "q", count: 65))"}"#, .unprocessableContent),
            (.post, "/v1/jobs", #"{"task":"echo","input":1,"queue":""}"#, .unprocessableContent),
            (.post, "/v1/jobs/batch", #"{"jobs":[{"task":"nope","input":1},{"task":"echo","input":1,"queue":"Bad:Q"}]}"#, .ok),
            (.post, "/v1/workflows", #"{"chain":[{"task":"echo","input":1},{"task":"nope"}]}"#, .unprocessableContent),
            (.put, "/v1/schedules/nightly", #"{"task":"nope","input":{},"every_seconds":60}"#, .unprocessableContent),
            (.post, "/v1/queues/nosuch/pause", "", .notFound),
            (.get, "/v1/queues/Bad:Q/jobs", "", .unprocessableContent),
        ]
        try await app.test(.router) { http in
            for (method, uri, text, status) in requests {
                let headers: HTTPFields = text.isEmpty ? [:] : [.contentType: "application/json"]
                try await http.execute(uri: uri, method: method, headers: headers, body: ByteBuffer(string: text)) { response in
                    #expect(response.status == status, "\(method) \(uri) \(text): \(String(buffer: response.body))")
                }
            }
        }
        #expect(try await keys() == before)
    }

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

extension HeavyProcessTests {
    /// Timed: in the serial stage, so that the parallel tests' load does not decide it.
    @Suite("Pushed waits on real Redis", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct PushedWaitTests {
        @Test("?wait= answers as soon as Redis publishes the job's end, and keeps answering across a Redis restart")
        func pushedWait() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let api = APIContext(broker: environment.broker, registry: environment.registry, configuration: APIConfiguration(), access: .none) {}
            let app = Application(router: buildRouter(api))
            try await app.test(.router) { http in
                /// Enqueues and claims an echo job, waits on it over HTTP, completes it after `after`;
                /// returns the state the wait answered and how long after the completion it came.
                func waitedFinish(after: Duration) async throws -> (String?, Duration) {
                    let id = try await environment.broker.enqueue([
                        EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions())
                    ])[0].id
                    let job = try #require(try await environment.broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(60)).first)
                    #expect(job.id == id)
                    async let answer = http.execute(uri: "/v1/jobs/\(id)?wait=10", method: .get) { response in
                        let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                        return (object?["state"] as? String, ContinuousClock.now)
                    }
                    // Long enough for a polling waiter to be between reads of 250 ms; a pushed one answers at once.
                    try await Task.sleep(for: after)
                    let finished = ContinuousClock.now
                    #expect(try await environment.broker.complete(job.lease, result: Data("1".utf8)))
                    let (state, answered) = try await answer
                    return (state, answered - finished)
                }
                // The first waiter starts the subscription.
                #expect(!api.jobChangesPushed)
                _ = try await waitedFinish(after: .milliseconds(50))
                try await eventually(within: .seconds(20)) { guard api.jobChangesPushed else { throw WaitError("not subscribed yet") } }
                // 600 ms into a wait, a polling waiter reads every 250 ms (125 ms late on average); a
                // pushed one answers at once. The median of 5 keeps one slow wake-up of a loaded machine
                // from deciding.
                var latencies: [Duration] = []
                for _ in 0..<5 {
                    let (state, latency) = try await waitedFinish(after: .milliseconds(600))
                    #expect(state == "succeeded")
                    latencies.append(latency)
                }
                recordTiming("?wait= answer after the job's end (pushed), median of 5", latencies.sorted()[2], bound: .milliseconds(100))
                // A Redis restart breaks the subscription: waiters poll until it is back, and no answer is lost.
                await environment.server.kill()
                try await environment.server.restart()
                try await eventually(within: .seconds(20)) { _ = try await environment.client.send(RedisCommand("PING")) }
                let (state, latency) = try await waitedFinish(after: .milliseconds(50))
                #expect(state == "succeeded")
                recordTiming("?wait= answer right after a Redis restart", latency, bound: .seconds(5))
                try await eventually(within: .seconds(20)) { guard api.jobChangesPushed else { throw WaitError("not subscribed again yet") } }
                #expect(try await waitedFinish(after: .milliseconds(50)).0 == "succeeded")
            }
        }
    }
}
