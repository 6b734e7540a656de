import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Scheduler
import TernCore
import TernTesting
import Testing

/// The commands the Functions library runs, which every user calling it needs (docs/operations.md).
private let libraryCommands = [
    "+time", "+get", "+set", "+del", "+unlink", "+hget", "+hset", "+hmget", "+hdel", "+hincrby", "+lpush", "+ltrim",
    "+persist", "+zadd", "+zcard", "+zrange", "+zrangebyscore", "+zrem", "+zpopmin", "+zremrangebyrank", "+zremrangebyscore",
    "+publish", "+pexpire", "+hsetnx", "+hlen", "+hgetall", "+hexists", "+zscore", "+sadd", "+srem", "+scard", "+lpop",
    "+rpush", "+exists",
]

/// The ACL users of docs/operations.md, for `prefix`: each component's own commands, on its keys only.
private func createUsers(_ admin: RedisClient, prefix: String) async throws {
    let common = ["resetkeys", "~\(prefix):*", "resetchannels", "&\(prefix):*", "-@all"] + libraryCommands
        + ["+fcall", "+fcall_ro", "+client|setname"]
    let users: [(String, [String])] = [
        ("tern-worker", ["+info", "+blpop", "+function|load"]),
        ("tern-api", ["+ping", "+sadd", "+smembers", "+hgetall", "+incr", "+psubscribe", "&\(prefix):{*}:events"]),
        ("tern-scheduler", ["+sadd", "+hgetall"]),
    ]
    for (name, own) in users {
        _ = try await admin.send(RedisCommand("ACL", arguments: ["SETUSER", name, "on", ">\(name)-secret"] + common + own))
    }
}

private func url(_ server: LocalRedisServer, user: String) -> String {
    "redis://\(user):\(user)-secret@127.0.0.1:\(server.port)"
}

