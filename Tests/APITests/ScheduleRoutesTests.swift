import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Scheduler
import Tasks
import TernCore
import Testing

private func withAPI(_ test: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
    var registry = TaskRegistry()
    try SampleTasks.register(in: &registry, includingTestTasks: false)
    let configured = ScheduleDefinition(name: "from-config", task: "echo", input: .string("x"), everySeconds: 60)
    let api = APIContext(
        broker: MemoryJobBroker(), registry: registry, configuration: APIConfiguration(), access: .none,
        configuredSchedules: [configured], checkReady: {})
    try await Application(router: buildRouter(api)).test(.router) { client in try await test(client) }
}

private let jsonHeaders: HTTPFields = [.contentType: "application/json"]

private func fields(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]) ?? [:]
}

@Suite("HTTP API: schedules")
struct ScheduleRoutesTests {
    @Test("create, read with the next runs, replace, pause, resume, list and delete a schedule")
    func lifecycle() async throws {
        try await withAPI { client in
            let body = ByteBuffer(string: #"{"task":"sleep","input":{"ms":5},"cron":"30 2 * * *","timezone":"America/New_York","overlap":"skip"}"#)
            try await client.execute(uri: "/v1/schedules/nightly", method: .put, headers: jsonHeaders, body: body) { response in
                #expect(response.status == .created)
                let schedule = fields(response)
                #expect(schedule["source"] as? String == "api")
                #expect(schedule["enabled"] as? Bool == true)
                let runs = schedule["next_runs"] as? [String] ?? []
                #expect(runs.count == 5)
                #expect(runs.allSatisfy { $0.hasSuffix(":30:00.000Z") })
            }
            try await client.execute(uri: "/v1/schedules/nightly", method: .put, headers: jsonHeaders, body: ByteBuffer(string: #"{"task":"echo","every_seconds":30}"#)) {
                #expect($0.status == .ok)
                #expect(fields($0)["every_seconds"] as? Double == 30)
            }
            try await client.execute(uri: "/v1/schedules/nightly/pause", method: .post) { #expect(fields($0)["enabled"] as? Bool == false) }
            try await client.execute(uri: "/v1/schedules/nightly/resume", method: .post) { #expect(fields($0)["enabled"] as? Bool == true) }
            try await client.execute(uri: "/v1/schedules", method: .get) { response in
                let names = (fields(response)["schedules"] as? [[String: Any]] ?? []).map { "\($0["name"] ?? "")/\($0["source"] ?? "")" }
                #expect(names == ["from-config/config", "nightly/api"])
            }
            try await client.execute(uri: "/v1/schedules/nightly", method: .delete) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/v1/schedules/nightly", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/schedules/nightly", method: .delete) { #expect($0.status == .notFound) }
        }
    }

    @Test("invalid schedules are 422 with the reason; config schedules cannot be changed here", arguments: [
        (#"{"task":"echo","cron":"61 * * * *"}"#, "schedule 'x': cron minute field: '61' is out of range 0-59"),
        (#"{"task":"echo","cron":"* * * * *","timezone":"Mars/Olympus"}"#, "schedule 'x': unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Berlin)"),
        (#"{"task":"echo"}"#, "schedule 'x': give either cron or every_seconds"),
        (#"{"task":"sleep","input":{"ms":"soon"},"every_seconds":5}"#, "schedule 'x': input does not fit task 'sleep': /ms: Expected to decode Int but found a string instead."),
        (#"{"task":"nope","every_seconds":5}"#, "schedule 'x': unknown task 'nope'"),
        (#"{"task":"echo","every_seconds":0.5}"#, "schedule 'x': every_seconds must be 1 to 31622400 (366 days)"),
        (#"{"task":"echo","every_seconds":5,"catch_up":"sometimes"}"#, "schedule 'x': catch_up must be skip, once or all, not 'sometimes'"),
        (#"{"task":"echo","every_seconds":5,"max_attempts":0}"#, "schedule 'x': max_attempts must be 1 to 100"),
        (#"{"task":"echo","every_seconds":5,"expires_after_seconds":-1}"#, "schedule 'x': expires_after_seconds must be 0 to 3155760000 (100 years)"),
        (#"{"task":"echo","every_seconds":5,"headers":{"Tenant":"acme"}}"#, "schedule 'x': headers: header name 'Tenant' must be 1 to 64 bytes of a-z 0-9 - _ ."),
    ])
    func invalid(body: String, detail: String) async throws {
        try await withAPI { client in
            try await client.execute(uri: "/v1/schedules/x", method: .put, headers: jsonHeaders, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .unprocessableContent)
                #expect(fields(response)["code"] as? String == "invalid_schedule")
                #expect(fields(response)["detail"] as? String == detail)
            }
            try await client.execute(uri: "/v1/schedules/x", method: .get) { #expect($0.status == .notFound) }
        }
    }

    @Test("field problems point at the field; config schedules answer 409")
    func pointersAndConfig() async throws {
        try await withAPI { client in
            try await client.execute(uri: "/v1/schedules/x", method: .put, headers: jsonHeaders, body: ByteBuffer(string: #"{"task":"echo","every_seconds":"often","colour":1}"#)) { response in
                #expect(response.status == .unprocessableContent)
                #expect((fields(response)["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/colour")
            }
            try await client.execute(uri: "/v1/schedules/x", method: .put, headers: jsonHeaders, body: ByteBuffer(string: #"{"task":"echo","every_seconds":"often"}"#)) { response in
                #expect((fields(response)["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/every_seconds")
            }
            try await client.execute(uri: "/v1/schedules/from-config", method: .delete) { response in
                #expect(response.status == .conflict)
                #expect(fields(response)["code"] as? String == "schedule_in_config")
            }
            try await client.execute(uri: "/v1/schedules/from-config", method: .get) { #expect(fields($0)["source"] as? String == "config") }
        }
    }

    @Test("run now enqueues the schedule's job, from the config file too; an unknown schedule is 404")
    func runNow() async throws {
        try await withAPI { client in
            let id = try await client.execute(uri: "/v1/schedules/from-config/run", method: .post) { response in
                #expect(response.status == .created)
                #expect(fields(response)["state"] as? String == "queued")
                return fields(response)["id"] as? String ?? ""
            }
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(fields(response)["task"] as? String == "echo")
                #expect(fields(response)["input"] as? String == "x")
            }
            try await client.execute(uri: "/v1/schedules/absent/run", method: .post) { response in
                #expect(response.status == .notFound)
                #expect(fields(response)["detail"] as? String == "no schedule is named 'absent'")
            }
        }
    }
}
