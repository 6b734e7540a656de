import Broker
import Foundation
import Logging
import Scheduler
import TernCore
import TernTesting
import Testing

private let quiet = Logger(label: "test.scheduler", factory: { _ in SwiftLogNoOpLogHandler() })

/// The ticks of every job schedules emitted (queued or scheduled), in order.
func emittedTicks(_ environment: JobEnvironment, queue: QueueName = .default) async throws -> [Int64] {
    var ticks: [Int64] = []
    for state in [JobState.queued, .scheduled] {
        var cursor: String?
        repeat {
            let page = try await environment.broker.jobs(queue: queue, state: state, cursor: cursor, limit: 100)
            ticks += page.jobs.compactMap(\.tickMilliseconds)
            cursor = page.nextCursor
        } while cursor != nil
    }
    return ticks.sorted()
}

/// The most any schedule job on `queue` was created after its tick, in milliseconds: a tick that
/// no live replica emitted on time is emitted late by one that comes back (within the lateness).
func latestEmission(_ environment: JobEnvironment, queue: QueueName = .default) async throws -> Int64 {
    var latest: Int64 = 0
    for state in [JobState.queued, .scheduled] {
        var cursor: String?
        repeat {
            let page = try await environment.broker.jobs(queue: queue, state: state, cursor: cursor, limit: 100)
            for job in page.jobs { if let tick = job.tickMilliseconds { latest = max(latest, job.createdMilliseconds - tick) } }
            cursor = page.nextCursor
        } while cursor != nil
    }
    return latest
}

