import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Tasks
import TernCore
import TernTesting
import Testing

/// Whether the long variants of the fault suite run (`TERN_FAULTS_FULL=1 scripts/test`).
private let fullFaultSuite = ProcessInfo.processInfo.environment["TERN_FAULTS_FULL"] == "1"

/// The API on `environment`'s Redis as `tern api` configures it: an 800 ms command timeout and a
/// 500 ms connect timeout, so that a request learns of an outage within a second.
private func withProductionAPI(
    _ environment: JobEnvironment, caps: QueueCaps = QueueCaps(),
    _ body: @escaping @Sendable (any TestClientProtocol, RedisJobBroker) async throws -> Void
) async throws {
    var configuration = try RedisConfiguration(url: environment.server.url)
    configuration.commandTimeout = .milliseconds(800)
    configuration.connectTimeout = .milliseconds(500)
    let client = RedisClient(configuration: configuration)
    defer { client.close() }
    let broker = try RedisJobBroker(client: client, prefix: environment.broker.keys.prefix, caps: caps)
    let api = APIContext(broker: broker, registry: environment.registry, configuration: APIConfiguration(), access: .none) {
        _ = try await client.send(RedisCommand("PING"))
    }
    try await Application(router: buildRouter(api)).test(.router) { http in try await body(http, broker) }
}

/// One answer of the API: status, `Retry-After`, how long it took, and the job id if one was created.
private struct Answer: Sendable {
    let status: HTTPResponse.Status
    let retryAfter: String?
    let took: Duration
    let id: String?
}

private func post(_ http: any TestClientProtocol, _ json: String, uri: String = "/v1/jobs") async throws -> Answer {
    let started = ContinuousClock.now
    return try await http.execute(
        uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: json)
    ) { response in
        let object = try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        return Answer(
            status: response.status, retryAfter: response.headers[.retryAfter], took: ContinuousClock.now - started,
            id: response.status == .created ? object?["id"] as? String : nil)
    }
}

private func get(_ http: any TestClientProtocol, _ uri: String) async throws -> Answer {
    let started = ContinuousClock.now
    return try await http.execute(uri: uri, method: .get) { response in
        Answer(status: response.status, retryAfter: response.headers[.retryAfter], took: ContinuousClock.now - started, id: nil)
    }
}

/// CPU seconds a process has used (user + system), from `/proc/<pid>/stat`.
private func cpuSeconds(_ pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 0, utime field 11, stime field 12 (clock ticks).
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// How Redis is unreachable in F6: frozen with SIGSTOP, or killed (connections refused), and for how long.
struct Outage: Sendable, CustomTestStringConvertible {
    let frozen: Bool
    let seconds: Int
    var testDescription: String { "\(frozen ? "frozen" : "stopped") for \(seconds) s" }

    /// 5 s each way; 30 s too with `TERN_FAULTS_FULL=1`.
    static var cases: [Outage] {
        let lengths = fullFaultSuite ? [5, 30] : [5]
        return lengths.flatMap { seconds in [Outage(frozen: true, seconds: seconds), Outage(frozen: false, seconds: seconds)] }
    }
}

/// A value shared by concurrent tasks of a test.
private final class Shared<Value: Sendable>: Sendable {
    let lock: Mutex<Value>
    init(_ value: Value) { lock = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&$0) } }
}

extension Shared where Value == [Answer] {
    /// Whether the producers of F9 have seen 100 refusals.
    var enoughRefusals: Bool { withLock { list in list.filter { $0.status == .tooManyRequests }.count >= 100 } }
}

/// A test client handed to concurrent producer tasks; it is only used to send requests.
private struct SharedClient: @unchecked Sendable {
    let http: any TestClientProtocol
}

