import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Tasks
import TernCore
import Testing

@Suite("HTTP API: limits")
struct LimitAPITests {
    private func withAPI(_ test: @escaping @Sendable (any TestClientProtocol, MemoryJobBroker) async throws -> Void) async throws {
        try await withSampleAPI(test)
    }

    private func call(
        _ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil,
        _ status: HTTPResponse.Status = .ok
    ) async throws -> [String: Any] {
        try await client.execute(
            uri: uri, method: method, headers: [.contentType: "application/json"], body: body.map { ByteBuffer(string: $0) }
        ) { response in
            #expect(response.status == status, "\(method) \(uri) \(body ?? ""): \(String(buffer: response.body))")
            return (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]) ?? [:]
        }
    }

    @Test("PUT sets an operator's limit per scope; jobs over it are held back and shown; DELETE brings the declared one back")
    func routes() async throws {
        try await withAPI { client, broker in
            try await broker.setLimit(.some(.rate(5, per: .seconds(1))), scope: .task("sleep"), queue: .default, declared: true)
            var answer = try await call(client, .put, "/v1/queues/default/limits", #"{"scope":"key","task":"echo","concurrency":1}"#)
            let limits = try #require(answer["limits"] as? [[String: Any]])
            #expect(limits.count == 2)
            let key = try #require(limits.first { $0["scope"] as? String == "key" })
            #expect(key["task"] as? String == "echo" && key["declared"] is NSNull)
            #expect((key["effective"] as? [String: Any])?["concurrency"] as? Int == 1)

            // Two jobs of one limit key: one runs, the other is held back and says so.
            for _ in 0..<2 { _ = try await call(client, .post, "/v1/jobs", #"{"task":"echo","input":1,"limit_key":"acme"}"#, .created) }
            let claimed = try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30))
            #expect(claimed.count == 1)
            answer = try await call(client, .get, "/v1/queues/default")
            #expect(answer["throttled"] as? Int == 1 && (answer["limits"] as? [Any])?.count == 2)
            let held = try #require(try await broker.jobs(queue: .default, state: .queued, cursor: nil, limit: 10).jobs.first)
            let job = try await call(client, .get, "/v1/jobs/\(held.id.rawValue)")
            #expect(job["throttled"] as? Bool == true && job["limit_key"] as? String == "acme" && job["state"] as? String == "queued")

            // "none" lifts the declared limit; DELETE restores it.
            answer = try await call(client, .put, "/v1/queues/default/limits", #"{"scope":"task","task":"sleep","none":true}"#)
            let sleep = try #require((answer["limits"] as? [[String: Any]])?.first { $0["task"] as? String == "sleep" })
            #expect(sleep["set"] as? String == "none" && sleep["effective"] is NSNull)
            answer = try await call(client, .delete, "/v1/queues/default/limits?scope=task&task=sleep")
            let restored = try #require((answer["limits"] as? [[String: Any]])?.first { $0["task"] as? String == "sleep" })
            #expect(((restored["effective"] as? [String: Any])?["rate"] as? [String: Any])?["count"] as? Int == 5)
            answer = try await call(client, .delete, "/v1/queues/default/limits?scope=task&task=sleep&declared=true")
            #expect((answer["limits"] as? [[String: Any]])?.contains { $0["task"] as? String == "sleep" } == false)
        }
    }

    @Test("a bad limit or scope is 422 invalid_limit with a pointer; limit_key is checked")
    func refusals() async throws {
        try await withAPI { client, _ in
            for (body, pointer) in [
                (#"{"scope":"task","rate":{"count":1,"per_ms":1000}}"#, "/task"),
                (#"{"scope":"everything","concurrency":1}"#, "/scope"),
                (#"{"scope":"queue","rate":{"count":0,"per_ms":1000}}"#, "/rate"),
                (#"{"scope":"queue","concurrency":1.5}"#, "/concurrency"),
                (#"{"scope":"queue","concurrency":2,"burst":3}"#, ""),
                (#"{"scope":"queue"}"#, ""),
                (#"{"scope":"queue","none":true,"concurrency":1}"#, "/none"),
                (#"{"scope":"queue","concurrency":1,"extra":1}"#, "/extra"),
            ] {
                let problem = try await call(client, .put, "/v1/queues/default/limits", body, .unprocessableContent)
                #expect(problem["code"] as? String == "invalid_limit", "\(body)")
                #expect((problem["errors"] as? [[String: Any]])?.first?["pointer"] as? String == pointer, "\(body)")
            }
            let problem = try await call(client, .post, "/v1/jobs", #"{"task":"echo","input":1,"limit_key":""}"#, .unprocessableContent)
            #expect((problem["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/limit_key")
        }
    }
}
