import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TernCore
import TernTesting
import Testing

/// A real Redis with a broker, and the API on it whose live streams last `seconds`.
private func withLiveAPI(
    seconds: Int, _ body: @escaping @Sendable (JobEnvironment, APIContext, any TestClientProtocol) async throws -> Void
) async throws {
    let environment = try await JobEnvironment.start()
    defer { environment.stop() }
    var configuration = APIConfiguration()
    configuration.maxEventStreamSeconds = seconds
    let api = APIContext(broker: environment.broker, registry: environment.registry, configuration: configuration, access: .none) {}
    try await Application(router: buildRouter(api)).test(.router) { http in try await body(environment, api, http) }
}

@Suite("Dashboard live stream on real Redis", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct DashboardLiveRedisTests {
    @Test("/ui/live says changes are pushed, and sends change when a job finishes")
    func pushedChange() async throws {
        try await withLiveAPI(seconds: 4) { environment, api, http in
            _ = try await environment.broker.enqueue([EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions())])
            let job = try #require(try await environment.broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(60)).first)
            async let body = http.execute(uri: "/ui/live", method: .get) { String(buffer: $0.body) }
            // The stream starts the subscription; finish the job once it is in place.
            try await eventually(within: .seconds(20)) { guard api.jobChangesPushed else { throw WaitError("not subscribed yet") } }
            #expect(try await environment.broker.complete(job.lease, result: Data("1".utf8)))
            let text = try await body
            #expect(text.contains(#"event: hello"#))
            #expect(text.contains(#"data: {"pushed":true}"#))
            #expect(text.contains("event: change"))
        }
    }

    @Test("/ui/live sends at most one change a second, however many jobs change")
    func boundedRate() async throws {
        try await withLiveAPI(seconds: 3) { environment, api, http in
            let started = ContinuousClock.now
            async let body = http.execute(uri: "/ui/live", method: .get) { String(buffer: $0.body) }
            try await eventually(within: .seconds(20)) { guard api.jobChangesPushed else { throw WaitError("not subscribed yet") } }
            // 60 jobs finished one by one, each published on its own, while the stream is open.
            _ = try await environment.broker.enqueue((0..<60).map { _ in EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions()) })
            for job in try await environment.broker.claim(queue: .default, limit: 60, worker: "w", lease: .seconds(60)) {
                #expect(try await environment.broker.complete(job.lease, result: Data("1".utf8)))
            }
            let text = try await body
            let changes = text.components(separatedBy: "event: change").count - 1
            let seconds = Double((ContinuousClock.now - started).nanoseconds) / 1e9
            #expect(changes >= 1)
            // The stream was open for at most `seconds`: one change at its start, then one a second.
            #expect(Double(changes) <= seconds + 1, "\(changes) changes in \(seconds) s")
        }
    }
}
