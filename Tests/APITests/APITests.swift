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

/// The API over the memory broker, driven through Hummingbird's router test client.
private func withAPI(_ test: @escaping @Sendable (any TestClientProtocol, MemoryJobBroker) async throws -> Void) async throws {
    let broker = MemoryJobBroker()
    var registry = TaskRegistry()
    try SampleTasks.register(in: &registry, includingTestTasks: false)
    var configuration = APIConfiguration()
    configuration.maxBodyBytes = 4096
    let api = APIContext(broker: broker, registry: registry, configuration: configuration, access: .none, checkReady: {})
    let app = Application(router: buildRouter(api))
    try await app.test(.router) { client in try await test(client, broker) }
}

private func json(_ response: TestResponse) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
}

private let jsonHeaders: HTTPFields = [.contentType: "application/json"]

private func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

@Suite("HTTP API")
struct APITests {
    @Test("POST /v1/jobs enqueues a job; GET /v1/jobs/{id} shows it; repeats with one Idempotency-Key map to it")
    func enqueueAndGet() async throws {
        try await withAPI { client, broker in
            var headers = jsonHeaders
            headers[HTTPField.Name("Idempotency-Key")!] = "order-1"
            let created = try await client.execute(
                uri: "/v1/jobs", method: .post, headers: headers,
                body: body(#"{"task":"echo","input":{"n":1},"priority":7}"#)) { response in
                    #expect(response.status == .created)
                    return try json(response)
                }
            let id = try #require(created["id"] as? String)
            #expect(created["state"] as? String == "queued")
            #expect(created["created"] as? Bool == true)
            try await client.execute(
                uri: "/v1/jobs", method: .post, headers: headers, body: body(#"{"priority":7,"input":{"n":1.0},"task":"echo"}"#)
            ) { response in
                #expect(response.status == .ok)
                let object = try json(response)
                #expect(object["id"] as? String == id)
            }
            // The key with another request: refused, naming the key's job; nothing enqueued.
            for other in [
                #"{"task":"echo","input":{"n":2},"priority":7}"#, #"{"task":"echo","input":{"n":1}}"#,
                #"{"task":"sleep","input":{"ms":1},"priority":7}"#, #"{"task":"echo","input":{"n":1},"priority":7,"queue":"other"}"#,
            ] {
                try await client.execute(uri: "/v1/jobs", method: .post, headers: headers, body: body(other)) { response in
                    #expect(response.status == .unprocessableContent, "\(other)")
                    let problem = try json(response)
                    #expect(problem["code"] as? String == "idempotency_key_reused")
                    #expect(problem["job"] as? String == id)
                    #expect((problem["detail"] as? String)?.contains("order-1") == true)
                    #expect((problem["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/idempotency_key")
                }
            }
            #expect(try await broker.stats("other").pending == 0)
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                #expect(response.status == .ok)
                let job = try json(response)
                #expect(job["task"] as? String == "echo")
                #expect(job["queue"] as? String == "default")
                #expect(job["state"] as? String == "queued")
                #expect(job["priority"] as? Int == 7)
                #expect((job["input"] as? [String: Any])?["n"] as? Int == 1)
                #expect(job["attempts"] as? Int == 0)
            }
            #expect(try await broker.stats(.default).pending == 1)
        }
    }

    @Test("a finished job shows its result; a failed one its error")
    func results() async throws {
        try await withAPI { client, broker in
            let id = try await client.execute(
                uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(#"{"task":"echo","input":[1,"two"]}"#)
            ) { try json($0)["id"] as? String }
            let job = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
            #expect(job.id.rawValue == id)
            #expect(try await broker.complete(job.lease, result: job.input))
            try await client.execute(uri: "/v1/jobs/\(id!)", method: .get) { response in
                let record = try json(response)
                #expect(record["state"] as? String == "succeeded")
                let result = try #require(record["result"] as? [Any])
                #expect(result.count == 2)
                #expect(result[1] as? String == "two")
            }
        }
    }

    @Test("POST /v1/jobs/batch validates each job on its own and enqueues the valid ones together")
    func batch() async throws {
        try await withAPI { client, broker in
            let text = #"""
                {"jobs": [
                  {"task": "echo", "input": 1, "idempotency_key": "k1"},
                  {"task": "sleep", "input": {"ms": "x"}},
                  {"task": "echo", "input": 2, "queue": "other"},
                  {"task": "echo", "input": 1, "idempotency_key": "k1"},
                  7,
                  {"task": "echo", "input": 5, "idempotency_key": "k1"}
                ]}
                """#
            try await client.execute(uri: "/v1/jobs/batch", method: .post, headers: jsonHeaders, body: body(text)) { response in
                #expect(response.status == .ok)
                let object = try json(response)
                #expect(object["enqueued"] as? Int == 3)
                #expect(object["rejected"] as? Int == 3)
                let results = try #require(object["results"] as? [[String: Any]])
                #expect(results.count == 6)
                let reused = try #require(results[5]["error"] as? [String: Any])
                #expect(reused["code"] as? String == "idempotency_key_reused" && reused["job"] as? String == results[0]["id"] as? String)
                #expect((reused["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/jobs/5/idempotency_key")
                #expect(results[0]["created"] as? Bool == true)
                let pointers = ((results[1]["error"] as? [String: Any])?["errors"] as? [[String: Any]])?.compactMap { $0["pointer"] as? String }
                #expect(pointers == ["/jobs/1/input/ms"])
                #expect((results[2]["id"] as? String)?.hasSuffix(".other") == true)
                #expect(results[3]["id"] as? String == results[0]["id"] as? String)
                #expect(results[3]["created"] as? Bool == false)
                #expect((results[4]["error"] as? [String: Any])?["code"] as? String == "invalid_request")
            }
            #expect(try await broker.stats(.default).pending == 1)
            #expect(try await broker.stats("other").pending == 1)
            for bad in [#"{"jobs": []}"#, #"{"jobs": {}}"#, #"{"items": [1]}"#] {
                try await client.execute(uri: "/v1/jobs/batch", method: .post, headers: jsonHeaders, body: body(bad)) { response in
                    #expect(response.status == .unprocessableContent)
                }
            }
        }
    }

    @Test("?wait= answers as soon as the job finishes, or with its current state when the wait ends")
    func longPoll() async throws {
        try await withAPI { client, broker in
            let id = try await client.execute(
                uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(#"{"task":"echo","input":"later"}"#)
            ) { try json($0)["id"] as? String }
            let started = ContinuousClock.now
            try await client.execute(uri: "/v1/jobs/\(id!)?wait=0.3", method: .get) { response in
                let object = try json(response)
                #expect(object["state"] as? String == "queued")
            }
            #expect(ContinuousClock.now - started >= .milliseconds(250))
            async let finishing: Void = {
                try await Task.sleep(for: .milliseconds(200))
                let job = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
                _ = try await broker.complete(job.lease, result: job.input)
            }()
            let waitStarted = ContinuousClock.now
            try await client.execute(uri: "/v1/jobs/\(id!)?wait=20", method: .get) { response in
                let object = try json(response)
                #expect(object["state"] as? String == "succeeded")
                #expect(object["result"] as? String == "later")
            }
            #expect(ContinuousClock.now - waitStarted < .seconds(10))
            try await finishing
            try await client.execute(uri: "/v1/jobs/\(id!)?wait=soon", method: .get) { #expect($0.status == .badRequest) }
        }
    }

    @Test("bad requests get their answers as problem+json, and nothing is enqueued", arguments: [
        (#"{"task":"echo","input":1"#, 400, "malformed_json"),
        ("", 400, "empty_body"),
        ("[1,2]", 422, "invalid_request"),
        (#"{"task":"nope","input":{}}"#, 422, "unknown_task"),
        (#"{"task":"sleep","input":{"ms":"long"}}"#, 422, "invalid_request"),
        (#"{"task":"sleep","input":{}}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"queue":"Bad:Queue{x}"}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"priority":12}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"priority":true}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"surprise":1}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"delay_ms":5,"run_at_ms":5}"#, 422, "invalid_request"),
        (#"{"input":1}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"task":"echo"}"#, 400, "duplicate_key"),
        (#"{"task":"echo","input":1,"queue":"a\u0000b"}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"queue":"{tern}:x"}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"queue":"\#(String(repeating: "q", count: 65))"}"#, 422, "invalid_request"),
        (#"{"task":"sleep","input":{"ms":1e300}}"#, 422, "invalid_request"),
        (#"{"task":"sleep","input":{"ms":1e400}}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"priority":123456789012345678901234567890}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"max_attempts":1e300}"#, 422, "invalid_request"),
        (#"{"task":"echo","input":1,"run_at_ms":253402300800000}"#, 422, "invalid_request"),
        ("{\"task\":\"echo\",\"input\":" + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}", 422, "invalid_request"),
    ])
    func badRequests(text: String, status: Int, code: String) async throws {
        try await withAPI { client, broker in
            try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(text)) { response in
                #expect(Int(response.status.code) == status)
                #expect(response.headers[.contentType] == "application/problem+json")
                let object = try json(response)
                #expect(object["code"] as? String == code)
            }
            #expect(try await broker.stats(.default).pending == 0)
            #expect(try await broker.queues().isEmpty)
        }
    }

    @Test("a body that is not UTF-8 is a 400 malformed_json")
    func invalidUTF8() async throws {
        try await withAPI { client, broker in
            let bytes = Array(#"{"task":"echo","input":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8)
            try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: ByteBuffer(bytes: bytes)) { response in
                #expect(response.status == .badRequest)
                let object = try json(response)
                #expect(object["code"] as? String == "malformed_json")
            }
            #expect(try await broker.queues().isEmpty)
        }
    }

    @Test("unique_key and unique: a held key answers its job (200, unique: duplicate or debounced); bad values are 422")
    func uniqueJobs() async throws {
        try await withAPI { client, _ in
            func post(_ text: String, _ status: HTTPResponse.Status) async throws -> [String: Any] {
                try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(text)) { response in
                    #expect(response.status == status, "\(text)")
                    return try json(response)
                }
            }
            let first = try await post(#"{"task":"echo","input":{"n":1},"unique_key":"customer-1"}"#, .created)
            let id = try #require(first["id"] as? String)
            #expect(first["unique"] == nil)
            let again = try await post(#"{"task":"echo","input":{"n":2},"unique_key":"customer-1"}"#, .ok)
            #expect(again["id"] as? String == id && again["created"] as? Bool == false && again["unique"] as? String == "duplicate")
            #expect(again["state"] as? String == "queued")
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                let unique = try #require(try json(response)["unique"] as? [String: Any])
                #expect(unique["mode"] as? String == "while_active")
                #expect(unique["key"] as? String == UniquePolicy.key(task: "echo", explicit: "customer-1"))
            }

            let debounce = #"{"task":"echo","input":{"n":N,"page":P},"unique":{"mode":"debounce","window_ms":60000,"key_fields":["n"]}}"#
            let scheduled = try await post(debounce.replacingOccurrences(of: "N", with: "5").replacingOccurrences(of: "P", with: "1"), .created)
            #expect(scheduled["state"] as? String == "scheduled")
            let debounced = try await post(debounce.replacingOccurrences(of: "N", with: "5").replacingOccurrences(of: "P", with: "2"), .ok)
            #expect(debounced["id"] as? String == scheduled["id"] as? String && debounced["unique"] as? String == "debounced")

            for (text, pointer) in [
                (#"{"task":"echo","input":1,"unique":{"mode":"until"}}"#, "/unique/mode"),
                (#"{"task":"echo","input":1,"unique":{"mode":"until","window_ms":0}}"#, "/unique/window_ms"),
                (#"{"task":"echo","input":1,"unique":{"mode":"while_active","ttl":3}}"#, "/unique/ttl"),
                (#"{"task":"echo","input":1,"unique":{"mode":"while_active","key_fields":[1]}}"#, "/unique/key_fields/0"),
                (#"{"task":"echo","input":1,"unique":"yes"}"#, "/unique"),
                (#"{"task":"echo","input":1,"unique_key":""}"#, "/unique_key"),
            ] {
                let problem = try await post(text, .unprocessableContent)
                #expect((problem["errors"] as? [[String: Any]])?.first?["pointer"] as? String == pointer, "\(text)")
            }

            let batch = #"{"jobs":[{"task":"echo","input":1,"unique_key":"b"},{"task":"echo","input":2,"unique_key":"b"}]}"#
            try await client.execute(uri: "/v1/jobs/batch", method: .post, headers: jsonHeaders, body: body(batch)) { response in
                let results = try #require(try json(response)["results"] as? [[String: Any]])
                #expect(results[0]["created"] as? Bool == true && results[1]["created"] as? Bool == false)
                #expect(results[1]["unique"] as? String == "duplicate" && results[1]["id"] as? String == results[0]["id"] as? String)
            }
        }
    }

    @Test("422 answers name each problem by JSON pointer")
    func pointers() async throws {
        try await withAPI { client, _ in
            let text = #"{"task":"sleep","input":{"ms":"x"},"priority":99,"extra":true}"#
            try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(text)) { response in
                #expect(response.status == .unprocessableContent)
                let errors = try #require(try json(response)["errors"] as? [[String: Any]])
                let pointers = Set(errors.compactMap { $0["pointer"] as? String })
                #expect(pointers == ["/extra", "/priority", "/input/ms"])
            }
        }
    }

    @Test("wrong content type is 415; a body over the limit is 413")
    func limits() async throws {
        try await withAPI { client, _ in
            try await client.execute(uri: "/v1/jobs", method: .post, headers: [.contentType: "text/plain"], body: body("{}")) { response in
                #expect(response.status == .unsupportedMediaType)
            }
            let big = #"{"task":"echo","input":""# + String(repeating: "x", count: 10_000) + #""}"#
            try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(big)) { response in
                #expect(response.status == .contentTooLarge)
                let object = try json(response)
                #expect(object["code"] as? String == "body_too_large")
            }
        }
    }

    @Test("unknown and malformed job ids are 404; cancel answers the state after the call")
    func notFoundAndCancel() async throws {
        try await withAPI { client, _ in
            try await client.execute(uri: "/v1/jobs/nope", method: .get) { #expect($0.status == .notFound) }
            let unknown = JobID.generate(queue: .default).rawValue
            try await client.execute(uri: "/v1/jobs/\(unknown)", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/jobs/\(unknown)/cancel", method: .post) { #expect($0.status == .notFound) }
            let id = try await client.execute(
                uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(#"{"task":"echo","input":1,"delay_ms":60000}"#)
            ) { try json($0)["id"] as? String }
            try await client.execute(uri: "/v1/jobs/\(id!)/cancel", method: .post) { response in
                #expect(response.status == .ok)
                let object = try json(response)
                #expect(object["state"] as? String == "cancelled")
            }
        }
    }

    @Test("list requests: a page size or a span beyond its bounds is clamped, one that is not an integer is a 400")
    func listBounds() async throws {
        try await withAPI { client, _ in
            for index in 0..<101 {
                _ = try await client.execute(
                    uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(#"{"task":"echo","input":\#(index)}"#))
            }
            for (limit, count) in [("100000", 100), ("0", 1), ("-5", 1), ("", 20)] {
                let query = limit.isEmpty ? "" : "&limit=\(limit)"
                try await client.execute(uri: "/v1/queues/default/jobs?state=queued\(query)", method: .get) { response in
                    #expect(response.status == .ok)
                    let page = try json(response)
                    #expect((page["jobs"] as? [Any])?.count == count, "limit \(limit)")
                    #expect(page["next_cursor"] is String, "limit \(limit): more jobs follow")
                }
            }
            for path in ["/v1/queues/default/jobs?limit=abc", "/v1/queues/default/throughput?minutes=abc"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .badRequest, "\(path)")
                    #expect(response.headers[.contentType] == "application/problem+json")
                    let code = try json(response)["code"] as? String
                    #expect(code == "invalid_limit" || code == "invalid_minutes", "\(path)")
                }
            }
            // Queues come in pages by name, followed through next_cursor.
            for queue in ["beta", "alpha"] {
                _ = try await client.execute(
                    uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(#"{"task":"echo","input":1,"queue":"\#(queue)"}"#))
            }
            var listed: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                pages += 1
                try #require(pages <= 3, "the cursor does not advance")
                let page = try await client.execute(uri: "/v1/queues?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), method: .get) { try json($0) }
                let names = (page["queues"] as? [[String: Any]] ?? []).compactMap { $0["queue"] as? String }
                #expect(names.count <= 2)
                listed += names
                cursor = page["next_cursor"] as? String
            } while cursor != nil
            #expect(listed == ["alpha", "beta", "default"])
            // A cursor past the last name, or naming no queue, is a page of what follows it.
            for (cursor, expected) in [("zzz", [String]()), ("b", ["beta", "default"])] {
                let page = try await client.execute(uri: "/v1/queues?cursor=\(cursor)", method: .get) { try json($0) }
                #expect((page["queues"] as? [[String: Any]])?.compactMap { $0["queue"] as? String } == expected)
                #expect(page["next_cursor"] is NSNull)
            }
            try await client.execute(uri: "/v1/queues?limit=x", method: .get) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/v1/queues/default/throughput?minutes=100000", method: .get) { response in
                let minutes = try json(response)["minutes"] as? [Any]
                #expect(minutes?.count == JobLimits.throughputMinutes)
            }
        }
    }

    @Test("queues: counts, listing with a page size and a cursor, pause and resume; health")
    func queues() async throws {
        try await withAPI { client, _ in
            for index in 0..<5 {
                _ = try await client.execute(
                    uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body(#"{"task":"echo","input":\#(index)}"#))
            }
            try await client.execute(uri: "/v1/queues", method: .get) { response in
                let queues = try #require(try json(response)["queues"] as? [[String: Any]])
                #expect(queues.first?["queue"] as? String == "default")
                #expect(queues.first?["pending"] as? Int == 5)
            }
            let next = try await client.execute(uri: "/v1/queues/default/jobs?state=queued&limit=2", method: .get) { response in
                let page = try json(response)
                #expect((page["jobs"] as? [Any])?.count == 2)
                return page["next_cursor"] as? String
            }
            #expect(next != nil)
            try await client.execute(uri: "/v1/queues/default/jobs?state=bogus", method: .get) { #expect($0.status == .badRequest) }
            // A cursor that is no plausible offset starts from the first page (and never traps).
            try await client.execute(uri: "/v1/queues/default/jobs?cursor=9223372036854775807", method: .get) { response in
                #expect(response.status == .ok)
                let page = try json(response)
                #expect((page["jobs"] as? [Any])?.count == 5)
            }
            try await client.execute(uri: "/v1/queues/default/pause", method: .post) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/queues/defualt/pause", method: .post) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/queues", method: .get) { response in
                let queues = try #require(try json(response)["queues"] as? [[String: Any]])
                #expect(queues.first?["paused"] as? Bool == true)
            }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/tasks", method: .get) { response in
                let tasks = try #require(try json(response)["tasks"] as? [[String: Any]])
                #expect(tasks.compactMap { $0["name"] as? String } == ["echo", "fail", "flaky", "primes", "sleep"])
            }
        }
    }
}
