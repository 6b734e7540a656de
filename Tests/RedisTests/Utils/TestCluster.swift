import Broker
import Foundation
import Synchronization
import TernCore
import TernTesting

/// A Redis Cluster of real `redis-server` processes on loopback ports (3 primaries and 3 replicas
/// by default), created with `redis-cli --cluster create` and stopped by pid.
final class TestCluster: Sendable {
    let nodes: [LocalRedisServer]
    /// Each node's TLS port, when the cluster was started with certificates (the plain ports stay
    /// open for the tests' own checks).
    let tlsPorts: [Int]

    private init(nodes: [LocalRedisServer], tlsPorts: [Int]) {
        self.nodes = nodes
        self.tlsPorts = tlsPorts
    }

    /// Starts the nodes, creates the cluster and waits until every node sees every slot served and
    /// every replica is in sync.
    static func start(primaries: Int = 3, replicasEach: Int = 1, tls certificates: TestCertificates? = nil) async throws -> TestCluster {
        var nodes: [LocalRedisServer] = []
        var tlsPorts: [Int] = []
        do {
            for _ in 0..<(primaries * (1 + replicasEach)) {
                var extra: [String] = []
                if let certificates {
                    tlsPorts.append(try LocalRedisServer.freePort())
                    extra = [
                        "--tls-port", String(tlsPorts.last!), "--tls-cert-file", certificates.serverCertificate,
                        "--tls-key-file", certificates.serverKey, "--tls-ca-cert-file", certificates.ca,
                        "--tls-auth-clients", "no", "--tls-cluster", "yes", "--tls-replication", "yes",
                    ]
                }
                nodes.append(try await startNode(extra))
            }
            let cluster = TestCluster(nodes: nodes, tlsPorts: tlsPorts)
            try await cluster.create(replicasEach: replicasEach)
            return cluster
        } catch {
            for node in nodes { node.stop() }
            throw error
        }
    }

    /// One cluster-enabled node. Its bus port is chosen free too: by default Redis uses the data
    /// port plus 10000, which fails above port 55535 (most of the ephemeral range) or when taken.
    private static func startNode(_ extra: [String]) async throws -> LocalRedisServer {
        var lastError: any Error = WaitError("no attempt")
        for _ in 0..<5 {
            do {
                return try await TestRedis.start([
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                    "--cluster-port", String(try LocalRedisServer.freePort()), "--repl-diskless-sync-delay", "0",
                    // As docs/operations.md recommends: the other primaries' slots stay up while one is down.
                    "--cluster-require-full-coverage", "no",
                ] + extra)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private func create(replicasEach: Int) async throws {
        let folder = TestRedis.executable.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "/usr/bin"
        let cli = FileManager.default.isExecutableFile(atPath: folder + "/redis-cli") ? folder + "/redis-cli" : "/usr/bin/redis-cli"
        let (status, text) = try await runTool(
            [cli, "--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" }
                + ["--cluster-replicas", String(replicasEach), "--cluster-yes"])
        guard status == 0 else {
            throw WaitError("redis-cli --cluster create failed (\(status)): \(text.suffix(2000))")
        }
        try await waitUntilStable()
    }

    /// Waits until every running node reports `cluster_state:ok` with all slots served, and every
    /// replica's link to its primary is up.
    func waitUntilStable(within limit: Duration = .seconds(60)) async throws {
        try await eventually(within: limit) {
            for node in nodes where node.isRunning {
                let connection = RedisConnection(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: node.port)))
                defer { connection.close() }
                let info = try await connection.send(RedisCommand("CLUSTER", "INFO")).string ?? ""
                guard info.contains("cluster_state:ok"), info.contains("cluster_slots_ok:16384") else {
                    throw WaitError("node \(node.port) does not see the whole cluster yet")
                }
                let replication = try await connection.send(RedisCommand("INFO", "replication")).string ?? ""
                if replication.contains("role:slave") && !replication.contains("master_link_status:up") {
                    throw WaitError("replica \(node.port) not in sync yet")
                }
            }
        }
    }

    /// Seed URL naming every node.
    var url: String { "redis+cluster://" + nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") }

    /// A client configuration for the cluster, with test timeouts.
    func configuration(transport: RedisConfiguration.Transport = .dedicatedThread) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configuration.transport = transport
        configuration.commandTimeout = .seconds(10)
        configuration.connectTimeout = .seconds(1)
        configuration.reconnectBackoff = .init(base: .milliseconds(10), cap: .milliseconds(200))
        return configuration
    }

    /// A plain connection to one node.
    func connection(_ node: LocalRedisServer) -> RedisConnection {
        RedisConnection(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: node.port)))
    }

    /// The node (a primary) that serves `slot`, from `CLUSTER SLOTS` asked of a running node.
    func primary(of slot: Int) async throws -> LocalRedisServer {
        let asked = try requireNode(nodes.first { $0.isRunning })
        let connection = connection(asked)
        defer { connection.close() }
        for range in try await connection.send(RedisCommand("CLUSTER", "SLOTS")).array ?? [] {
            guard let parts = range.array, let start = parts[0].int, let end = parts[1].int, (start...end).contains(slot),
                let port = parts[2].array?[1].int, let node = nodes.first(where: { $0.port == port })
            else { continue }
            return node
        }
        throw WaitError("no node serves slot \(slot)")
    }

    /// A node's cluster id (`CLUSTER MYID`).
    func id(of node: LocalRedisServer) async throws -> String {
        let connection = connection(node)
        defer { connection.close() }
        return try await connection.send(RedisCommand("CLUSTER", "MYID")).string ?? ""
    }

    func stop() {
        for node in nodes { node.stop() }
    }

    /// One cluster shared by the tests that only read and write keys (the broker contract suite), so
    /// that they need not create one each. Its processes are killed when the test process exits.
    static let shared = Task { () throws -> TestCluster in
        let cluster = try await TestCluster.start()
        sharedPIDs.withLock { pids in pids = cluster.nodes.compactMap(\.pid) }
        atexit {
            for pid in sharedPIDs.withLock({ $0 }) { kill(pid, SIGKILL) }
        }
        return cluster
    }
}

