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

private func withAPI(
    caps: QueueCaps = QueueCaps(),
    _ adjust: (inout APIConfiguration) -> Void = { _ in },
    _ test: @escaping @Sendable (any TestClientProtocol, MemoryJobBroker) async throws -> Void
) async throws {
    let broker = MemoryJobBroker(caps: caps)
    var registry = TaskRegistry()
    try SampleTasks.register(in: &registry, includingTestTasks: false)
    var configuration = APIConfiguration()
    adjust(&configuration)
    let api = APIContext(broker: broker, registry: registry, configuration: configuration, access: .none, checkReady: {})
    try await Application(router: buildRouter(api)).test(.router) { client in try await test(client, broker) }
}

private let jsonHeaders: HTTPFields = [.contentType: "application/json"]

private func object(_ response: TestResponse) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
}

/// The body's fields, or none when it is not a JSON object.
private func fields(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]) ?? [:]
}

private func enqueueEcho(_ broker: MemoryJobBroker, maxAttempts: Int = 1) async throws -> JobID {
    var options = TaskOptions()
    options.maxAttempts = maxAttempts
    return try await broker.enqueue([EnqueueRequest(task: "echo", input: Data(#"{"a":1}"#.utf8), options: options)])[0].id
}

@Suite("HTTP API: retry, events, metrics, documents and limits")
struct APIEndpointTests {
    @Test("backpressure: a queue at its cap answers 429 queue_full with Retry-After, per job in a batch")
    func queueFull() async throws {
        try await withAPI(caps: QueueCaps(maxPending: 2)) { client, broker in
            let body = ByteBuffer(string: #"{"task":"echo","input":1}"#)
            for _ in 0..<2 {
                try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body) { response in
                    #expect(response.status == .created)
                }
            }
            try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: body) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] == "2")
                #expect(fields(response)["code"] as? String == "queue_full")
                #expect(fields(response)["detail"] as? String == "queue 'default' is at its cap on waiting jobs; retry after Retry-After seconds")
            }
            let batch = ByteBuffer(string: #"{"jobs":[{"task":"echo","input":1},{"task":"nope","input":1}]}"#)
            try await client.execute(uri: "/v1/jobs/batch", method: .post, headers: jsonHeaders, body: batch) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.retryAfter] == "2")
                let answer = try object(response)
                #expect(answer["enqueued"] as? Int == 0 && answer["rejected"] as? Int == 2)
                let results = answer["results"] as? [[String: Any]] ?? []
                #expect((results.first?["error"] as? [String: Any])?["code"] as? String == "queue_full")
                #expect((results.first?["error"] as? [String: Any])?["status"] as? Int == 429)
            }
            #expect(try await broker.stats(.default).pending == 2)
        }
    }

    @Test("listing by task: only that task's jobs, pages followed by next_cursor until none is left")
    func listByTask() async throws {
        try await withAPI { client, broker in
            // 25 echo jobs, then 3 sleep jobs: with limit 10, the sleep jobs are on the third page.
            for _ in 0..<25 { _ = try await enqueueEcho(broker) }
            let sleepers = try await broker.enqueue((0..<3).map { _ in
                EnqueueRequest(task: "sleep", input: Data(#"{"ms":1}"#.utf8), options: TaskOptions())
            }).map(\.id.rawValue)
            var found: [String] = []
            var cursor: String? = nil
            var requests = 0
            repeat {
                let uri = "/v1/queues/default/jobs?state=queued&limit=10&task=sleep" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await client.execute(uri: uri, method: .get) { try object($0) }
                let jobs = page["jobs"] as? [[String: Any]] ?? []
                #expect(jobs.allSatisfy { $0["task"] as? String == "sleep" })
                found += jobs.compactMap { $0["id"] as? String }
                cursor = page["next_cursor"] as? String
                requests += 1
            } while cursor != nil && requests < 10
            #expect(found == sleepers)
            #expect(requests == 1, "one request reads the pages it needs")
        }
    }

    @Test("purge: one state's jobs deleted; running refused with 400; unknown queue 404")
    func purge() async throws {
        try await withAPI { client, broker in
            for _ in 0..<3 { _ = try await enqueueEcho(broker) }
            for job in try await broker.claim(queue: .default, limit: 2, worker: "w", lease: .seconds(30)) {
                _ = try await broker.fail(job.lease, message: "boom", retryAfter: nil)
            }
            try await client.execute(uri: "/v1/queues/default/purge?state=failed", method: .post) { response in
                #expect(response.status == .ok)
                #expect(fields(response)["purged"] as? Int == 2)
                #expect(fields(response)["more"] as? Bool == false)
            }
            for state in ["running", "nonsense", ""] {
                try await client.execute(uri: "/v1/queues/default/purge?state=\(state)", method: .post) { response in
                    #expect(response.status == .badRequest)
                    #expect(fields(response)["code"] as? String == "invalid_state")
                }
            }
            try await client.execute(uri: "/v1/queues/nosuch/purge?state=failed", method: .post) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/queues/default", method: .get) { response in
                let queue = try object(response)
                #expect(queue["pending"] as? Int == 1)
                #expect(queue["failed"] as? Int == 0)
            }
        }
    }

    @Test("retry: a failed job is queued again; a queued one is a 409; retry-failed requeues a queue's failed jobs")
    func retry() async throws {
        try await withAPI { client, broker in
            let ids = [try await enqueueEcho(broker), try await enqueueEcho(broker), try await enqueueEcho(broker)]
            for job in try await broker.claim(queue: .default, limit: 3, worker: "w", lease: .seconds(30)) {
                _ = try await broker.fail(job.lease, message: "boom", retryAfter: nil)
            }
            try await client.execute(uri: "/v1/jobs/\(ids[0].rawValue)/retry", method: .post) { response in
                #expect(response.status == .ok)
                #expect(fields(response)["state"] as? String == "queued")
            }
            try await client.execute(uri: "/v1/jobs/\(ids[0].rawValue)/retry", method: .post) { response in
                #expect(response.status == .conflict)
                #expect(fields(response)["code"] as? String == "not_retryable")
            }
            try await client.execute(uri: "/v1/queues/default/retry-failed", method: .post) { response in
                #expect(response.status == .ok)
                #expect(fields(response)["retried"] as? Int == 2)
            }
            try await client.execute(uri: "/v1/queues/default", method: .get) { response in
                let queue = try object(response)
                #expect(queue["pending"] as? Int == 3)
                #expect(queue["failed"] as? Int == 0)
            }
            try await client.execute(uri: "/v1/jobs/\(JobID.generate(queue: .default).rawValue)/retry", method: .post) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/v1/queues/nosuch/retry-failed", method: .post) { #expect($0.status == .notFound) }
        }
    }

    @Test("delete: a finished job is gone (204, then 404); one that has not finished is a 409 not_finished")
    func delete() async throws {
        try await withAPI { client, broker in
            let done = try await enqueueEcho(broker)
            let job = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
            #expect(try await broker.complete(job.lease, result: Data("1".utf8)))
            let queued = try await enqueueEcho(broker)
            try await client.execute(uri: "/v1/jobs/\(done.rawValue)", method: .delete) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/v1/jobs/\(done.rawValue)", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/jobs/\(done.rawValue)", method: .delete) { response in
                #expect(response.status == .notFound)
                #expect(fields(response)["code"] as? String == "not_found")
            }
            try await client.execute(uri: "/v1/jobs/\(queued.rawValue)", method: .delete) { response in
                #expect(response.status == .conflict)
                #expect(fields(response)["code"] as? String == "not_finished")
                #expect(fields(response)["detail"] as? String
                    == "the job is queued; only a finished job (succeeded, failed, cancelled or expired) can be deleted: cancel it first")
            }
            try await client.execute(uri: "/v1/jobs/\(queued.rawValue)", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/queues/default", method: .get) { response in
                let queue = try object(response)
                #expect(queue["succeeded"] as? Int == 0)
                #expect(queue["pending"] as? Int == 1)
            }
        }
    }

    @Test("run: a scheduled job is queued now (200); again, or a job in another state, is a 409 not_scheduled; unknown 404")
    func runNow() async throws {
        try await withAPI { client, broker in
            let later = try await broker.enqueue([
                EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions(), timing: .after(.seconds(3600)))
            ])[0].id
            try await client.execute(uri: "/v1/jobs/\(later.rawValue)/run", method: .post) { response in
                #expect(response.status == .ok)
                #expect(fields(response)["state"] as? String == "queued")
            }
            try await client.execute(uri: "/v1/jobs/\(later.rawValue)/run", method: .post) { response in
                #expect(response.status == .conflict)
                #expect(fields(response)["code"] as? String == "not_scheduled")
                #expect(fields(response)["detail"] as? String == "the job is queued; only a scheduled or retrying job can be run now")
            }
            #expect(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first?.id == later)
            try await client.execute(uri: "/v1/jobs/\(JobID.generate(queue: .default).rawValue)/run", method: .post) {
                #expect($0.status == .notFound)
            }
        }
    }

    @Test("workers: a supervisor's entry counts its replaced processes by reason; a worker's is null")
    func workerExits() async throws {
        try await withAPI { client, broker in
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            try await broker.register(
                WorkerInfo(id: "s", host: "h", pid: 10, queues: ["default"], concurrency: 8, busy: 0, processed: 0,
                    startedMilliseconds: now, lastSeenMilliseconds: now, processes: 2, processExits: ["crashed": 2, "recycled": 1]),
                ttl: .seconds(60))
            try await broker.register(
                WorkerInfo(id: "w", host: "h", pid: 11, queues: ["default"], concurrency: 4, busy: 0, processed: 0,
                    startedMilliseconds: now, lastSeenMilliseconds: now, supervisorPID: 10),
                ttl: .seconds(60))
            try await client.execute(uri: "/v1/workers", method: .get) { response in
                let workers = try object(response)["workers"] as? [[String: Any]] ?? []
                let supervisor = try #require(workers.first { $0["id"] as? String == "s" })
                #expect(supervisor["process_exits"] as? [String: Int] == ["crashed": 2, "killed": 0, "recycled": 1])
                #expect(workers.first { $0["id"] as? String == "w" }?["process_exits"] is NSNull)
            }
        }
    }

    @Test("worker orders: quiet, resume and stop are 202 and reach the worker's next registration; unknown 404; a supervised process cannot be stopped alone")
    func workerOrders() async throws {
        try await withAPI { client, broker in
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let solo = WorkerInfo(
                id: "h:7:abc", host: "h", pid: 7, queues: ["default"], concurrency: 4, busy: 0, processed: 0,
                startedMilliseconds: now, lastSeenMilliseconds: now)
            var child = solo
            child.id = "h:8:def"
            child.supervisorPID = 6
            for info in [solo, child] { try await broker.register(info, ttl: .seconds(60)) }
            func post(_ path: String) async throws -> (HTTPResponse.Status, [String: Any]) {
                try await client.execute(uri: path, method: .post) { response in (response.status, (try? object(response)) ?? [:]) }
            }

            var (status, body) = try await post("/v1/workers/h:7:abc/quiet")
            #expect(status == .accepted)
            #expect(body["worker"] as? String == "h:7:abc" && body["order"] as? String == "quiet")
            #expect(try await broker.register(solo, ttl: .seconds(60)) == .quiet)
            (status, body) = try await post("/v1/workers/h:7:abc/resume")
            #expect(status == .accepted && body["order"] is NSNull)
            #expect(try await broker.register(solo, ttl: .seconds(60)) == nil)
            (status, _) = try await post("/v1/workers/h:7:abc/stop")
            #expect(status == .accepted)
            #expect(try await broker.register(solo, ttl: .seconds(60)) == .stop)

            (status, body) = try await post("/v1/workers/h:8:def/stop")
            #expect(status == .conflict && body["code"] as? String == "supervised_worker")
            #expect(try await broker.register(child, ttl: .seconds(60)) == nil)
            (status, _) = try await post("/v1/workers/h:8:def/quiet")
            #expect(status == .accepted)

            (status, body) = try await post("/v1/workers/nobody/quiet")
            #expect(status == .notFound && body["detail"] as? String == "no live worker is named 'nobody'")

            var quietSolo = solo
            quietSolo.mode = .quiet
            try await broker.register(quietSolo, ttl: .seconds(60))
            try await client.execute(uri: "/v1/workers", method: .get) { response in
                let workers = try object(response)["workers"] as? [[String: Any]] ?? []
                #expect(workers.first { $0["id"] as? String == "h:7:abc" }?["state"] as? String == "quiet")
                #expect(workers.first { $0["id"] as? String == "h:8:def" }?["state"] as? String == "running")
            }
        }
    }

    @Test("events: the state, the progress, then the whole finished job, and the stream ends")
    func events() async throws {
        try await withAPI { client, broker in
            let id = try await enqueueEcho(broker)
            let run = Task {
                // The stream polls (5 ms growing to 250 ms): each step stays long enough to be seen
                // by a poll even on a loaded machine.
                try await Task.sleep(for: .milliseconds(500))
                let job = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
                _ = try await broker.progress(job.lease, value: 0.5, message: "half")
                try await Task.sleep(for: .milliseconds(1000))
                _ = try await broker.complete(job.lease, result: Data(#"{"done":true}"#.utf8))
            }
            let text = try await client.execute(uri: "/v1/jobs/\(id.rawValue)/events", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/event-stream")
                return String(buffer: response.body)
            }
            try await run.value
            let events = text.components(separatedBy: "\n\n").filter { !$0.isEmpty && !$0.hasPrefix(":") }
            let names = events.compactMap { $0.split(separator: "\n").first.map { String($0.dropFirst("event: ".count)) } }
            #expect(names.first == "state")
            #expect(names.contains("progress"))
            #expect(names.last == "job")
            #expect(events.first?.contains(#""state":"queued""#) == true)
            #expect(events.first { $0.hasPrefix("event: progress") }?.contains(#""message":"half""#) == true)
            #expect(events.last?.contains(#""state":"succeeded""#) == true)
            #expect(events.last?.contains(#""result":{"done":true}"#) == true)
            try await client.execute(uri: "/v1/jobs/\(JobID.generate(queue: .default).rawValue)/events", method: .get) {
                #expect($0.status == .notFound)
            }
        }
    }

    @Test("waiting requests beyond the cap are refused with 503 too_many_waiters")
    func waiterCap() async throws {
        try await withAPI({ $0.maxWaiters = 0 }) { client, broker in
            let id = try await enqueueEcho(broker)
            try await client.execute(uri: "/v1/jobs/\(id.rawValue)?wait=1", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] == "1")
                #expect(fields(response)["code"] as? String == "too_many_waiters")
            }
            try await client.execute(uri: "/v1/jobs/\(id.rawValue)", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test("/metrics counts requests by route and status, and enqueues by task")
    func metrics() async throws {
        try await withAPI { client, _ in
            try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: ByteBuffer(string: #"{"task":"echo","input":1}"#)) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/nowhere", method: .get) { _ in }
            let text = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(text.contains(#"tern_http_requests_total{route="/v1/jobs",method="POST",status="201"} 1"#))
            #expect(text.contains(#"tern_http_requests_total{route="NotFound",method="GET",status="404"} 1"#))
            #expect(text.contains(#"tern_api_jobs_enqueued_total{task="echo"} 1"#))
            #expect(text.contains("tern_http_request_duration_seconds_bucket"))
        }
    }

    @Test("/metrics reports each queue's jobs by state, the wait of its next job and whether it is paused")
    func queueGauges() async throws {
        try await withAPI { client, broker in
            for _ in 0..<2 {
                try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: ByteBuffer(string: #"{"task":"echo","input":1}"#)) {
                    #expect($0.status == .created)
                }
            }
            let claimed = try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30))
            #expect(claimed.count == 1)
            try await client.execute(uri: "/v1/queues/default/pause", method: .post) { #expect($0.status == .ok) }
            let text = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(text.contains(#"tern_queue_jobs{queue="default",state="queued"} 1.0"#))
            #expect(text.contains(#"tern_queue_jobs{queue="default",state="running"} 1.0"#))
            #expect(text.contains(#"tern_queue_jobs{queue="default",state="failed"} 0.0"#))
            #expect(text.contains(#"tern_queue_paused{queue="default"} 1.0"#))
            #expect(text.contains(#"tern_queue_oldest_age_seconds{queue="default"}"#))
            // One job started: the histogram of waits counts it in every bucket from its own up.
            #expect(text.contains("# TYPE tern_queue_latency_seconds histogram"))
            #expect(text.contains(#"tern_queue_latency_seconds_bucket{queue="default",le="+Inf"} 1"#))
            #expect(text.contains(#"tern_queue_latency_seconds_bucket{queue="default",le="300.0"} 1"#))
            #expect(text.contains(#"tern_queue_latency_seconds_count{queue="default"} 1"#))
            let throughput = try await client.execute(uri: "/v1/queues/default/throughput?minutes=5", method: .get) { response in
                try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
            }
            #expect((throughput?["minutes"] as? [Any])?.count == 5)
            let latency = throughput?["latency"] as? [String: Any]
            #expect(latency?["jobs"] as? Int == 1)
            #expect(latency?["p50_ms"] is Int)
        }
    }

    @Test("unknown routes and wrong methods are problem+json 404s")
    func unknownRoutes() async throws {
        try await withAPI { client, _ in
            for (path, method) in [("/v2/jobs", HTTPRequest.Method.get), ("/v1/tasks", .delete)] {
                try await client.execute(uri: path, method: method) { response in
                    #expect(response.status == .notFound)
                    #expect(response.headers[.contentType] == "application/problem+json")
                    #expect(fields(response)["code"] as? String == "not_found")
                }
            }
        }
    }

    @Test("a body nested too deep is a 422, one with a duplicate key a 400, each naming the place")
    func bodyShape() async throws {
        try await withAPI({ $0.maxJSONDepth = 4 }) { client, _ in
            let cases: [(String, HTTPResponse.Status, String, String)] = [
                (#"{"task":"echo","input":{"a":{"b":{"c":{"d":1}}}}}"#, .unprocessableContent, "invalid_request", "/input/a/b/c"),
                (#"{"task":"echo","input":1,"task":"sleep"}"#, .badRequest, "duplicate_key", "/task"),
            ]
            for (body, status, code, pointer) in cases {
                try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == status)
                    let problem = try object(response)
                    #expect(problem["code"] as? String == code)
                    #expect((problem["errors"] as? [[String: Any]])?.first?["pointer"] as? String == pointer)
                }
            }
        }
    }

    @Test("/openapi.json has one enqueue variant per task, with the input schema from its Swift type; /v1/tasks shows it")
    func openAPI() async throws {
        try await withAPI { client, _ in
            let document = try await client.execute(uri: "/openapi.json", method: .get) { try object($0) }
            #expect(document["openapi"] as? String == "3.1.0")
            let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
            let sleepInput = try #require(schemas["sleep.Input"] as? [String: Any])
            #expect(sleepInput["required"] as? [String] == ["ms"])
            #expect(((sleepInput["properties"] as? [String: Any])?["ms"] as? [String: Any])?["type"] as? String == "integer")
            let variants = try #require((schemas["EnqueueRequest"] as? [String: Any])?["oneOf"] as? [[String: Any]])
            #expect(variants.count == 5)
            let paths = try #require(document["paths"] as? [String: Any])
            for path in ["/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/events", "/v1/jobs/{id}/retry", "/v1/workers", "/metrics"] {
                #expect(paths[path] != nil, "\(path)")
            }
            let tasks = try await client.execute(uri: "/v1/tasks", method: .get) { try object($0)["tasks"] as? [[String: Any]] }
            let sleep = try #require(tasks?.first { $0["name"] as? String == "sleep" })
            #expect((sleep["input_schema"] as? [String: Any])?["required"] as? [String] == ["ms"])
        }
    }
}