@Suite("Redis ACL users", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct ACLTests {
    @Test("worker, API and scheduler each run under the restricted ACL user of docs/operations.md")
    func restrictedUsers() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let prefix = environment.broker.keys.prefix
        try await createUsers(environment.client, prefix: prefix)

        // The worker loads the Functions library itself (it has FUNCTION LOAD) and runs jobs.
        _ = try await environment.client.send(RedisCommand("FUNCTION", "FLUSH"))
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: WorkerBinary.path)
        worker.arguments = ["--redis-url", url(environment.server, user: "tern-worker"), "--prefix", prefix, "--heartbeat", "0.2"]
        let log = environment.server.directory + "/worker.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try worker.run()
        defer { if worker.isRunning { kill(worker.processIdentifier, SIGKILL) } }

        // The API as the API user: enqueue, read, list, pause and resume, store a schedule.
        var configuration = try RedisConfiguration(url: url(environment.server, user: "tern-api"))
        configuration.commandTimeout = .seconds(5)
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        let broker = try RedisJobBroker(client: client, prefix: prefix)
        let api = APIContext(
            broker: broker, registry: environment.registry, configuration: APIConfiguration(), access: .none,
            scheduleStore: ScheduleStore(client: client, keys: broker.keys)
        ) {
            _ = try await client.send(RedisCommand("PING"))
        }
        try await Application(router: buildRouter(api)).test(.router) { http in
            let json: HTTPFields = [.contentType: "application/json"]
            let id = try await eventually(within: .seconds(20)) {
                try await http.execute(uri: "/v1/jobs", method: .post, headers: json, body: ByteBuffer(string: #"{"task":"echo","input":"acl"}"#)) { response in
                    guard response.status == .created else { throw WaitError("enqueue answered \(response.status)") }
                    let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                    guard let text = object?["id"] as? String, let id = JobID(text) else { throw WaitError("no job id") }
                    return id
                }
            }
            let record = try await environment.waitFor(id, .succeeded)
            #expect(record.result == Data(#""acl""#.utf8))
            // A group: the API registers and creates its join; the worker's completions fan in.
            let group = ByteBuffer(string: #"{"group": [{"task": "echo", "input": 1}, {"task": "echo", "input": 2}]}"#)
            let flowText = try await http.execute(uri: "/v1/workflows", method: .post, headers: json, body: group) { response -> String? in
                #expect(response.status == .created, "\(String(buffer: response.body))")
                let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                return object?["id"] as? String
            }
            let flow = try #require(flowText.flatMap { JobID($0) })
            #expect(try await environment.waitFor(flow, .succeeded).result == Data("[1,2]".utf8))
            for (uri, method) in [
                ("/readyz", HTTPRequest.Method.get), ("/v1/jobs/\(id.rawValue)", .get), ("/v1/queues", .get), ("/v1/queues/default", .get),
                ("/v1/queues/default/jobs?state=succeeded", .get), ("/v1/workers", .get), ("/v1/queues/default/pause", .post),
                ("/v1/queues/default/resume", .post), ("/v1/schedules", .get),
            ] {
                try await http.execute(uri: uri, method: method) { response in
                    #expect(response.status == .ok, "\(method) \(uri): \(String(buffer: response.body))")
                }
            }
            // The worker's reaper, as its user, deletes the job once its retention has passed
            // (made due here by moving its entry in the terminal set).
            let admin = environment.client
            _ = try await admin.send(RedisCommand("ZADD", environment.broker.keys.queueKey(.default, .succeeded), "XX", 0, id.rawValue))
            try await eventually(within: .seconds(20)) {
                if try await admin.send(RedisCommand("EXISTS", environment.broker.keys.job(id))).int != 0 {
                    throw WaitError("the reaper has not deleted the finished job")
                }
            }
            let schedule = ByteBuffer(string: #"{"task":"echo","input":"tick","every_seconds":1}"#)
            try await http.execute(uri: "/v1/schedules/acl-tick", method: .put, headers: json, body: schedule) { response in
                #expect(response.status == .ok || response.status == .created, "\(String(buffer: response.body))")
            }
        }

        // The scheduler as its user fires the stored schedule; the worker runs the ticks.
        let scheduler = Process()
        scheduler.executableURL = URL(fileURLWithPath: WorkerBinary.path.replacingOccurrences(of: "/worker", with: "/scheduler"))
        scheduler.arguments = ["--redis-url", url(environment.server, user: "tern-scheduler")]
        scheduler.environment = ProcessInfo.processInfo.environment.merging(["TERN_PREFIX": prefix]) { $1 }
        let schedulerLog = environment.server.directory + "/scheduler.log"
        _ = FileManager.default.createFile(atPath: schedulerLog, contents: nil)
        scheduler.standardOutput = FileHandle.nullDevice
        scheduler.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: schedulerLog))
        try scheduler.run()
        defer { if scheduler.isRunning { kill(scheduler.processIdentifier, SIGKILL) } }
        _ = try await eventually(within: .seconds(30)) {
            let page = try await environment.broker.jobs(queue: .default, state: .succeeded, cursor: nil, limit: 100)
            let ticks = page.jobs.filter { $0.schedule == "acl-tick" }
            guard !ticks.isEmpty else {
                throw WaitError("no tick ran yet: \((try? String(contentsOfFile: schedulerLog, encoding: .utf8)) ?? "")")
            }
            return ticks
        }
        #expect(!((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("NOPERM"))
        kill(worker.processIdentifier, SIGTERM)
        await waitForExit(worker)
        #expect(worker.terminationStatus == 0)
    }

    @Test("a user limited to its prefix cannot touch another prefix's keys; a prefix that could escape is refused before Redis")
    func prefixes() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        try await createUsers(environment.client, prefix: "other")
        var configuration = try RedisConfiguration(url: url(environment.server, user: "tern-api"))
        configuration.commandTimeout = .seconds(5)
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        let foreign = try RedisJobBroker(client: client, prefix: environment.broker.keys.prefix)
        await #expect(throws: RedisError.self) { try await foreign.stats(.default) }
        for bad in ["tern*", "a:b", "x{y}", "", "tern prefix", String(repeating: "p", count: 65)] {
            #expect(throws: RedisError.self, "\(bad)") { try RedisJobKeys(prefix: bad) }
        }
        for bad in ["Default", "../x", "a:b", "{q}", "", "-x"] { #expect(QueueName(bad) == nil, "\(bad)") }
    }
}
