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

@Suite("HTTP API: workflows")
struct WorkflowAPITests {
    private func withAPI(_ test: @escaping @Sendable (any TestClientProtocol, MemoryJobBroker) async throws -> Void) async throws {
        try await withSampleAPI(test)
    }

    private func post(
        _ client: any TestClientProtocol, _ path: String, _ text: String, _ status: HTTPResponse.Status, key: String? = nil
    ) async throws -> [String: Any] {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let key { headers[HTTPField.Name("Idempotency-Key")!] = key }
        return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: text)) { response in
            #expect(response.status == status, "\(text): \(String(buffer: response.body))")
            return try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
        }
    }

    private func get(_ client: any TestClientProtocol, _ path: String) async throws -> [String: Any] {
        try await client.execute(uri: path, method: .get) { response in
            #expect(response.status == .ok, "\(path)")
            return try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
        }
    }

    @Test("a chain: submitted, shown step by step, run to its result; a repeated Idempotency-Key answers it, and refuses another plan")
    func chain() async throws {
        try await withAPI { client, broker in
            let text = #"{"chain": [{"task": "echo", "input": {"n": 1}}, {"task": "echo"}, {"task": "echo", "queue": "other"}]}"#
            let created = try await post(client, "/v1/workflows", text, .created, key: "flow-1")
            let id = try #require(created["id"] as? String)
            #expect(created["kind"] as? String == "chain" && (created["jobs"] as? [String])?.count == 3)
            #expect(id.hasSuffix(".other"))
            let again = try await post(client, "/v1/workflows", text, .ok, key: "flow-1")
            #expect(again["id"] as? String == id && again["created"] as? Bool == false)
            // The key is bound to the whole plan, not only to its first job: another later step, or
            // the same jobs as a group, is another request.
            for other in [
                #"{"chain": [{"task": "echo", "input": {"n": 1}}, {"task": "echo"}, {"task": "echo", "queue": "default"}]}"#,
                #"{"group": [{"task": "echo", "input": {"n": 1}}, {"task": "echo", "input": 2}, {"task": "echo", "input": 3, "queue": "other"}]}"#,
            ] {
                let reused = try await post(client, "/v1/workflows", other, .unprocessableContent, key: "flow-1")
                #expect(reused["code"] as? String == "idempotency_key_reused", "\(reused)")
            }
            var workflow = try await get(client, "/v1/workflows/\(id)")
            #expect(workflow["state"] as? String == "running" && workflow["jobs_total"] as? Int == 3)
            #expect((workflow["jobs"] as? [[String: Any]])?.map { $0["state"] as? String } == ["queued", "waiting", "waiting"])
            // Run it as a worker would: echo returns its input.
            for queue: QueueName in [.default, .default, "other"] {
                let job = try #require(try await broker.claim(queue: queue, limit: 1, worker: "w", lease: .seconds(30)).first)
                #expect(String(decoding: job.input, as: UTF8.self) == #"{"n": 1}"#)
                #expect(try await broker.complete(job.lease, result: job.input))
            }
            workflow = try await get(client, "/v1/workflows/\(id)?limit=2")
            #expect(workflow["state"] as? String == "succeeded" && (workflow["result"] as? [String: Any])?["n"] as? Int == 1)
            #expect((workflow["jobs"] as? [Any])?.count == 2 && workflow["next_cursor"] as? String == "2")
        }
    }

    @Test("links are checked against the tasks' schemas; every problem has its pointer")
    func links() async throws {
        try await withAPI { client, _ in
            for (text, pointer) in [
                (#"{"chain": [{"task": "primes", "input": {"below": 10}}, {"task": "sleep"}]}"#, "/chain/1/task"),
                (#"{"chain": [{"task": "echo", "input": 1}, {"task": "echo", "input": 2}]}"#, "/chain/1/input"),
                (#"{"chord": {"group": [{"task": "echo", "input": 1}], "callback": {"task": "sleep"}}}"#, "/chord/callback/task"),
                (#"{"chord": {"group": [{"task": "echo", "input": 1}]}}"#, "/chord/callback"),
                (#"{"group": [{"task": "sleep", "input": {"ms": "x"}}]}"#, "/group/0/input/ms"),
                (#"{"group": []}"#, "/group"),
                (#"{"group": [{"task": "echo", "input": 1, "unique_key": "k"}]}"#, "/group/0/unique_key"),
                (#"{"batch": {"jobs": [{"task": "echo", "input": 1}], "later": {}}}"#, "/batch/later"),
                (#"{"steps": []}"#, ""),
            ] {
                let problem = try await post(client, "/v1/workflows", text, .unprocessableContent)
                let pointers = (problem["errors"] as? [[String: Any]])?.compactMap { $0["pointer"] as? String } ?? []
                #expect(pointers.contains(pointer), "\(text): \(pointers)")
            }
            let unknown = try await post(client, "/v1/workflows", #"{"group": [{"task": "nope", "input": 1}]}"#, .unprocessableContent)
            #expect(unknown["code"] as? String == "unknown_task")
            let mismatch = try await post(client, "/v1/workflows", #"{"chain": [{"task": "primes", "input": {"below": 10}}, {"task": "sleep"}]}"#, .unprocessableContent)
            let message = (mismatch["errors"] as? [[String: Any]])?.first?["message"] as? String ?? ""
            #expect(message.contains("the input of task 'sleep' does not accept the output of task 'primes'") && message.contains("/ms"))
        }
    }

    @Test("POST /v1/jobs with depends_on: the job waits, then runs with its own input; bad combinations are 422")
    func dependsOn() async throws {
        try await withAPI { client, broker in
            let parent = try await post(client, "/v1/jobs", #"{"task": "echo", "input": 1}"#, .created)
            let parentID = try #require(parent["id"] as? String)
            let child = try await post(client, "/v1/jobs", #"{"task": "echo", "input": "mine", "depends_on": ["\#(parentID)"], "on_dependency_failure": "run"}"#, .created)
            #expect(child["state"] as? String == "waiting")
            let job = try #require(try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30)).first)
            #expect(try await broker.complete(job.lease, result: job.input))
            let released = try await get(client, "/v1/jobs/\(child["id"] as! String)")
            #expect(released["state"] as? String == "queued" && released["input"] as? String == "mine")
            #expect(released["depends_on"] as? [String] == [parentID])
            for (text, pointer) in [
                (#"{"task": "echo", "input": 1, "depends_on": ["\#(parentID)"], "delay_ms": 10}"#, "/depends_on"),
                (#"{"task": "echo", "input": 1, "depends_on": ["nope"]}"#, "/depends_on/0"),
                (#"{"task": "echo", "input": 1, "depends_on": []}"#, "/depends_on"),
                (#"{"task": "echo", "input": 1, "on_dependency_failure": "run"}"#, "/on_dependency_failure"),
            ] {
                let problem = try await post(client, "/v1/jobs", text, .unprocessableContent)
                #expect((problem["errors"] as? [[String: Any]])?.first?["pointer"] as? String == pointer, "\(text)")
            }
        }
    }

    @Test("a workflow whose first queue is full is a 429; depends_on on a job with 1,000 dependents is a 422, not a 503")
    func refusals() async throws {
        let broker = MemoryJobBroker(caps: QueueCaps(maxPending: 1))
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        let api = APIContext(broker: broker, registry: registry, configuration: APIConfiguration(), access: .none, checkReady: {})
        let parent = try await broker.enqueue([EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions())])[0].id
        var dependent = EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions())
        dependent.dependencies = JobDependencies(parents: [parent])
        _ = try await broker.enqueue(Array(repeating: dependent, count: JobDependencies.maxDependents))
        try await Application(router: buildRouter(api)).test(.router) { client in
            let full = try await post(client, "/v1/workflows", #"{"group": [{"task": "echo", "input": 2}]}"#, .tooManyRequests)
            #expect(full["code"] as? String == "queue_full")
            let crowded = try await post(client, "/v1/jobs", #"{"task": "echo", "input": 3, "depends_on": ["\#(parent.rawValue)"]}"#, .unprocessableContent)
            #expect((crowded["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/depends_on")
            #expect((crowded["detail"] as? String)?.contains("already has 1000 dependents") == true)
        }
    }

    @Test("a chord, a group and a batch; cancelling a workflow; an unknown one is a 404")
    func shapes() async throws {
        try await withAPI { client, broker in
            let chord = try await post(
                client, "/v1/workflows",
                #"{"chord": {"group": [{"task": "primes", "input": {"below": 10}}, {"task": "primes", "input": {"below": 20}}], "callback": {"task": "echo"}}}"#,
                .created)
            #expect(chord["kind"] as? String == "chord" && (chord["jobs"] as? [String])?.count == 3)
            let group = try await post(client, "/v1/workflows", #"{"group": [{"task": "echo", "input": 1}, {"task": "echo", "input": 2}]}"#, .created)
            let batch = try await post(
                client, "/v1/workflows",
                #"{"batch": {"jobs": [{"task": "echo", "input": 1}], "on_complete": {"task": "echo"}, "on_success": {"task": "echo"}}}"#, .created)
            #expect((batch["jobs"] as? [String])?.count == 4)
            let groupID = try #require(group["id"] as? String)
            // A repeated key answers the first group, and makes none of its members again.
            let keyed = #"{"group": [{"task": "echo", "input": 7}, {"task": "echo", "input": 8}]}"#
            let first = try await post(client, "/v1/workflows", keyed, .created, key: "g-1")
            let pendingBefore = try await broker.stats(.default).pending
            let repeated = try await post(client, "/v1/workflows", keyed, .ok, key: "g-1")
            #expect(repeated["id"] as? String == first["id"] as? String && (repeated["jobs"] as? [String])?.count == 3)
            #expect(try await broker.stats(.default).pending == pendingBefore)
            #expect(try await get(client, "/v1/workflows/\(groupID)")["kind"] as? String == "group")
            let cancelled = try await post(client, "/v1/workflows/\(chord["id"] as! String)/cancel", "", .ok)
            #expect(cancelled["cancelled"] as? Int == 3)
            let after = try await get(client, "/v1/workflows/\(chord["id"] as! String)")
            #expect(after["state"] as? String == "cancelled")
            try await client.execute(uri: "/v1/workflows/\(JobID.generate(queue: .default).rawValue)", method: .get) { response in
                #expect(response.status == .notFound)
            }
            #expect(try await broker.stats(.default).waiting == 5, "the two groups' joins, and the batch's join and both callbacks, wait")
        }
    }
}
