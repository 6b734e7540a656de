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

@Suite("Queue event streams on real Redis", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct QueueEventsRedisTests {
    @Test("GET /v1/queues/{queue}/events: hello, then the queue's ends and retries with their ids, and no other queue's")
    func changes() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var configuration = APIConfiguration()
        configuration.maxEventStreamSeconds = 4
        let api = APIContext(broker: environment.broker, registry: environment.registry, configuration: configuration, access: .none) {}
        let broker = environment.broker
        func request(_ queue: QueueName = .default, attempts: Int = 1) -> EnqueueRequest {
            EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions(queue: queue, maxAttempts: attempts))
        }
        _ = try await broker.enqueue([request(), request(), request(), request(attempts: 3), request(QueueName("other"))])
        try await Application(router: buildRouter(api)).test(.router) { http in
            try await http.execute(uri: "/v1/queues/nosuch/events", method: .get) { #expect($0.status == .notFound) }
            let jobs = try await broker.claim(queue: .default, limit: 4, worker: "w", lease: .seconds(60))
            let other = try #require(try await broker.claim(queue: QueueName("other"), limit: 1, worker: "w", lease: .seconds(60)).first)
            #expect(jobs.count == 4)
            async let body = http.execute(uri: "/v1/queues/default/events", method: .get) { String(buffer: $0.body) }
            // The stream's feed is in place once it has started the subscription.
            try await eventually(within: .seconds(20)) { guard api.jobChangesPushed else { throw WaitError("not subscribed yet") } }
            for job in jobs[0...1] { #expect(try await broker.complete(job.lease, result: Data("1".utf8))) }
            #expect(try await broker.fail(jobs[2].lease, message: "no", retryAfter: nil) == .failed)
            #expect(try await broker.fail(jobs[3].lease, message: "again", retryAfter: .seconds(60)) == .retrying)
            #expect(try await broker.complete(other.lease, result: Data("1".utf8)))
            let text = try await body
            // hello first (pushed or not yet), and hello with pushed true once the subscription is up.
            #expect(text.hasPrefix("event: hello\n"), "\(text)")
            #expect(text.contains("event: hello\ndata: {\"pushed\":true}\n\n"), "\(text)")
            // Each event's name and ids (completions may be merged into one event).
            var seen: [String: [String]] = [:]
            for block in text.components(separatedBy: "\n\n") where block.hasPrefix("event: ") {
                let lines = block.split(separator: "\n")
                guard lines.count == 2, let data = lines[1].split(separator: " ", maxSplits: 1).last,
                    let ids = (try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])?["ids"] as? [String]
                else { continue }
                seen[String(lines[0].dropFirst("event: ".count)), default: []] += ids
            }
            #expect(seen["succeeded"] == [jobs[0].id.rawValue, jobs[1].id.rawValue], "\(text)")
            #expect(seen["failed"] == [jobs[2].id.rawValue], "\(text)")
            #expect(seen["retrying"] == [jobs[3].id.rawValue], "\(text)")
            #expect(!text.contains(other.id.rawValue), "another queue's change")
        }
    }
}
