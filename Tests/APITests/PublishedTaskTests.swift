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

/// A task this API process has no code for: a worker elsewhere publishes it.
private struct ChargeCard: TernTask {
    struct Input: Codable, Sendable {
        var order: Int
        var cents: UInt32
        var currency: String?
    }
    struct Output: Codable, Sendable { var charged: Bool }
    static let name = "charge-card"
    static let options = TaskOptions(queue: "payments", priority: 8, maxAttempts: 7)
    func run(_ input: Input, context: JobContext) async throws -> Output { Output(charged: true) }
}

/// An echo task of a different shape, published under a compiled task's name.
private struct OtherEcho: TernTask {
    struct Input: Codable, Sendable { var only: Bool }
    typealias Output = Bool
    static let name = "echo"
    func run(_ input: Input, context: JobContext) async throws -> Bool { input.only }
}

/// The API with the sample tasks compiled in, over a memory broker where a worker (`worker-7`)
/// published a catalogue with `charge-card` and its own `echo`.
private func withPublishedAPI(
    _ test: @escaping @Sendable (any TestClientProtocol, MemoryJobBroker) async throws -> Void
) async throws {
    let broker = MemoryJobBroker()
    var published = TaskRegistry()
    try published.register(ChargeCard.self)
    try published.register(OtherEcho.self)
    let catalogue = TaskCatalogue(published)
    try await broker.publish(catalogue)
    try await broker.register(
        WorkerInfo(
            id: "worker-7", host: "h", pid: 7, queues: ["payments"], concurrency: 1, busy: 0, processed: 0,
            startedMilliseconds: 0, lastSeenMilliseconds: 0, catalogue: catalogue.version),
        ttl: .seconds(60))
    var compiled = TaskRegistry()
    try SampleTasks.register(in: &compiled, includingTestTasks: false)
    let api = APIContext(broker: broker, registry: compiled, configuration: APIConfiguration(), access: .none, checkReady: {})
    try await Application(router: buildRouter(api)).test(.router) { client in try await test(client, broker) }
}

private func json(_ response: TestResponse) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
}

private func post(_ client: any TestClientProtocol, _ text: String) async throws -> (HTTPResponse.Status, [String: Any]) {
    try await client.execute(
        uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: text)
    ) { response in (response.status, try json(response)) }
}

@Suite("Tasks a worker published: accepted, validated and documented without their code")
struct PublishedTaskTests {
    @Test("a job of a published task is enqueued with its published options; a wrong input type is a 422 at its pointer")
    func enqueue() async throws {
        try await withPublishedAPI { client, broker in
            let (status, created) = try await post(client, #"{"task":"charge-card","input":{"order":1,"cents":250}}"#)
            #expect(status == .created)
            let id = try #require((created["id"] as? String).flatMap(JobID.init))
            let record = try #require(try await broker.job(id))
            #expect(record.task == "charge-card" && record.queue == "payments" && record.priority == 8 && record.maxAttempts == 7)

            let (badStatus, problem) = try await post(client, #"{"task":"charge-card","input":{"order":1,"cents":-5,"currency":3}}"#)
            #expect(badStatus == .unprocessableContent)
            let errors = problem["errors"] as? [[String: Any]] ?? []
            #expect(errors.compactMap { $0["pointer"] as? String } == ["/input/cents"], "\(problem)")

            let (missingStatus, missing) = try await post(client, #"{"task":"charge-card","input":{"cents":5}}"#)
            #expect(missingStatus == .unprocessableContent)
            #expect((missing["errors"] as? [[String: Any]])?.first?["message"] as? String == "missing")
            #expect((missing["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/input/order")

            let (unknownStatus, unknown) = try await post(client, #"{"task":"refund","input":{}}"#)
            #expect(unknownStatus == .unprocessableContent && unknown["code"] as? String == "unknown_task")
            #expect((unknown["errors"] as? [[String: Any]])?.first?["message"] as? String == "unknown task 'refund'")
        }
    }

    @Test("the compiled Swift type wins over a published task of the same name")
    func compiledWins() async throws {
        try await withPublishedAPI { client, _ in
            // The compiled echo takes any JSON; the published one would refuse this input.
            let (status, _) = try await post(client, #"{"task":"echo","input":[1,2]}"#)
            #expect(status == .created)
        }
    }

    @Test("GET /v1/tasks lists published tasks with their source and the workers that publish them; /openapi.json documents them")
    func listedAndDocumented() async throws {
        try await withPublishedAPI { client, _ in
            try await client.execute(uri: "/v1/tasks", method: .get) { response in
                let tasks = try json(response)["tasks"] as? [[String: Any]] ?? []
                let charge = try #require(tasks.first { $0["name"] as? String == "charge-card" })
                #expect(charge["source"] as? String == "published")
                #expect(charge["workers"] as? [String] == ["worker-7"])
                #expect(charge["queue"] as? String == "payments")
                let echo = try #require(tasks.first { $0["name"] as? String == "echo" })
                #expect(echo["source"] as? String == "compiled")
                #expect(echo["workers"] as? [String] == ["worker-7"], "worker-7 publishes an echo too")
                let sleep = try #require(tasks.first { $0["name"] as? String == "sleep" })
                #expect(sleep["workers"] as? [String] == [])
            }
            try await client.execute(uri: "/openapi.json", method: .get) { response in
                let document = try json(response)
                let schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any] ?? [:]
                let input = try #require(schemas["charge-card.Input"] as? [String: Any])
                #expect(input["required"] as? [String] == ["cents", "order"])
                #expect(schemas["sleep.Input"] != nil)
            }
        }
    }

    @Test("a schedule may name a published task: its input is checked against the published schema, and run now uses its options")
    func schedules() async throws {
        try await withPublishedAPI { client, broker in
            func put(_ body: String) async throws -> (HTTPResponse.Status, [String: Any]) {
                try await client.execute(
                    uri: "/v1/schedules/charge-nightly", method: .put, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: body)
                ) { response in (response.status, try json(response)) }
            }
            let (badStatus, bad) = try await put(#"{"task":"charge-card","cron":"0 3 * * *","input":{"order":1,"cents":-5}}"#)
            #expect(badStatus == .unprocessableContent)
            #expect((bad["detail"] as? String ?? "").hasPrefix("schedule 'charge-nightly': input does not fit task 'charge-card': /cents: "), "\(bad)")
            let (status, created) = try await put(#"{"task":"charge-card","cron":"0 3 * * *","input":{"order":1,"cents":250}}"#)
            #expect(status == .created, "\(created)")
            #expect(created["task"] as? String == "charge-card")

            let (runStatus, run) = try await client.execute(uri: "/v1/schedules/charge-nightly/run", method: .post) { response in
                (response.status, try json(response))
            }
            #expect(runStatus == .created, "\(run)")
            let id = try #require((run["id"] as? String).flatMap(JobID.init))
            let record = try #require(try await broker.job(id))
            #expect(record.task == "charge-card" && record.queue == "payments" && record.priority == 8 && record.maxAttempts == 7)

            let (unknownStatus, unknown) = try await client.execute(
                uri: "/v1/schedules/refund-nightly", method: .put, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"task":"refund","cron":"0 3 * * *","input":{}}"#)
            ) { response in (response.status, try json(response)) }
            #expect(unknownStatus == .unprocessableContent)
            #expect(unknown["detail"] as? String == "schedule 'refund-nightly': unknown task 'refund'")
        }
    }
}