@Suite("Scheduler on real Redis", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct SchedulerRedisTests {
    @Test("a tick is emitted once: again, or an older tick, is a duplicate; the job records schedule and tick")
    func exactlyOnce() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let broker = environment.broker
        let request = EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions())
        let first = try await broker.emitTick(schedule: "s", tick: 10_000, mark: 10_000, skipIfRunning: false, request: request)
        guard case .emitted(let id) = first else { Issue.record("not emitted: \(first)"); return }
        #expect(try await broker.emitTick(schedule: "s", tick: 10_000, mark: 10_000, skipIfRunning: false, request: request) == .duplicate(lastJob: id))
        #expect(try await broker.emitTick(schedule: "s", tick: 5_000, mark: 5_000, skipIfRunning: false, request: request) == .duplicate(lastJob: id))
        let record = try #require(try await broker.job(id))
        #expect(record.schedule == "s")
        #expect(record.tickMilliseconds == 10_000)
        #expect(record.state == .queued)
        // Overlap skip: the last job is still queued, so the next tick is skipped, and its mark kept.
        #expect(try await broker.emitTick(schedule: "s", tick: 20_000, mark: 20_000, skipIfRunning: true, request: request) == .overlapped(lastJob: id))
        #expect(try await broker.emitTick(schedule: "s", tick: 20_000, mark: 20_000, skipIfRunning: false, request: request) == .duplicate(lastJob: id))
        // Allowed overlap: a new job although the last one has not run.
        guard case .emitted(let second) = try await broker.emitTick(schedule: "s", tick: 30_000, mark: 30_000, skipIfRunning: false, request: request)
        else { Issue.record("tick 30000 not emitted"); return }
        #expect(second != id)
        // Once the last job finished, skip-if-running emits again.
        #expect(try await broker.cancel(second) == .cancelled)
        guard case .emitted = try await broker.emitTick(schedule: "s", tick: 40_000, mark: 40_000, skipIfRunning: true, request: request)
        else { Issue.record("tick 40000 not emitted"); return }
        #expect(try await emittedTicks(environment) == [10_000, 40_000])
    }

    @Test("a schedule's job carries its task's limit key, taken from its input, by a tick and by a run now")
    func limitKey() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let options = TaskOptions(limit: .rate(1, per: .seconds(3600)).keyed(by: "customer"))
        let request = EnqueueRequest(task: "echo", input: Data(#"{"customer":"acme"}"#.utf8), options: options)
        let tick = try await environment.broker.emitTick(schedule: "k", tick: 10_000, mark: 10_000, skipIfRunning: false, request: request)
        let manual = try await environment.broker.runSchedule("k", skipIfRunning: false, request: request)
        for emission in [tick, manual] {
            guard case .emitted(let id) = emission else { Issue.record("not emitted: \(emission)"); continue }
            #expect(try await environment.broker.job(id)?.limitKey == "acme")
        }
    }

    @Test("a schedule whose mark cannot be read (an error reply) is skipped, not taken as new, and does not hold back the schedules after it")
    func unreadableMark() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let keys = environment.broker.keys
        // A user that may touch the queue `default` and the list of queues, nothing else.
        _ = try await environment.client.send(RedisCommand("ACL", arguments: [
            "SETUSER", "default-only", "on", ">default-only-secret", "resetkeys", "~\(keys.base(.default))*", "~\(keys.queues)", "+@all",
        ]))
        let client = RedisClient(configuration: try RedisConfiguration(
            url: "redis://default-only:default-only-secret@127.0.0.1:\(environment.server.port)"))
        defer { client.close() }
        let schedules = [
            Schedule(name: "elsewhere", trigger: .interval(.seconds(1)), task: "echo", input: Data("1".utf8), queue: "forbidden"),
            Schedule(name: "here", trigger: .interval(.seconds(1)), task: "echo", input: Data("2".utf8)),
        ]
        let service = try SchedulerService(
            broker: try RedisJobBroker(client: client, prefix: keys.prefix), schedules: schedules, registry: environment.registry,
            logger: quiet)
        // The pass fails for `elsewhere` (NOPERM), after emitting the tick of `here`.
        await #expect(throws: (any Error).self) { try await service.pass() }
        #expect(try await emittedTicks(environment).count == 1)
        #expect(try await emittedTicks(environment, queue: "forbidden").isEmpty)
    }

    @Test("a stored schedule's update (pause, resume) never undoes a change made meanwhile, nor brings back a deleted schedule")
    func storeUpdate() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let keys = environment.broker.keys
        let store = ScheduleStore(client: environment.client, keys: keys)
        try await store.put(ScheduleDefinition(name: "s", task: "echo", input: .number(1), everySeconds: 5))
        let read = try #require(try await environment.client.send(RedisCommand("HGET", keys.schedules, "s")).bytes)
        // A change lands after the read: a write of what was read would undo it, so it is refused.
        try await store.put(ScheduleDefinition(name: "s", task: "echo", input: .number(1), everySeconds: 60))
        var paused = try JSONDecoder().decode(ScheduleDefinition.self, from: Data(read))
        paused.enabled = false
        #expect(try await !environment.client.swapSchedule("s", in: keys, expected: read, replacement: try JSONEncoder().encode(paused)))
        #expect(try await store.get("s")?.everySeconds == 60)
        // Through update, the change is made on what is stored now.
        let updated = try await store.update("s") { $0.enabled = false }
        #expect(updated?.enabled == false && updated?.everySeconds == 60)
        #expect(try await store.get("s") == updated)
        // Deleted after the read: nothing comes back.
        let current = try #require(try await environment.client.send(RedisCommand("HGET", keys.schedules, "s")).bytes)
        try await store.delete("s")
        #expect(try await !environment.client.swapSchedule("s", in: keys, expected: current, replacement: Data(current)))
        #expect(try await store.update("s") { $0.enabled = true } == nil)
        #expect(try await store.get("s") == nil)
    }

    @Test("catch-up after downtime: skip emits nothing missed, once one job, all each missed tick up to the limit", arguments: [
        ("skip", 0), ("once", 1), ("all-1", 1), ("all-10", 2),
    ])
    func catchUp(policy: String, jobs: Int) async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        // Leap days only: missed ticks 2020-02-29 and 2024-02-29 since a mark in 2019, none on time.
        var definition = ScheduleDefinition(name: "leap", task: "echo", input: .number(1), cron: "0 0 29 2 *")
        definition.catchUp = policy.hasPrefix("all") ? "all" : policy
        definition.catchUpLimit = policy == "all-1" ? 1 : 10
        let schedule = try definition.schedule()
        let mark = Int64(1_546_300_800_000)  // 2019-01-01T00:00:00Z
        _ = try await environment.client.send(RedisCommand("HSET", environment.broker.keys.scheduleMark(.default, "leap"), "mark", Int(mark)))
        let service = try SchedulerService(broker: environment.broker, schedules: [schedule], registry: environment.registry, logger: quiet)
        try await service.pass()
        let emitted = try await emittedTicks(environment)
        #expect(emitted.count == jobs)
        let leapDays: [Int64] = [1_582_934_400_000, 1_709_164_800_000]  // 2020-02-29, 2024-02-29
        #expect(emitted == Array(leapDays.prefix(jobs)))
        // The mark moved past the missed ticks: a second pass emits nothing more.
        try await service.pass()
        #expect(try await emittedTicks(environment).count == jobs)
    }

    @Test("three replicas on an every-second schedule emit exactly one job per tick, with no gap while one stops")
    func replicas() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let schedule = Schedule(name: "every-second", trigger: .interval(.seconds(1)), task: "echo", input: Data(#"{"tick":true}"#.utf8))
        var configuration = SchedulerConfiguration()
        configuration.pollInterval = .milliseconds(100)
        let replicas = try (0..<3).map { _ in
            try SchedulerService(broker: environment.broker, schedules: [schedule], registry: environment.registry, configuration: configuration, logger: quiet)
        }
        let runs = replicas.map { replica in Task { try await replica.run() } }
        try await Task.sleep(for: .seconds(2))
        replicas[0].shutdown()  // one replica stops; the others carry on
        try await Task.sleep(for: .seconds(3))
        replicas[1].shutdown()
        try await Task.sleep(for: .seconds(2))
        replicas[2].shutdown()
        for run in runs { try await run.value }
        let emitted = try await emittedTicks(environment)
        #expect(emitted.count >= 5, "\(emitted)")
        #expect(Set(emitted).count == emitted.count, "a tick was emitted twice: \(emitted)")
        #expect(zip(emitted, emitted.dropFirst()).allSatisfy { $1 - $0 == 1000 }, "a gap: \(emitted)")
        // On time while a replica lives, not filled in later: each pass is 100 ms apart.
        recordTiming("the latest tick emitted by in-process replicas", .milliseconds(try await latestEmission(environment)), bound: .seconds(3))
    }

    @Test("an invalid schedule is refused when loaded, naming the schedule and the problem")
    func validation() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let cases: [(Schedule, String)] = [
            (Schedule(name: "bad input", trigger: .interval(.seconds(5)), task: "sleep", input: Data(#"{"ms":"x"}"#.utf8)), "schedule 'bad input': names are 1-128 characters of a-z A-Z 0-9 . _ -"),
            (Schedule(name: "s", trigger: .interval(.seconds(5)), task: "sleep", input: Data(#"{"ms":"x"}"#.utf8)), "schedule 's': input does not fit task 'sleep': /ms: Expected to decode Int but found a string instead."),
            (Schedule(name: "s", trigger: .interval(.milliseconds(10)), task: "echo", input: Data("1".utf8)), "schedule 's': the interval must be 1 second to 366 days"),
            (Schedule(name: "s", trigger: .cron(CronSchedule(try CronExpression("0 0 30 2 *"), timeZone: .gmt)), task: "echo", input: Data("1".utf8)), "schedule 's': the cron expression never matches"),
        ]
        for (schedule, message) in cases {
            #expect(throws: ScheduleError.self) {
                try SchedulerService(broker: environment.broker, schedules: [schedule], registry: environment.registry, logger: quiet)
            }
            do {
                _ = try SchedulerService(broker: environment.broker, schedules: [schedule], registry: environment.registry, logger: quiet)
            } catch {
                #expect(error.description == message)
            }
        }
    }
}

@Suite("Scheduler following stored schedules", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct StoredScheduleTests {
    @Test("a schedule stored (as over the API) takes effect without a restart; deleted, it stops")
    func followsStore() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let store = ScheduleStore(client: environment.client, keys: environment.broker.keys)
        var configuration = SchedulerConfiguration()
        configuration.pollInterval = .milliseconds(100)
        let service = try SchedulerService(
            broker: environment.broker, schedules: [], registry: environment.registry, configuration: configuration,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), store: store)
        let run = Task { try await service.run() }
        defer { service.shutdown() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await emittedTicks(environment).isEmpty)
        try await store.put(ScheduleDefinition(name: "live", task: "echo", input: .number(1), everySeconds: 1))
        let first = try await eventually(within: .seconds(10)) {
            let emitted = try await emittedTicks(environment)
            guard emitted.count >= 2 else { throw WaitError("waiting for ticks of the stored schedule") }
            return emitted
        }
        #expect(zip(first, first.dropFirst()).allSatisfy { $1 - $0 == 1000 })
        let last = try #require(try await store.lastRun("live", queue: .default))
        #expect(try await environment.broker.job(try #require(JobID(last.job)))?.tickMilliseconds == last.tick)
        try await store.delete("live")
        try await Task.sleep(for: .seconds(2))  // a pass in flight may still emit one
        let afterDelete = try await emittedTicks(environment).count
        try await Task.sleep(for: .seconds(2))
        #expect(try await emittedTicks(environment).count == afterDelete)
        service.shutdown()
        try await run.value
    }
}

/// A task of an application this scheduler has no code for: only its workers' catalogue names it.
private struct ShopReport: TernTask {
    struct Input: Codable, Sendable { var day: Int }
    typealias Output = Bool
    static let name = "shop.report"
    static let options = TaskOptions(queue: "reports", priority: 7, maxAttempts: 4)
    func run(_ input: Input, context: JobContext) async throws -> Bool { true }
}

@Suite("Scheduler and published tasks", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct PublishedScheduleTests {
    @Test("schedules of a task with no code here wait for a worker to publish it, then run with its published options")
    func publishedTask() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let store = ScheduleStore(client: environment.client, keys: environment.broker.keys)
        let configured = Schedule(name: "report-config", trigger: .interval(.seconds(1)), task: "shop.report", input: Data(#"{"day":3}"#.utf8))
        let service = try SchedulerService(
            broker: environment.broker, schedules: [configured], registry: environment.registry, logger: quiet, store: store)
        try await store.put(ScheduleDefinition(name: "report-stored", task: "shop.report", input: .object(["day": .number(4)]), everySeconds: 1))
        try await store.put(ScheduleDefinition(name: "report-bad", task: "shop.report", input: .object(["day": .string("x")]), everySeconds: 1))
        // A stored schedule named as the configured one: the config file wins, even while its schedule is left out.
        try await store.put(ScheduleDefinition(name: "report-config", task: "echo", input: .number(9), everySeconds: 1))

        // No catalogue has the task yet: every schedule of it is left out, and nothing is emitted.
        try await service.pass()
        #expect(service.schedules.isEmpty)
        #expect(try await emittedTicks(environment, queue: "reports").isEmpty)

        var published = TaskRegistry()
        try published.register(ShopReport.self)
        try await environment.broker.publish(TaskCatalogue(published))
        // The next pass sees a new catalogue version, reads it and emits one tick of each schedule
        // that fits; the one whose input does not fit the published schema stays out.
        let emitted = try await service.pass()
        #expect(Set(service.schedules.map(\.name)) == ["report-config", "report-stored"])
        #expect(Set(emitted.keys) == ["report-config", "report-stored"], "\(emitted)")
        let page = try await environment.broker.jobs(queue: "reports", state: .queued, cursor: nil, limit: 10)
        #expect(page.jobs.count == 2)
        for job in page.jobs {
            #expect(job.task == "shop.report" && job.priority == 7 && job.maxAttempts == 4)
            let input = String(decoding: job.input, as: UTF8.self)
            #expect(job.schedule == "report-config" ? input == #"{"day":3}"# : input == #"{"day":4}"#, "\(input)")
        }
    }

    @Test("a configured schedule of a task compiled in is still checked when the scheduler starts")
    func compiledStillStrict() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let bad = Schedule(name: "s", trigger: .interval(.seconds(5)), task: "sleep", input: Data(#"{"ms":"x"}"#.utf8))
        #expect(throws: ScheduleError.self) {
            try SchedulerService(broker: environment.broker, schedules: [bad], registry: environment.registry, logger: quiet)
        }
        // A task compiled nowhere: its own fields are checked at once, its input once a catalogue has it.
        let badPriority = Schedule(name: "p", trigger: .interval(.seconds(5)), task: "shop.report", input: Data("{}".utf8), priority: 12)
        do {
            _ = try SchedulerService(broker: environment.broker, schedules: [badPriority], registry: environment.registry, logger: quiet)
            Issue.record("a priority of 12 was accepted")
        } catch {
            #expect(error.description == "schedule 'p': priority must be 0-9")
        }
    }
}
