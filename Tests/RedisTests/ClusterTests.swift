@testable import Broker
import Foundation
import Logging
import Synchronization
import TernCore
import TernTesting
import Testing
import Worker

@Suite("Redis Cluster: slots and the client")
struct ClusterClientTests {
    @Test("key slots: CRC16 of the key or its hash tag, as Redis computes them")
    func slots() {
        #expect(RedisClusterSlot.of("123456789") == 0x31C3)
        #expect(RedisClusterSlot.of("foo") == 12182)
        #expect(RedisClusterSlot.of("{user1000}.following") == RedisClusterSlot.of("user1000"))
        #expect(RedisClusterSlot.of("foo{}{bar}") == RedisClusterSlot.of("foo{}{bar}".utf8))
        #expect(RedisClusterSlot.of("foo{{bar}}zap") == RedisClusterSlot.of("{bar"))
        #expect(RedisClusterSlot.of("tern:{default}:pending") == RedisClusterSlot.of("default"))
        #expect(RedisCommand("FCALL", "tern_claim", 1, "tern:{mail}:", 5).slot == RedisClusterSlot.of("mail"))
        #expect(RedisCommand("FCALL_RO", "tern_version", 0).slot == nil)
        #expect(RedisCommand("TIME").slot == nil)
        #expect(RedisCommand("HGETALL", "tern:{a}:job:1.a").slot == RedisClusterSlot.of("a"))
    }

    @Test("a CLUSTER SLOTS reply: primaries in order, replicas as nodes, an empty host meaning the node asked")
    func slotMap() throws {
        func node(_ host: String, _ port: Int) -> RedisValue { .array([.bulkString(Array(host.utf8)), .integer(port), .bulkString(Array("id".utf8))]) }
        let reply = RedisValue.array([
            .array([.integer(0), .integer(5460), node("10.0.0.1", 7000), node("10.0.0.4", 7003)]),
            .array([.integer(5461), .integer(10922), node("", 7001)]),
            .array([.integer(10923), .integer(16383), node("10.0.0.3", 7002)]),
        ])
        let map = try RedisClusterSlotMap(reply, askedAt: .tcp(host: "10.0.0.2", port: 7001))
        #expect(map.primaries == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 7001), .tcp(host: "10.0.0.3", port: 7002)])
        #expect(map.nodes.count == 4)
        #expect(map.slots[0] == .tcp(host: "10.0.0.1", port: 7000) && map.slots[5461] == .tcp(host: "10.0.0.2", port: 7001))
        #expect(map.slots[16383] == .tcp(host: "10.0.0.3", port: 7002))
        #expect(throws: RedisError.self) { try RedisClusterSlotMap(.array([]), askedAt: .tcp(host: "h", port: 1)) }
        #expect(RedisClusterRedirect(RedisServerError(message: "MOVED 3999 127.0.0.1:6381")) == .moved(slot: 3999, to: .tcp(host: "127.0.0.1", port: 6381)))
        #expect(RedisClusterRedirect(RedisServerError(message: "ASK 3999 [::1]:6381")) == .ask(slot: 3999, to: .tcp(host: "::1", port: 6381)))
        #expect(RedisClusterRedirect(RedisServerError(message: "TRYAGAIN Multiple keys request during rehashing of slot")) == .retry)
        #expect(RedisClusterRedirect(RedisServerError(message: "ERR unknown command")) == nil)
    }

