import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TernCore
import Testing

private func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

private func object(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]) ?? [:]
}

/// Every endpoint's success path on real Redis, with a worker running the jobs, through a token.
@Suite("HTTP API endpoints on real Redis", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct APIEndpointsRedisTests {
    @Test("enqueue, batch, wait, events, cancel, retry, queues, listing, pause, resume, retry-failed, workers, tasks, metrics")
    func successPaths() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let access = AccessPolicy.tokens([.init(secret: "admin-token", grant: TokenGrant(name: "admin", role: .admin))])
        let api = APIContext(
            broker: environment.broker, registry: environment.registry, configuration: APIConfiguration(), access: access
        ) { _ = try await environment.client.send(RedisCommand("PING")) }
        let headers: HTTPFields = [.contentType: "application/json", .authorization: "Bearer admin-token"]
        try await Application(router: buildRouter(api)).test(.router) { http in
            try await environment.withWorker { _ in
                // Enqueue one, wait for its result in one request.
                let id = try await http.execute(uri: "/v1/jobs", method: .post, headers: headers, body: body(#"{"task":"echo","input":{"x":1}}"#)) {
                    #expect($0.status == .created)
                    return object($0)["id"] as? String ?? ""
                }
                let finished = try await http.execute(uri: "/v1/jobs/\(id)?wait=20", method: .get, headers: headers) { object($0) }
                #expect(finished["state"] as? String == "succeeded")
                #expect((finished["result"] as? [String: Any])?["x"] as? Int == 1)
                // Batch: two jobs; the events of one end with the finished job.
                let ids = try await http.execute(
                    uri: "/v1/jobs/batch", method: .post, headers: headers,
                    body: body(#"{"jobs":[{"task":"sleep","input":{"ms":50}},{"task":"echo","input":2}]}"#)
                ) { response in
                    #expect(response.status == .ok)
                    return (object(response)["results"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                }
                #expect(ids.count == 2)
                let events = try await http.execute(uri: "/v1/jobs/\(ids[0])/events", method: .get, headers: headers) { String(buffer: $0.body) }
                #expect(events.contains("event: job\ndata: "))
                #expect(events.contains(#""state":"succeeded""#))
                // A job that fails for good, retried over HTTP, fails again; then retry-failed.
                let failing = try await http.execute(
                    uri: "/v1/jobs", method: .post, headers: headers, body: body(#"{"task":"fail","input":{"message":"no"},"max_attempts":1}"#)
                ) { object($0)["id"] as? String ?? "" }
                _ = try await environment.waitFor(try #require(JobID(failing)), .failed)
                try await http.execute(uri: "/v1/jobs/\(failing)/retry", method: .post, headers: headers) { #expect($0.status == .ok) }
                _ = try await eventually(within: .seconds(20)) {
                    guard let record = try await environment.broker.job(try #require(JobID(failing))), record.state == .failed,
                        record.errors.count == 2
                    else { throw WaitError("waiting for the second failure") }
                    return record
                }
                try await http.execute(uri: "/v1/queues/default/retry-failed", method: .post, headers: headers) {
                    #expect(object($0)["retried"] as? Int == 1)
                }
                // Cancel a long job while it waits behind a pause.
                try await http.execute(uri: "/v1/queues/default/pause", method: .post, headers: headers) { #expect(object($0)["paused"] as? Bool == true) }
                let held = try await http.execute(uri: "/v1/jobs", method: .post, headers: headers, body: body(#"{"task":"sleep","input":{"ms":60000}}"#)) {
                    object($0)["id"] as? String ?? ""
                }
                try await http.execute(uri: "/v1/queues/default/jobs?state=queued", method: .get, headers: headers) { response in
                    let jobs = object(response)["jobs"] as? [[String: Any]] ?? []
                    #expect(jobs.contains { $0["id"] as? String == held })
                }
                try await http.execute(uri: "/v1/jobs/\(held)/cancel", method: .post, headers: headers) { #expect(object($0)["state"] as? String == "cancelled") }
                try await http.execute(uri: "/v1/queues/default/resume", method: .post, headers: headers) { #expect(object($0)["paused"] as? Bool == false) }
                try await http.execute(uri: "/v1/queues/default", method: .get, headers: headers) { response in
                    #expect(object(response)["cancelled"] as? Int == 1)
                    #expect((object(response)["succeeded"] as? Int ?? 0) >= 3)
                }
                try await http.execute(uri: "/v1/queues", method: .get, headers: headers) {
                    #expect((object($0)["queues"] as? [[String: Any]])?.first?["queue"] as? String == "default")
                }
                try await http.execute(uri: "/v1/workers", method: .get, headers: headers) { response in
                    let workers = object(response)["workers"] as? [[String: Any]] ?? []
                    #expect(workers.count == 1)
                    #expect(workers.first?["queues"] as? [String] == ["default"])
                }
                try await http.execute(uri: "/v1/tasks", method: .get, headers: headers) {
                    #expect((object($0)["tasks"] as? [[String: Any]])?.contains { $0["name"] as? String == "echo" } == true)
                }
                try await http.execute(uri: "/metrics", method: .get, headers: headers) {
                    #expect(String(buffer: $0.body).contains(#"tern_api_jobs_enqueued_total{task="echo"} 2"#))
                }
            }
        }
    }
}
