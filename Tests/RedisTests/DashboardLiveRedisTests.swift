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

@Suite("Dashboard live stream on real Redis", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct DashboardLiveRedisTests {
    @Test("/ui/live says changes are pushed, and sends change when a job finishes")
    func pushedChange() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var configuration = APIConfiguration()
        configuration.maxEventStreamSeconds = 4
        let api = APIContext(broker: environment.broker, registry: environment.registry, configuration: configuration, access: .none) {}
        try await Application(router: buildRouter(api)).test(.router) { http in
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
}
