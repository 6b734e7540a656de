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

/// Stamps each job with the API's region, and refuses jobs of task `fail`.
private struct RegionStamp: EnqueueMiddleware {
    struct Refused: Error, CustomStringConvertible {
        let task: String
        var description: String { "task \(task) is switched off here" }
    }

    func enqueue(_ job: inout OutgoingJob) async throws {
        if job.task == "fail" { throw Refused(task: job.task) }
        job.headers["region"] = "eu-1"
    }
}

@Suite("HTTP API: job headers and enqueue middleware")
struct HeadersAPITests {
    private func withAPI(_ test: @escaping @Sendable (any TestClientProtocol, MemoryJobBroker) async throws -> Void) async throws {
        try await withSampleAPI(configure: { $0.middleware.enqueue.append(RegionStamp()) }, test)
    }

    private func post(
        _ client: any TestClientProtocol, _ uri: String, _ text: String, _ status: HTTPResponse.Status
    ) async throws -> [String: Any] {
        try await client.execute(uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: text)) {
            #expect($0.status == status, "\(text): \(String(buffer: $0.body))")
            return try #require(JSONSerialization.jsonObject(with: Data($0.body.readableBytesView)) as? [String: Any])
        }
    }

    @Test("headers are stored with the job and shown; middleware adds its own; bad headers are 422 with a pointer")
    func headers() async throws {
        try await withAPI { client, broker in
            let created = try await post(client, "/v1/jobs", #"{"task":"echo","input":1,"headers":{"tenant":"acme","request-id":"r-17"}}"#, .created)
            let id = try #require(created["id"] as? String)
            let job = try await client.execute(uri: "/v1/jobs/\(id)", method: .get) {
                try #require(JSONSerialization.jsonObject(with: Data($0.body.readableBytesView)) as? [String: Any])
            }
            #expect(job["headers"] as? [String: String] == ["tenant": "acme", "request-id": "r-17", "region": "eu-1"])
            let claimed = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
            #expect(claimed.headers["tenant"] == "acme")

            let long = String(repeating: "v", count: JobHeaders.maxValueBytes + 1)
            for (text, pointer) in [
                (#"{"task":"echo","input":1,"headers":{"Tenant":"x"}}"#, "/headers"),
                (#"{"task":"echo","input":1,"headers":{"tenant":1}}"#, "/headers/tenant"),
                (#"{"task":"echo","input":1,"headers":["tenant"]}"#, "/headers"),
                (#"{"task":"echo","input":1,"headers":{"tenant":"\#(long)"}}"#, "/headers"),
            ] {
                let problem = try await post(client, "/v1/jobs", text, .unprocessableContent)
                #expect((problem["errors"] as? [[String: Any]])?.first?["pointer"] as? String == pointer, "\(text)")
            }
            // 31 headers of the caller's and the middleware's one more fit; 32 of the caller's
            // and the middleware's make 33, refused at /headers with the limit named.
            func many(_ count: Int) -> String {
                "{" + (0..<count).map { #""h\#($0)":"x""# }.joined(separator: ",") + "}"
            }
            _ = try await post(client, "/v1/jobs", #"{"task":"echo","input":1,"headers":\#(many(31))}"#, .created)
            let over = try await post(client, "/v1/jobs", #"{"task":"echo","input":1,"headers":\#(many(32))}"#, .unprocessableContent)
            #expect((over["errors"] as? [[String: Any]])?.first?["message"] as? String == "a job has at most 32 headers, not 33")
        }
    }

    @Test("a job the middleware refuses is 422 enqueue_refused and nothing is made; in a batch, only that job")
    func refused() async throws {
        try await withAPI { client, broker in
            let problem = try await post(client, "/v1/jobs", #"{"task":"fail","input":{"message":"x"}}"#, .unprocessableContent)
            #expect(problem["code"] as? String == "enqueue_refused")
            #expect(problem["detail"] as? String == "the job was refused: task fail is switched off here")
            #expect(try await broker.stats(.default).pending == 0)

            let batch = try await post(
                client, "/v1/jobs/batch", #"{"jobs":[{"task":"echo","input":1},{"task":"fail","input":{"message":"x"}}]}"#, .ok)
            let results = try #require(batch["results"] as? [[String: Any]])
            #expect(results[0]["created"] as? Bool == true)
            let error = try #require(results[1]["error"] as? [String: Any])
            #expect(error["code"] as? String == "enqueue_refused")
            #expect((error["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/jobs/1")
            #expect(try await broker.stats(.default).pending == 1)

            let group = #"{"group":[{"task":"echo","input":1},{"task":"fail","input":{"message":"x"}}]}"#
            let refusedChain = try await post(client, "/v1/workflows", group, .unprocessableContent)
            #expect(refusedChain["code"] as? String == "enqueue_refused")
            #expect(try await broker.stats(.default).pending == 1, "a refused workflow makes none of its jobs")
        }
    }
}
