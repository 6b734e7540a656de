import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryTracing
import Logging
import NIOCore
import Scheduler
import TernCore
import Testing
import Tracing
import Worker

@Suite("Running a schedule now, on real Redis", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct ScheduleRunRedisTests {
    @Test("a run now is the schedule's job and its last run, leaves the mark alone, and counts for overlap")
    func brokerRun() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let broker = environment.broker
        let request = EnqueueRequest(task: "echo", input: Data("7".utf8), options: TaskOptions())
        guard case .emitted(let tick) = try await broker.emitTick(schedule: "s", tick: 10_000, mark: 10_000, skipIfRunning: false, request: request)
        else { Issue.record("tick not emitted"); return }
        let before = Int64(Date().timeIntervalSince1970 * 1000) - 60_000
        guard case .emitted(let manual) = try await broker.runSchedule("s", skipIfRunning: false, request: request)
        else { Issue.record("run not emitted"); return }
        #expect(manual != tick)
        let record = try #require(try await broker.job(manual))
        #expect(record.schedule == "s")
        #expect(record.state == .queued)
        #expect(record.input == Data("7".utf8))
        #expect((record.tickMilliseconds ?? 0) > before)
        // The last run is the manual one; the mark is where the tick left it, so tick 10000 is
        // still a duplicate and the next tick is emitted.
        let store = ScheduleStore(client: environment.client, keys: broker.keys)
        #expect(try await store.lastRun("s", queue: .default)?.job == manual.rawValue)
        #expect(try await broker.emitTick(schedule: "s", tick: 10_000, mark: 10_000, skipIfRunning: false, request: request) == .duplicate(lastJob: manual))
        // Overlap skip: the manual job has not run, so a run now and the next tick are both skipped.
        #expect(try await broker.runSchedule("s", skipIfRunning: true, request: request) == .overlapped(lastJob: manual))
        #expect(try await broker.emitTick(schedule: "s", tick: 20_000, mark: 20_000, skipIfRunning: true, request: request) == .overlapped(lastJob: manual))
        #expect(try await emittedTicks(environment).count == 2)
        // Once it finished, a run now with skip goes ahead.
        #expect(try await broker.cancel(manual) == .cancelled)
        guard case .emitted = try await broker.runSchedule("s", skipIfRunning: true, request: request)
        else { Issue.record("run after the last job ended not emitted"); return }
    }

    @Test("a schedule's max_attempts and expires_after_seconds reach its jobs: a job not started in time expires")
    func jobOptions() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var definition = ScheduleDefinition(name: "fresh", task: "echo", input: .number(1), everySeconds: 60)
        definition.maxAttempts = 7
        definition.expiresAfterSeconds = 0.001
        let schedule = try definition.schedule()
        let request = try #require(schedule.request(registry: environment.registry, jittered: false))
        guard case .emitted(let id) = try await environment.broker.emitTick(schedule: "fresh", tick: 60_000, mark: 60_000, skipIfRunning: false, request: request)
        else { Issue.record("tick not emitted"); return }
        #expect(try await environment.broker.job(id)?.maxAttempts == 7)
        // Its first attempt has not started 1 ms after it was due: a claim finds it expired.
        try await Task.sleep(for: .milliseconds(20))
        #expect(try await environment.broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).isEmpty)
        #expect(try await environment.broker.job(id)?.state == .expired)
        // Without them, the task's own options apply (echo: 3 attempts, no expiry).
        let plain = try #require(try ScheduleDefinition(name: "plain", task: "echo", everySeconds: 60).schedule().request(registry: environment.registry))
        guard case .emitted(let other) = try await environment.broker.emitTick(schedule: "plain", tick: 60_000, mark: 60_000, skipIfRunning: false, request: plain)
        else { Issue.record("tick not emitted"); return }
        try await Task.sleep(for: .milliseconds(20))
        #expect(try await environment.broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first?.id == other)
        #expect(try await environment.broker.job(other)?.maxAttempts == 3)
    }

    @Test("a schedule's headers reach its jobs, with the tick's trace context: the job's run is a child of the tick's span")
    func headersAndTrace() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        var definition = ScheduleDefinition(name: "tenant-report", task: "echo", input: .number(1), everySeconds: 1)
        definition.headers = ["tenant": "acme"]
        let schedule = try definition.schedule()
        let tracer = InMemoryTracer()
        var middleware = Middleware()
        middleware.addTracing()
        let id = try await withTracer(tracer) { () async throws -> JobID in
            let service = try SchedulerService(broker: environment.broker, schedules: [schedule], registry: environment.registry, logger: quiet)
            // The first pass emits the one tick of the last second.
            guard case .emitted(let id)? = try await service.pass()["tenant-report"]?.first else { throw WaitError("no tick emitted") }
            let worker = JobWorker(
                broker: environment.broker, registry: environment.registry, configuration: JobEnvironment.workerConfiguration(),
                logger: quiet, middleware: middleware)
            let running = Task { try await worker.run() }
            defer { worker.shutdown() }
            _ = try await environment.waitFor(id, .succeeded, within: .seconds(20))
            worker.shutdown()
            try await running.value
            return id
        }
        let record = try #require(try await environment.broker.job(id))
        #expect(record.headers["tenant"] == "acme")
        #expect(record.headers.count > 1, "the trace context is in the headers: \(record.headers)")
        let spans = try await eventually(within: .seconds(10)) {
            let spans = tracer.finishedSpans
            guard let tick = spans.first(where: { $0.operationName == "schedule tenant-report" }),
                let run = spans.first(where: { $0.operationName == "run echo" })
            else { throw WaitError("spans so far: \(spans.map(\.operationName))") }
            return (tick, run)
        }
        #expect(spans.0.kind == .producer && spans.1.kind == .consumer)
        #expect(spans.1.traceID == spans.0.traceID && spans.1.parentSpanID == spans.0.spanID, "the run is a child of the tick")
    }

    @Test("a schedule of a task whose catalogue is older than 15 minutes shows its last run and mark from the task's queue")
    func agedCatalogue() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var published = TaskRegistry()
        try published.register(Ledger.self)
        let catalogue = TaskCatalogue(published)
        try await environment.broker.publish(catalogue)
        // Last published an hour ago: the API no longer accepts the task's jobs, but schedulers still run it.
        let hourAgo = Int(Date().timeIntervalSince1970 * 1000) - 3_600_000
        _ = try await environment.client.send(RedisCommand("ZADD", environment.broker.keys.catalogues, "XX", hourAgo, catalogue.version))
        let store = ScheduleStore(client: environment.client, keys: environment.broker.keys)
        try await store.put(ScheduleDefinition(name: "ledger-close", task: "ledger.close", input: .object(["day": .number(1)]), everySeconds: 60))
        let request = EnqueueRequest(task: "ledger.close", input: Data(#"{"day":1}"#.utf8), options: Ledger.options)
        guard case .emitted(let id) = try await environment.broker.emitTick(schedule: "ledger-close", tick: 120_000, mark: 120_000, skipIfRunning: false, request: request)
        else { Issue.record("tick not emitted"); return }
        let api = APIContext(
            broker: environment.broker, registry: environment.registry, configuration: APIConfiguration(), access: .none,
            scheduleStore: store, checkReady: {})
        try await Application(router: buildRouter(api)).test(.router) { http in
            try await http.execute(uri: "/v1/schedules/ledger-close", method: .get) { response in
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any] ?? [:]
                #expect((body["last_run"] as? [String: Any])?["job"] as? String == id.rawValue, "\(body)")
                #expect(body["mark_at"] as? String == "1970-01-01T00:02:00.000Z")
            }
        }
    }

    @Test("POST /v1/schedules/{name}/run: 201 with the job, paused or not; overlap skip is a 409 naming the job; 404 unknown")
    func route() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let store = ScheduleStore(client: environment.client, keys: environment.broker.keys)
        var definition = ScheduleDefinition(name: "nightly", task: "echo", input: .string("hi"), cron: "0 3 * * *")
        definition.overlap = "skip"
        definition.enabled = false
        try await store.put(definition)
        let schedule = try definition.schedule()
        let api = APIContext(
            broker: environment.broker, registry: environment.registry, configuration: APIConfiguration(), access: .none,
            scheduleStore: store, checkReady: {})
        try await Application(router: buildRouter(api)).test(.router) { http in
            let id = try await http.execute(uri: "/v1/schedules/nightly/run", method: .post) { response in
                #expect(response.status == .created)
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any] ?? [:]
                #expect(body["state"] as? String == "queued")
                #expect(response.headers[.location] == "/v1/jobs/\(body["id"] as? String ?? "")")
                return try #require((body["id"] as? String).flatMap(JobID.init))
            }
            let record = try #require(try await environment.broker.job(id))
            #expect(record.schedule == "nightly")
            #expect(record.input == Data(#""hi""#.utf8))
            try await http.execute(uri: "/v1/schedules/nightly", method: .get) { response in
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any] ?? [:]
                #expect((body["last_run"] as? [String: Any])?["job"] as? String == id.rawValue)
                #expect(body["enabled"] as? Bool == false)
                #expect(body["mark_at"] is NSNull, "a run now leaves the mark alone")
            }
            try await http.execute(uri: "/v1/schedules/nightly/run", method: .post) { response in
                #expect(response.status == .conflict)
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any] ?? [:]
                #expect(body["code"] as? String == "schedule_overlap")
                #expect(body["job"] as? String == id.rawValue)
                #expect((body["detail"] as? String ?? "").contains("has not finished"))
            }
            try await http.execute(uri: "/v1/schedules/absent/run", method: .post) { #expect($0.status == .notFound) }
            // A tick skipped for overlap moves the mark past the last run: GET shows both.
            let request = try #require(schedule.request(registry: environment.registry, jittered: false))
            #expect(try await environment.broker.emitTick(schedule: "nightly", tick: 86_400_000, mark: 86_400_000, skipIfRunning: true, request: request)
                == .overlapped(lastJob: id))
            try await http.execute(uri: "/v1/schedules/nightly", method: .get) { response in
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any] ?? [:]
                #expect(body["mark_at"] as? String == "1970-01-02T00:00:00.000Z")
                #expect((body["last_run"] as? [String: Any])?["job"] as? String == id.rawValue)
            }
        }
        #expect(try await emittedTicks(environment).count == 1)
    }
}

/// A task of another application, known here only from its workers' catalogue.
private struct Ledger: TernTask {
    struct Input: Codable, Sendable { var day: Int }
    typealias Output = Bool
    static let name = "ledger.close"
    static let options = TaskOptions(queue: "ledger")
    func run(_ input: Input, context: JobContext) async throws -> Bool { true }
}