private let sharedPIDs = Mutex<[pid_t]>([])

private func requireNode(_ node: LocalRedisServer?) throws -> LocalRedisServer {
    guard let node else { throw WaitError("no node is running") }
    return node
}

extension TestCluster {
    /// Moves `slot` from `source` to `target` by hand, as `redis-cli --cluster reshard` does:
    /// `SETSLOT IMPORTING`/`MIGRATING`, `MIGRATE` of `batch` keys at a time (pausing in between, so
    /// that clients meet the slot half moved), then `SETSLOT NODE` on every primary.
    func migrate(slot: Int, from source: LocalRedisServer, to target: LocalRedisServer, batch: Int, pause: Duration) async throws -> Int {
        let (sourceID, targetID) = (try await id(of: source), try await id(of: target))
        let from = connection(source)
        let to = connection(target)
        defer {
            from.close()
            to.close()
        }
        try await to.send(RedisCommand("CLUSTER", "SETSLOT", slot, "IMPORTING", sourceID))
        try await from.send(RedisCommand("CLUSTER", "SETSLOT", slot, "MIGRATING", targetID))
        var moved = 0
        while true {
            let keys = try await from.send(RedisCommand("CLUSTER", "GETKEYSINSLOT", slot, batch)).array?.compactMap(\.string) ?? []
            if keys.isEmpty { break }
            try await from.send(RedisCommand("MIGRATE", arguments: ["127.0.0.1", target.port, "", 0, 5000, "KEYS"] + keys))
            moved += keys.count
            try await Task.sleep(for: pause)
        }
        try await to.send(RedisCommand("CLUSTER", "SETSLOT", slot, "NODE", targetID))
        try await from.send(RedisCommand("CLUSTER", "SETSLOT", slot, "NODE", targetID))
        for node in nodes where node !== source && node !== target && node.isRunning {
            let other = connection(node)
            defer { other.close() }
            _ = try? await other.send(RedisCommand("CLUSTER", "SETSLOT", slot, "NODE", targetID))
        }
        return moved
    }

    /// Waits until every replica has acknowledged everything its primary has written so far.
    func waitForReplication() async throws {
        var targets: [(LocalRedisServer, Int)] = []
        for node in nodes where node.isRunning {
            let connection = connection(node)
            defer { connection.close() }
            let info = try await connection.send(RedisCommand("INFO", "replication")).string ?? ""
            if info.contains("role:master"), let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("master_repl_offset:") }) {
                targets.append((node, Int(line.dropFirst("master_repl_offset:".count)) ?? 0))
            }
        }
        try await eventually(within: .seconds(30)) {
            for (node, offset) in targets {
                let connection = connection(node)
                defer { connection.close() }
                let info = try await connection.send(RedisCommand("INFO", "replication")).string ?? ""
                let acknowledged = info.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("slave") }.compactMap { line in
                    line.split(separator: ",").first { $0.hasPrefix("offset=") }.flatMap { Int($0.dropFirst("offset=".count)) }
                }
                guard acknowledged.allSatisfy({ $0 >= offset }) else { throw WaitError("replicas of \(node.port) behind") }
            }
        }
    }
}