/// F5, F6 and F9 of RELIABILITY.md and Redis out of memory: real redis-server, real worker
/// processes, the API as `tern api` runs it.
extension HeavyProcessTests {
    @Suite("Fault suite: Redis outages, backpressure, out of memory", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct FaultTests {
        @Test("F5: redis-server killed and restarted under enqueue load: every accepted job survives, refusals are fast 503s")
        func redisRestartUnderLoad() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let worker = try SupervisorProcess(environment, ["--processes", "1", "--concurrency", "8"], name: "worker")
            defer { worker.killIfRunning() }
            let answers = Shared([Answer]())
            try await withProductionAPI(environment) { http, _ in
                let shared = SharedClient(http: http)
                let stop = ContinuousClock.now + .seconds(7)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for producer in 0..<4 {
                        group.addTask {
                            var index = 0
                            while ContinuousClock.now < stop {
                                let answer = try await post(shared.http, #"{"task":"echo","input":[\#(producer),\#(index)]}"#)
                                answers.withLock { $0.append(answer) }
                                index += 1
                                if answer.status != .created { try await Task.sleep(for: .milliseconds(50)) }
                            }
                        }
                    }
                    group.addTask {
                        try await Task.sleep(for: .seconds(2))
                        await environment.server.kill()
                        try await Task.sleep(for: .seconds(2))
                        try await environment.server.restart()
                    }
                    try await group.waitForAll()
                }
            }
            let all = answers.withLock { $0 }
            let accepted = all.compactMap(\.id)
            let refused = all.filter { $0.status == .serviceUnavailable }
            #expect(accepted.count > 10 && !refused.isEmpty, "\(accepted.count) accepted, \(refused.count) refused")
            #expect(all.allSatisfy { $0.status == .created || $0.status == .serviceUnavailable })
            for answer in refused {
                #expect(answer.retryAfter == "1")
                // 800 ms command timeout; the bound allows for a loaded machine.
                recordTiming("F5 a 503 while Redis restarts", answer.took, bound: .seconds(5))
            }
            // Every accepted job is there after the restart and runs; the worker reconnected by itself.
            for id in accepted {
                let record = try await environment.waitFor(try #require(JobID(id)), .succeeded, within: .seconds(60))
                #expect(record.state == .succeeded)
            }
            #expect(worker.process.isRunning)
            #expect(!worker.logText.contains("worker process died"))
            #expect(await worker.stop())
        }

        @Test(
            "F6: Redis unreachable (frozen, stopped): fast 503s, /readyz flips, held jobs finish, no hot loop, processing resumes",
            .serialized, arguments: Outage.cases)
        func redisUnreachable(outage kind: Outage) async throws {
            let frozen = kind.frozen, seconds = kind.seconds
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            // The lease outlasts the outage, so the job held through it is reported once Redis is back.
            let worker = try SupervisorProcess(
                environment, ["--processes", "1", "--concurrency", "4", "--lease", "\(seconds + 20)"], name: "worker")
            defer { worker.killIfRunning() }
            let child = try #require(try await worker.waitForChildren(environment.broker, count: 1).first)
            try await withProductionAPI(environment) { http, _ in
                let held = try #require(try await post(http, #"{"task":"sleep","input":{"ms":4000}}"#).id)
                // Held by the worker, not only claimed in Redis: a claim whose reply the outage swallows
                // leaves the job to the reaper after its lease (docs/operations.md), which is not this test.
                _ = try await environment.waitForProgress(try #require(JobID(held)))

                let cpuBefore = cpuSeconds(child.pid)
                let outage = ContinuousClock.now
                if frozen { environment.server.send(signal: SIGSTOP) } else { await environment.server.kill() }
                // /readyz fails within 2 s; every request answers 503 with Retry-After within a second.
                _ = try await eventually(within: .seconds(10)) {
                    let ready = try await get(http, "/readyz")
                    guard ready.status == .serviceUnavailable else { throw WaitError("/readyz still \(ready.status)") }
                    return ready
                }
                recordTiming("F6 /readyz flips after the outage starts", ContinuousClock.now - outage, bound: .seconds(5))
                for _ in 0..<3 {
                    let enqueue = try await post(http, #"{"task":"echo","input":1}"#)
                    #expect(enqueue.status == .serviceUnavailable && enqueue.retryAfter == "1")
                    recordTiming("F6 an enqueue's 503 during the outage", enqueue.took, bound: .seconds(5))
                    let read = try await get(http, "/v1/jobs/\(held)")
                    #expect(read.status == .serviceUnavailable)
                    recordTiming("F6 a read's 503 during the outage", read.took, bound: .seconds(5))
                }
                try await Task.sleep(until: outage + .seconds(seconds))
                // No hot loop: the worker process reconnects with backoff, using little CPU meanwhile.
                let cpu = cpuSeconds(child.pid) - cpuBefore
                #expect(cpu < Double(seconds) * 0.25, "the worker used \(cpu) s of CPU in a \(seconds) s outage")
                if frozen { environment.server.send(signal: SIGCONT) } else { try await environment.server.restart() }
                let back = ContinuousClock.now

                // Processing resumes within 3 s: a job enqueued now runs (allowing for a loaded machine).
                let fresh = try await eventually(within: .seconds(15)) {
                    guard let id = try await post(http, #"{"task":"echo","input":"after"}"#).id else { throw WaitError("not accepted yet") }
                    return id
                }
                _ = try await environment.waitFor(try #require(JobID(fresh)), .succeeded, within: .seconds(15))
                recordTiming("F6 a new job succeeds after Redis is back", ContinuousClock.now - back, bound: .seconds(10))
                let record = try await environment.waitFor(try #require(JobID(held)), .succeeded, within: .seconds(30))
                if frozen {
                    // The job held through the outage finished and was reported once.
                    #expect(record.attempts == 1 && record.lostLeases == 0, "\(record.errors.map(\.message))\n\(worker.logText.suffix(8000))")
                } else {
                    // A killed Redis with appendfsync everysec may lose its last second of writes when
                    // an fsync was slow (docs/operations.md): the claim can be lost and the job run
                    // again, but the job itself, accepted long before, is never lost.
                    #expect(record.attempts <= 2, "\(record.attempts) attempts: \(record.errors.map(\.message))")
                }
            }
            // The same process, registered again after the outage: it was never restarted.
            _ = try await eventually(within: .seconds(20)) {
                let pids = try await worker.children(environment.broker).map(\.pid)
                guard pids == [child.pid] else { throw WaitError("registered processes: \(pids), expected \([child.pid])") }
                return pids
            }
            #expect(!worker.logText.contains("worker process died"))
            #expect(await worker.stop())
        }

        @Test("F9: a queue filling faster than workers drain: its cap answers 429 with Retry-After, nothing accepted is lost")
        func backpressure() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let cap = 50
            // One slot, 100 ms jobs: the queue drains at about 10 jobs a second, far slower than it fills.
            let worker = try SupervisorProcess(environment, ["--processes", "1", "--concurrency", "1"], name: "worker")
            defer { worker.killIfRunning() }
            let answers = Shared([Answer]())
            let highest = Shared(0)
            try await withProductionAPI(environment, caps: QueueCaps(maxPending: cap)) { http, broker in
                let shared = SharedClient(http: http)
                // Producers send until 100 jobs were refused (or 60 s pass on a very slow machine).
                let stop = ContinuousClock.now + .seconds(60)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            while ContinuousClock.now < stop && !answers.enoughRefusals {
                                let answer = try await post(shared.http, #"{"task":"sleep","input":{"ms":100}}"#)
                                answers.withLock { $0.append(answer) }
                            }
                        }
                    }
                    group.addTask {
                        while ContinuousClock.now < stop && !answers.enoughRefusals {
                            let stats = try await broker.stats(.default)
                            highest.withLock { $0 = max($0, stats.pending + stats.scheduled) }
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let all = answers.withLock { $0 }
            let accepted = all.compactMap(\.id)
            let refused = all.filter { $0.status == .tooManyRequests }
            #expect(refused.count >= 100 && accepted.count >= cap, "\(accepted.count) accepted, \(refused.count) refused")
            #expect(refused.allSatisfy { $0.retryAfter == "2" })
            #expect(all.allSatisfy { $0.status == .created || $0.status == .tooManyRequests })
            #expect(highest.withLock { $0 } <= cap)
            for id in accepted {
                _ = try await environment.waitFor(try #require(JobID(id)), .succeeded, within: .seconds(120))
            }
            let resident = try #require(try await worker.children(environment.broker).first).pid
            let statm = try String(contentsOfFile: "/proc/\(resident)/statm", encoding: .utf8).split(separator: " ")
            let megabytes = (Int(statm[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
            #expect(megabytes < 200, "the worker process holds \(megabytes) MiB")
            #expect(await worker.stop())
        }

        @Test("Redis out of memory: enqueue answers 503 store_full; a running job's completion is retried and lands")
        func outOfMemory() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let worker = try SupervisorProcess(environment, ["--processes", "1", "--concurrency", "2", "--lease", "30"], name: "worker")
            defer { worker.killIfRunning() }
            try await withProductionAPI(environment) { http, _ in
                let running = try #require(try await post(http, #"{"task":"sleep","input":{"ms":4000}}"#).id)
                _ = try await environment.waitFor(try #require(JobID(running)), .running)
                // Far below what Redis uses now: every write is refused with OOM.
                _ = try await environment.client.send(RedisCommand("CONFIG", "SET", "maxmemory-policy", "noeviction"))
                _ = try await environment.client.send(RedisCommand("CONFIG", "SET", "maxmemory", "1"))
                let refused = try await post(http, #"{"task":"echo","input":"x"}"#)
                #expect(refused.status == .serviceUnavailable)
                #expect(refused.retryAfter == "5")
                let code = try await http.execute(
                    uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"task":"echo","input":"x"}"#)
                ) { response in
                    (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])?["code"] as? String
                }
                #expect(code == "store_full")
                // The job finishes while Redis is full; its report is retried until memory is freed.
                try await Task.sleep(for: .seconds(6))
                let during = try await environment.broker.job(try #require(JobID(running)))
                #expect(during?.state == .running, "\(during?.state.rawValue ?? "-") \(during?.errors.map(\.message) ?? [])")
                _ = try await environment.client.send(RedisCommand("CONFIG", "SET", "maxmemory", "0"))
                let record = try await environment.waitFor(try #require(JobID(running)), .succeeded, within: .seconds(30))
                #expect(record.attempts == 1 && record.lostLeases == 0, "\(record.errors.map(\.message))\n\(worker.logText.suffix(8000))")
                #expect(try await post(http, #"{"task":"echo","input":"y"}"#).status == .created)
            }
            #expect(worker.process.isRunning)
            #expect(await worker.stop())
        }
    }
}