    @Test("cluster URLs: seeds, credentials, TLS; a database other than 0 and a query without TLS are refused")
    func urls() throws {
        let plain = try RedisConfiguration(url: "redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002")
        #expect(plain.cluster == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 6379), .tcp(host: "::1", port: 7002)])
        #expect(plain.username == "u" && plain.password == "p@ss" && plain.tls == nil)
        #expect(plain.endpoint == .tcp(host: "10.0.0.1", port: 7000))
        #expect(plain.endpointDescription == "cluster 10.0.0.1:7000,10.0.0.2:6379,[::1]:7002")
        let tls = try RedisConfiguration(url: "rediss+cluster://10.0.0.1:7000,10.0.0.2:7001/0?ca=/etc/ca.pem&sni=redis.internal")
        #expect(tls.cluster?.count == 2 && tls.tls?.caFile == "/etc/ca.pem" && tls.tls?.serverName == "redis.internal")
        #expect(tls.effectiveTransport == .eventLoop)
        #expect(throws: RedisError.invalidConfiguration("database '2' in redis+cluster://h:1/2: a Redis Cluster has only database 0")) {
            try RedisConfiguration(url: "redis+cluster://h:1/2")
        }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis+cluster://h:1?ca=/x") }
    }

    @Test("commands go to their slot's node; pipelines split by node come back in order", .enabled(if: TestRedis.enabled, TestRedis.reason), arguments: TestRedis.transports)
    func routing(transport: RedisConfiguration.Transport) async throws {
        let cluster = try await TestCluster.shared.value
        let client = RedisClient(configuration: try cluster.configuration(transport: transport))
        defer { client.close() }
        #expect(client.isCluster)
        let prefix = TestRedis.prefix()
        for index in 0..<50 { try await client.send("SET", "\(prefix)\(index)", "v\(index)") }
        // Every key is on the node that owns its slot, and the keys spread over all three primaries.
        var owners: Set<Int> = []
        for index in 0..<50 {
            let node = try await cluster.primary(of: RedisClusterSlot.of("\(prefix)\(index)"))
            let direct = cluster.connection(node)
            defer { direct.close() }
            #expect(try await direct.send(RedisCommand("GET", "\(prefix)\(index)")).string == "v\(index)")
            owners.insert(node.port)
        }
        #expect(owners.count == 3)
        // A pipeline over many slots, with a keyless command in it; a transaction on one slot.
        var commands = (0..<50).map { RedisCommand("GET", "\(prefix)\($0)") }
        commands.insert(RedisCommand("TIME"), at: 10)
        let replies = try await client.pipeline(commands)
        #expect(replies.count == commands.count)
        #expect((0..<50).allSatisfy { index in replies[index < 10 ? index : index + 1].string == "v\(index)" })
        #expect(replies[10].array?.count == 2)
        let transaction = try await client.pipeline([
            RedisCommand("MULTI"), RedisCommand("INCR", "\(prefix){t}a"), RedisCommand("INCR", "\(prefix){t}b"), RedisCommand("EXEC"),
        ])
        #expect(transaction.last?.array?.map(\.int) == [1, 1])
        do {
            try await client.send("MSET", "\(prefix){x}", "1", "\(prefix){y}", "2")
            Issue.record("a command across slots must be refused")
        } catch RedisError.server(let error) {
            #expect(error.code == "CROSSSLOT")
        }
        // A blocking command on its slot's node.
        try await client.send("RPUSH", "\(prefix)list", "x")
        #expect(try await client.sendBlocking(RedisCommand("BLPOP", "\(prefix)list", 1), blockFor: .seconds(1)).array?.last?.string == "x")
        // The library is on every primary.
        #expect(try await client.durability().version.hasPrefix("7."))
    }

    @Test("the broker on a cluster: 8 queues on at least 2 primaries, drained by one worker serving them all", .enabled(if: TestRedis.enabled, TestRedis.reason))
    func eightQueues() async throws {
        let cluster = try await TestCluster.shared.value
        let client = RedisClient(configuration: try cluster.configuration(transport: .eventLoop))
        defer { client.close() }
        let broker = try RedisJobBroker(client: client, prefix: "t" + String(UUID().uuidString.prefix(8)))
        try await broker.prepare()
        let queues = (0..<8).compactMap { QueueName("cq\($0)") }
        var primaries: Set<Int> = []
        for queue in queues { primaries.insert(try await cluster.primary(of: RedisClusterSlot.of(queue.rawValue)).port) }
        #expect(primaries.count >= 2)

        var registry = TaskRegistry()
        try registry.register(CountedTask.self)
        let tern = TernClient(broker: broker)
        let base = 2_000_000
        var handles: [JobHandle<CountedTask>] = []
        for n in 0..<160 {
            handles.append(try await tern.enqueue(CountedTask.self, .init(n: base + n), options: .init(queue: queues[n % 8])))
        }
        #expect(Set(try await broker.queues()).isSuperset(of: queues))
        var configuration = JobEnvironment.workerConfiguration(concurrency: 8)
        configuration.queues = queues
        let worker = JobWorker(
            broker: broker, registry: registry, configuration: configuration,
            logger: Logger(label: "test.worker", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await worker.run() }
        defer { running.cancel() }
        for handle in handles { #expect(try await handle.result(timeout: .seconds(60)).n >= base) }
        for queue in queues { #expect(try await broker.stats(queue).succeeded == 20) }
        // An idle worker waits on every queue's slot at once: a job on its last queue still runs.
        try await Task.sleep(for: .milliseconds(700))
        let late = try await tern.enqueue(CountedTask.self, .init(n: base + 500), options: .init(queue: queues[7]))
        #expect(try await late.result(timeout: .seconds(30)).n == base + 500)
    }

    @Test("a cluster over TLS: rediss+cluster:// verifies every node, routes, pipelines, and runs the broker", .enabled(if: TestRedis.enabled, TestRedis.reason))
    func overTLS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let cluster = try await TestCluster.start(primaries: 3, replicasEach: 0, tls: certificates)
        defer { cluster.stop() }
        // The nodes announce 127.0.0.1 and the certificate names localhost: sni names it for every node.
        let seeds = cluster.tlsPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        var configuration = try RedisConfiguration(url: "rediss+cluster://\(seeds)?ca=\(certificates.ca)&sni=localhost")
        configuration.commandTimeout = .seconds(10)
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        let prefix = TestRedis.prefix()
        let replies = try await client.pipeline((0..<60).map { RedisCommand("SET", "\(prefix)\($0)", $0) })
        #expect(replies.allSatisfy { $0 == .simpleString("OK") })
        #expect(try await client.send("GET", "\(prefix)42").string == "42")

        let broker = try RedisJobBroker(client: client, prefix: "t" + String(UUID().uuidString.prefix(8)))
        try await broker.prepare()
        let queues = (0..<4).compactMap { QueueName("tq\($0)") }
        for queue in queues {
            let receipt = try #require(try await broker.enqueue([contractRequest(queue: queue)]).first)
            let job = try await claimOne(broker, queue: queue)
            #expect(job.lease.id == receipt.id)
            #expect(try await broker.complete(job.lease, result: Data("1".utf8)))
            #expect(try await broker.job(receipt.id)?.state == .succeeded)
        }
        // A primary that lost the library (a new node, say) gets it again on first use.
        let flushed = cluster.connection(cluster.nodes[0])
        defer { flushed.close() }
        try await flushed.send(RedisCommand("FUNCTION", "FLUSH"))
        var onFlushed: QueueName?
        for index in 0..<100 where onFlushed == nil {
            let queue = try #require(QueueName("fl\(index)"))
            if try await cluster.primary(of: RedisClusterSlot.of(queue.rawValue)) === cluster.nodes[0] { onFlushed = queue }
        }
        let queue = try #require(onFlushed)
        let receipt = try #require(try await broker.enqueue([contractRequest(queue: queue)]).first)
        #expect(receipt.created)
        #expect(try await claimOne(broker, queue: queue).lease.id == receipt.id)
        #expect(try await flushed.send(RedisCommand("FUNCTION", "LIST")).array?.count == 1)
        // A wrong CA is refused on every node, with the reason.
        var wrong = try RedisConfiguration(url: "rediss+cluster://\(seeds)?ca=\(certificates.otherCA)&sni=localhost")
        wrong.connectTimeout = .seconds(2)
        let refused = RedisClient(configuration: wrong)
        defer { refused.close() }
        do {
            try await refused.send("PING")
            Issue.record("a cluster node with a certificate from another CA must be refused")
        } catch {
            #expect("\(error)".lowercased().contains("certificate_verify_failed"), "\(error)")
        }
    }
}
