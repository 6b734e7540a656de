import API
import Broker
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Tasks
import TernCore
import TernTesting
import Testing
import Worker

extension HeavyProcessTests {
    @Suite("Redis Cluster: migration and failover", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct ClusterFailoverTests {
        @Test("a queue's slot migrated mid-drain: no job lost, none completed twice, none run twice")
        func migrationMidDrain() async throws {
            let cluster = try await TestCluster.start(primaries: 3, replicasEach: 0)
            defer { cluster.stop() }
            let client = RedisClient(configuration: try cluster.configuration())
            defer { client.close() }
            let broker = try RedisJobBroker(client: client, prefix: "t" + String(UUID().uuidString.prefix(8)))
            try await broker.prepare()
            let queue = try #require(QueueName("moving"))
            let slot = RedisClusterSlot.of(queue.rawValue)
            let source = try await cluster.primary(of: slot)
            let target = try #require(cluster.nodes.first { $0 !== source })

            var registry = TaskRegistry()
            try registry.register(CountedTask.self)
            let tern = TernClient(broker: broker)
            let base = 3_000_000
            let count = 3_000
            var handles: [JobHandle<CountedTask>] = []
            for start in stride(from: 0, to: count, by: 500) {
                handles += try await tern.enqueueBatch(
                    CountedTask.self, (start..<(start + 500)).map { .init(n: base + $0) }, options: .init(queue: queue))
            }
            var configuration = JobEnvironment.workerConfiguration(concurrency: 16)
            configuration.queues = [queue]
            configuration.lease = .seconds(30)  // no lease may expire while the slot moves
            let running = startWorker(broker, registry, configuration)
            defer { running.cancel() }
            try await eventually(within: .seconds(60)) {
                let done = CountedTask.runs.withLock { runs in (0..<count).filter { runs[base + $0] != nil }.count }
                guard done >= 300 else { throw WaitError("\(done) runs so far") }
            }
            let moved = try await cluster.migrate(slot: slot, from: source, to: target, batch: 20, pause: .milliseconds(10))
            let doneAtEnd = CountedTask.runs.withLock { runs in (0..<count).filter { runs[base + $0] != nil }.count }
            #expect(moved > 1_000)
            #expect(doneAtEnd < count, "the migration must end while jobs are still waiting")
            #expect(try await cluster.primary(of: slot) === target)

            for handle in handles { #expect(try await handle.result(timeout: .seconds(60)).n >= base) }
            let stats = try await broker.stats(queue)
            #expect(stats.succeeded == count && stats.pending == 0 && stats.running == 0)
            let runs = CountedTask.runs.withLock { runs in (0..<count).map { runs[base + $0] ?? 0 } }
            #expect(runs.allSatisfy { $0 == 1 })
        }

        @Test("a primary killed under load: other nodes' queues keep running, its replica takes over within 10 s, every job finishes", arguments: TestRedis.transports)
        func primaryKilled(transport: RedisConfiguration.Transport) async throws {
            let cluster = try await TestCluster.start()
            defer { cluster.stop() }
            let client = RedisClient(configuration: try cluster.configuration(transport: transport))
            defer { client.close() }
            let broker = try RedisJobBroker(client: client, prefix: "t" + String(UUID().uuidString.prefix(8)))
            try await broker.prepare()
            let queues = (0..<8).compactMap { QueueName("fq\($0)") }
            let victim = try await cluster.primary(of: RedisClusterSlot.of(queues[0].rawValue))
            var onVictim: [Bool] = []
            for queue in queues { onVictim.append(try await cluster.primary(of: RedisClusterSlot.of(queue.rawValue)) === victim) }
            #expect(onVictim.contains(false))
            let victimQueues = onVictim

            var registry = TaskRegistry()
            try registry.register(CountedTask.self)
            let tern = TernClient(broker: broker)
            let base = transport == .eventLoop ? 5_000_000 : 4_000_000
            let perQueue = 300
            let count = perQueue * queues.count
            var handles: [JobHandle<CountedTask>] = []
            for (index, queue) in queues.enumerated() {
                handles += try await tern.enqueueBatch(
                    CountedTask.self, (0..<perQueue).map { .init(n: base + index * perQueue + $0) }, options: .init(queue: queue))
            }
            let othersRuns = { @Sendable () -> Int in
                CountedTask.runs.withLock { runs in
                    (0..<count).filter { !victimQueues[$0 / perQueue] && runs[base + $0] != nil }.count
                }
            }
            var configuration = JobEnvironment.workerConfiguration(concurrency: 8)
            configuration.queues = queues
            // Weighted, so that the jobs running at the kill come from every queue: the dead node's
            // keep their slots while their completions are retried (up to a lease).
            configuration.queueOrder = .weighted(queues.map { _ in 1 })
            let running = startWorker(broker, registry, configuration)
            defer { running.cancel() }
            try await eventually(within: .seconds(60)) {
                let done = CountedTask.runs.withLock { runs in (0..<count).filter { runs[base + $0] != nil }.count }
                guard done >= 200 else { throw WaitError("\(done) runs so far") }
            }
            // Replication is asynchronous: let the writes so far reach the replicas, then kill the
            // primary of the first queue while work goes on.
            try await cluster.waitForReplication()
            await victim.kill()
            let killed = ContinuousClock.now
            let othersAtKill = othersRuns()
            let doneAtKill = CountedTask.runs.withLock { runs in (0..<count).filter { runs[base + $0] != nil }.count }
            let late = try await eventually(within: .seconds(30)) {
                try await tern.enqueue(CountedTask.self, .init(n: base + count), options: .init(queue: queues[0]))
            }
            let resumed = ContinuousClock.now - killed
            let othersWhileDown = othersRuns() - othersAtKill
            recordTiming("Cluster failover: SIGKILL of a primary to the first acknowledged enqueue on its slot (\(transport))", resumed, bound: .seconds(10))
            print("cluster failover (\(transport)): \(othersWhileDown) jobs of the other primaries' queues ran while the victim's slots were down")
            #expect(resumed < .seconds(10))
            // Every node's view converges by gossip: the node asked may learn of the promotion later.
            try await eventually(within: .seconds(20)) {
                guard try await cluster.primary(of: RedisClusterSlot.of(queues[0].rawValue)) !== victim else {
                    throw WaitError("the node asked still names the dead primary")
                }
            }
            // The queues on the other primaries were served while the victim's were down.
            #expect(othersWhileDown >= 20, "\(othersWhileDown) jobs of other nodes' queues ran during the failover")

            for (index, handle) in (handles + [late]).enumerated() {
                do {
                    let output = try await eventually(within: .seconds(60)) { try await handle.result(timeout: .seconds(60)) }
                    #expect(output.n >= base)
                } catch {
                    Issue.record("job \(index): \(error)")
                }
            }
            #expect(doneAtKill < count, "the primary must die while jobs are still waiting")
            let runs = CountedTask.runs.withLock { runs in (0...count).map { runs[base + $0] ?? 0 } }
            #expect(runs.allSatisfy { $0 >= 1 && $0 <= 2 })
            #expect(runs.filter { $0 == 2 }.count <= 16)
        }
    }
}

extension HeavyProcessTests {
    @Suite("Redis Cluster: processes", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct ClusterProcessTests {
        @Test("a worker process and the API run jobs of 4 queues on a cluster, ?wait= answered by pushes")
        func endToEnd() async throws {
            let cluster = try await TestCluster.shared.value
            let client = RedisClient(configuration: try cluster.configuration(transport: .eventLoop))
            defer { client.close() }
            let broker = try RedisJobBroker(client: client, prefix: "t" + String(UUID().uuidString.prefix(8)))
            try await broker.prepare()
            var registry = TaskRegistry()
            try SampleTasks.register(in: &registry, includingTestTasks: false)
            let queues = ["default", "mail", "images", "reports"]
            var primaries: Set<Int> = []
            for queue in queues { primaries.insert(try await cluster.primary(of: RedisClusterSlot.of(queue)).port) }
            #expect(primaries.count >= 2)

            let log = FileManager.default.temporaryDirectory.appendingPathComponent("tern-cluster-worker-\(UUID().uuidString).log").path
            defer { try? FileManager.default.removeItem(atPath: log) }
            let worker = try WorkerBinary.launch(
                ["--redis-url", cluster.url, "--prefix", broker.keys.prefix, "--concurrency", "4", "--queues", queues.joined(separator: ",")],
                log: log)
            defer { if worker.isRunning { worker.terminate() } }

            let api = APIContext(broker: broker, registry: registry, configuration: APIConfiguration(), access: .none) {}
            try await Application(router: buildRouter(api)).test(.router) { http in
                for index in 0..<20 { try await echoRoundTrip(http, n: index, queue: queues[index % queues.count], log: log) }
                // Listings span the cluster: every queue is known, with its counts from its own node.
                try await http.execute(uri: "/v1/queues", method: .get) { response in
                    let body = String(buffer: response.body)
                    for queue in queues { #expect(body.contains("\"\(queue)\""), "\(body)") }
                }
            }
            #expect(api.jobChangesPushed)
            worker.terminate()
            await waitForExit(worker)
            #expect(worker.terminationStatus == 0)
        }
    }
}

/// Runs an in-process worker, silent, until the returned task is cancelled.
private func startWorker(_ broker: RedisJobBroker, _ registry: TaskRegistry, _ configuration: WorkerConfiguration) -> Task<Void, any Error> {
    let worker = JobWorker(
        broker: broker, registry: registry, configuration: configuration,
        logger: Logger(label: "test.worker", factory: { _ in SwiftLogNoOpLogHandler() }))
    return Task { try await worker.run() }
}
