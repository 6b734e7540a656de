import Broker
import Foundation
import Logging
import Synchronization
import Tasks
import TernCore
import TernTesting
import Testing
import Worker

/// Enqueues `hot` echo jobs with limit key `hot`, and `others` each with a key of its own.
private func enqueueKeyed(_ broker: any JobBroker, hot: Int, others: Int) async throws -> (hot: [JobID], others: [JobID]) {
    func request(_ key: String) throws -> EnqueueRequest {
        var request = try TernClient.request(Echo.self, .string(key))
        request.limitKey = key
        return request
    }
    let hotIDs = try await broker.enqueue((0..<hot).map { _ in try request("hot") }).map(\.id)
    let otherIDs = try await broker.enqueue((0..<others).map { try request("k\($0)") }).map(\.id)
    return (hotIDs, otherIDs)
}

/// Checks the starts of `hot` (10/s) and `others` once the hot window has passed: 100 ± 2 hot
/// jobs started in the 10 s after the first, and every other job started before that window ended.
private func checkRate(_ broker: any JobBroker, hot: [JobID], others: [JobID]) async throws {
    let starts = try await eventually(within: .seconds(60)) {
        var starts: [Int64] = []
        for id in hot {
            if let started = try await broker.job(id)?.startedMilliseconds { starts.append(started) }
        }
        guard let first = starts.min(), let last = starts.max(), last - first >= 10_500 else {
            throw WaitError("\(starts.count) hot jobs started so far")
        }
        return starts.sorted()
    }
    let window = starts.filter { $0 < starts[0] + 10_000 }.count
    #expect((98...102).contains(window), "\(window) hot jobs started in 10 s at a limit of 10/s")
    var lastOther: Int64 = 0
    for id in others {
        let record = try #require(try await broker.job(id))
        #expect(record.state == .succeeded, "every other key ran, whatever the hot key waited")
        lastOther = max(lastOther, record.startedMilliseconds ?? .max)
    }
    #expect(lastOther < starts[0] + 10_000, "the other keys were not held behind the hot one")
}

/// Samples the running jobs of `queue` every 10 ms until `done`; the most seen.
private func sampleRunning(_ broker: any JobBroker, until done: @escaping @Sendable () async throws -> Bool) async throws -> Int {
    var most = 0
    while try await !done() {
        most = max(most, try await broker.stats(.default).running)
        try await Task.sleep(for: .milliseconds(10))
    }
    return most
}

extension HeavyProcessTests {
    @Suite("Limits across a fleet of workers")
    struct LimitProcessTests {
        private static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

        @Test("10/s on one key, 4 workers × 8 slots (in-process, memory broker): 100 ± 2 starts in 10 s, other keys at full speed")
        func rateOnMemory() async throws {
            let broker = MemoryJobBroker()
            try await broker.setLimit(.some(.rate(10, per: .seconds(1)).keyed(by: "k")), scope: .perKey(Echo.name), queue: .default, declared: false)
            let (hot, others) = try await enqueueKeyed(broker, hot: 130, others: 2000)
            var registry = TaskRegistry()
            try registry.register(Echo.self)
            var configuration = JobEnvironment.workerConfiguration(concurrency: 8)
            configuration.idleWait = .seconds(2)
            let workers = (0..<4).map { _ in
                JobWorker(broker: broker, registry: registry, configuration: configuration, logger: Self.quiet)
            }
            let running = workers.map { worker in Task { try await worker.run() } }
            defer { for worker in workers { worker.shutdown() } }
            try await checkRate(broker, hot: hot, others: others)
            for worker in workers { worker.shutdown() }
            for task in running { try await task.value }
        }

        @Test("10/s on one key, 4 worker processes × 8 slots on Redis: 100 ± 2 starts in 10 s, other keys at full speed",
            .enabled(if: TestRedis.enabled, TestRedis.reason))
        func rateOnRedis() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let broker = environment.broker
            try await broker.setLimit(.some(.rate(10, per: .seconds(1)).keyed(by: "k")), scope: .perKey(Echo.name), queue: .default, declared: false)
            let (hot, others) = try await enqueueKeyed(broker, hot: 130, others: 2000)
            let supervisor = try SupervisorProcess(environment, ["--processes", "4", "--concurrency", "8"])
            defer { supervisor.killIfRunning() }
            try await checkRate(broker, hot: hot, others: others)
            #expect(await supervisor.stop())
        }

        @Test("concurrency 3 on Redis is never exceeded (sampled every 10 ms) through a SIGKILL of a worker holding slots",
            .enabled(if: TestRedis.enabled, TestRedis.reason))
        func concurrencyThroughAKill() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let broker = environment.broker
            try await broker.setLimit(.some(.concurrency(3)), scope: .task(Sleep.name), queue: .default, declared: false)
            let ids = try await broker.enqueue((0..<12).map { _ in try TernClient.request(Sleep.self, .init(ms: 1500)) }).map(\.id)
            let supervisor = try SupervisorProcess(environment, ["--processes", "2", "--concurrency", "8"])
            defer { supervisor.killIfRunning() }
            let sampler = Task {
                try await sampleRunning(broker) { try await broker.stats(.default).succeeded >= ids.count }
            }
            // Kill a process while it runs a job: its slots stay taken until its leases are reaped.
            let victim = try await eventually(within: .seconds(30)) {
                let children = try await supervisor.children(broker)
                for id in ids {
                    guard let record = try await broker.job(id), record.state == .running,
                        let child = children.first(where: { $0.id == record.worker })
                    else { continue }
                    return (child, id)
                }
                throw WaitError("no process runs a job yet")
            }
            kill(victim.0.pid, SIGKILL)
            let most = try await sampler.value
            #expect(most == 3, "at most 3 ran at once, and 3 did")
            for id in ids {
                let record = try #require(try await broker.job(id))
                #expect(record.state == .succeeded)
            }
            // The supervisor reports its dead process's jobs at once (else the reaper would, after the lease).
            let errors = try #require(try await broker.job(victim.1)).errors.map(\.message)
            #expect(errors.contains { $0.hasPrefix("worker_crashed") || $0.hasPrefix("lease expired") }, "\(errors)")
            #expect(await supervisor.stop())
        }

        @Test("concurrency 3 on the memory broker through a worker that dies holding slots: never exceeded, the slots come back")
        func concurrencyOnMemory() async throws {
            let broker = MemoryJobBroker()
            try await broker.setLimit(.some(.concurrency(3)), scope: .task(Sleep.name), queue: .default, declared: false)
            let ids = try await broker.enqueue((0..<24).map { _ in try TernClient.request(Sleep.self, .init(ms: 200)) }).map(\.id)
            // A worker that claims two jobs under a short lease and dies without a word.
            let dead = try await broker.claim(queue: .default, limit: 2, worker: "dead", lease: .milliseconds(500))
            #expect(dead.count == 2)
            var registry = TaskRegistry()
            try registry.register(Sleep.self)
            var configuration = JobEnvironment.workerConfiguration(concurrency: 8)
            configuration.reaperInterval = .milliseconds(100)
            let workers = (0..<4).map { _ in JobWorker(broker: broker, registry: registry, configuration: configuration, logger: Self.quiet) }
            let running = workers.map { worker in Task { try await worker.run() } }
            defer { for worker in workers { worker.shutdown() } }
            let most = try await sampleRunning(broker) { try await broker.stats(.default).succeeded >= ids.count }
            #expect(most == 3)
            #expect(try await broker.stats(.default).lostLeases == 2)
            for worker in workers { worker.shutdown() }
            for task in running { try await task.value }
        }
    }
}
