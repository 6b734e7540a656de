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

/// A certificate authority, a server certificate for `localhost` (no IP address), a client
/// certificate, and a second CA that signed none of them, made with openssl for one test.
struct TestCertificates {
    let directory: String
    var ca: String { directory + "/ca.pem" }
    var otherCA: String { directory + "/other-ca.pem" }
    var serverCertificate: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var clientCertificate: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client.key" }

    static func make() async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tern-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for name in ["ca", "other-ca"] {
            try await openssl(["req", "-x509"] + key + [
                "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).pem", "-days", "2",
                "-subj", "/CN=Tern test \(name)", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
        }
        for (name, names) in [("server", "DNS:localhost"), ("client", "DNS:tern-client")] {
            try await openssl(["req"] + key + [
                "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).csr", "-subj", "/CN=\(name)",
            ])
            try "subjectAltName=\(names)\n".write(toFile: "\(directory)/\(name).ext", atomically: true, encoding: .utf8)
            try await openssl([
                "x509", "-req", "-in", "\(directory)/\(name).csr", "-CA", certificates.ca, "-CAkey", "\(directory)/ca.key",
                "-CAcreateserial", "-out", "\(directory)/\(name).pem", "-days", "2", "-extfile", "\(directory)/\(name).ext",
            ])
        }
        return certificates
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    private static func openssl(_ arguments: [String]) async throws {
        let (status, output) = try await runTool(["/usr/bin/openssl"] + arguments)
        guard status == 0 else {
            throw RedisError.invalidConfiguration("openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(output)")
        }
    }
}

/// A redis-server that speaks TLS only (no plain TCP port) on `port`, with `certificates`.
struct TLSRedis {
    let server: LocalRedisServer
    let port: Int

    static func start(
        _ certificates: TestCertificates, clientCertificates: Bool = false, appendOnly: Bool = false
    ) async throws -> TLSRedis {
        // The TLS port is chosen here, not by LocalRedisServer's retries: another test may take it
        // between the choice and the server's bind, so a failed start tries another port.
        var lastError: any Error = RedisError.connectFailed("redis-server did not start")
        for _ in 0..<3 {
            let port = try LocalRedisServer.freePort()
            do {
                let server = try await TestRedis.start([
                    "--port", "0", "--tls-port", String(port),
                    "--tls-cert-file", certificates.serverCertificate, "--tls-key-file", certificates.serverKey,
                    "--tls-ca-cert-file", certificates.ca, "--tls-auth-clients", clientCertificates ? "yes" : "no",
                ], appendOnly: appendOnly)
                return TLSRedis(server: server, port: port)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    func configuration(_ query: String, host: String = "localhost") throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: "rediss://\(host):\(port)?\(query)")
        configuration.connectTimeout = .seconds(5)
        configuration.reconnectBackoff = .init(base: .milliseconds(10), cap: .milliseconds(200))
        return configuration
    }
}

@Suite("TLS to Redis: verification, client certificates, pub/sub, a worker and the API", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct TLSTests {
    @Test("rediss:// verifies the server against the CA and its name, or the name given for an IP address; blocking commands too")
    func verified() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let redis = try await TLSRedis.start(certificates)
        defer { redis.server.stop() }
        for (host, query) in [("localhost", ""), ("127.0.0.1", "&sni=localhost")] {
            let client = RedisClient(configuration: try redis.configuration("ca=\(certificates.ca)" + query, host: host))
            defer { client.close() }
            let key = TestRedis.prefix() + "tls"
            #expect(try await client.send("SET", key, "over tls") == .simpleString("OK"))
            #expect(try await client.send("GET", key).string == "over tls")
            let replies = try await client.pipeline((0..<100).map { _ in RedisCommand("INCR", key + ":n") })
            #expect(replies.last?.int == 100)
            async let popped = client.sendBlocking(RedisCommand("BLPOP", key + ":q", 10), blockFor: .seconds(10))
            try await eventually {
                guard try await client.send("CLIENT", "LIST").string?.contains("cmd=blpop") == true else {
                    throw WaitError("the BLPOP is not blocking yet")
                }
            }
            try await client.send("RPUSH", key + ":q", "job")
            #expect(try await popped == .array([.bulkString(Array((key + ":q").utf8)), .bulkString(Array("job".utf8))]))
        }
    }

    @Test("a server certificate from another CA, or for another name, is refused with a clear error")
    func refused() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let redis = try await TLSRedis.start(certificates)
        defer { redis.server.stop() }
        let cases = [
            ("localhost", "ca=\(certificates.otherCA)", "certificate"),
            ("localhost", "ca=\(certificates.ca)&sni=redis.example", "redis.example"),
            // The certificate names no IP address, and no name was given to check instead.
            ("127.0.0.1", "ca=\(certificates.ca)", "hostname"),
        ]
        for (host, query, mention) in cases {
            let client = RedisClient(configuration: try redis.configuration(query, host: host))
            defer { client.close() }
            do {
                try await client.send("PING")
                Issue.record("\(query) must be refused")
            } catch let error as RedisError {
                // connectFailed from the attempt the command waited for, or notConnected with the
                // same text when the attempt had failed before the command came.
                let text: String
                switch error {
                case .connectFailed(let reason), .notConnected(let reason): text = reason
                default:
                    Issue.record("expected connectFailed or notConnected, got \(error)")
                    continue
                }
                #expect(text.contains("TLS"), "\(text)")
                #expect(text.lowercased().contains(mention), "\(text)")
                #expect(error.wasNotSent)
            }
        }
        // A missing CA file is a configuration error that names the file.
        let missing = RedisClient(configuration: try redis.configuration("ca=\(certificates.directory)/nope.pem"))
        defer { missing.close() }
        do {
            try await missing.send("PING")
            Issue.record("a missing CA file must be refused")
        } catch let error as RedisError {
            #expect(error.description.contains("nope.pem"), "\(error)")
        }
    }

    @Test("a server that asks for client certificates accepts ours and refuses a client without one")
    func clientCertificates() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let redis = try await TLSRedis.start(certificates, clientCertificates: true)
        defer { redis.server.stop() }
        let anonymous = RedisClient(configuration: try redis.configuration("ca=\(certificates.ca)"))
        defer { anonymous.close() }
        await #expect(throws: RedisError.self) { try await anonymous.send("PING") }
        let authenticated = RedisClient(configuration: try redis.configuration(
            "ca=\(certificates.ca)&cert=\(certificates.clientCertificate)&key=\(certificates.clientKey)"))
        defer { authenticated.close() }
        #expect(try await authenticated.send("PING").string == "PONG")
    }

    @Test("a subscriber over TLS hears published messages and resubscribes after a restart")
    func subscriber() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let redis = try await TLSRedis.start(certificates)
        defer { redis.server.stop() }
        let configuration = try redis.configuration("ca=\(certificates.ca)")
        let heard = Mutex<[RedisSubscriber.Event]>([])
        let subscriber = RedisSubscriber(configuration: configuration, patterns: ["tls:*"]) { event in
            heard.withLock { $0.append(event) }
        }
        defer { subscriber.close() }
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        func publishUntilHeard(_ text: String) async throws {
            try await eventually {
                try await client.send("PUBLISH", "tls:one", text)
                guard heard.withLock({ $0.contains(.message(channel: "tls:one", payload: Array(text.utf8))) }) else {
                    throw WaitError("\(text) not heard yet")
                }
            }
        }
        try await publishUntilHeard("first")
        await redis.server.kill()
        try await redis.server.restart()
        try await publishUntilHeard("second")
        let events = heard.withLock { $0 }
        #expect(events.first == .subscribed)
        #expect(events.filter { $0 == .subscribed }.count == 2)
        #expect(events.contains(.lost))
    }
}

extension HeavyProcessTests {
    @Suite("TLS end to end", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct TLSProcessTests {
        @Test("a worker process and the API run jobs over a TLS-only Redis, ?wait= answered by pushes")
        func endToEnd() async throws {
            let certificates = try await TestCertificates.make()
            defer { certificates.remove() }
            let redis = try await TLSRedis.start(certificates, appendOnly: true)
            defer { redis.server.stop() }
            let client = RedisClient(configuration: try redis.configuration("ca=\(certificates.ca)"))
            defer { client.close() }
            let broker = try RedisJobBroker(client: client, prefix: "t" + String(UUID().uuidString.prefix(8)))
            try await broker.prepare()
            var registry = TaskRegistry()
            try SampleTasks.register(in: &registry, includingTestTasks: false)

            let log = redis.server.directory + "/worker.log"
            let worker = try WorkerBinary.launch(
                [
                    "--redis-url", "rediss://localhost:\(redis.port)?ca=\(certificates.ca)", "--prefix", broker.keys.prefix,
                    "--concurrency", "4",
                ], log: log)
            defer { if worker.isRunning { worker.terminate() } }

            let api = APIContext(broker: broker, registry: registry, configuration: APIConfiguration(), access: .none) {}
            try await Application(router: buildRouter(api)).test(.router) { http in
                for index in 0..<20 { try await echoRoundTrip(http, n: index, log: log) }
            }
            #expect(api.jobChangesPushed)
            worker.terminate()
            await waitForExit(worker)
            #expect(worker.terminationStatus == 0)
        }
    }
}

/// Posts an `echo` job of `n` (on `queue`, else the task's own) and reads it with `?wait=30`: it must
/// have succeeded, on that queue, with `n` as its result. `log` is the worker's, shown on failure.
func echoRoundTrip(_ http: some TestClientProtocol, n: Int, queue: String? = nil, log: String) async throws {
    let queueField = queue.map { #","queue":"\#($0)""# } ?? ""
    let id = try await http.execute(
        uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"],
        body: ByteBuffer(string: #"{"task":"echo","input":{"n":\#(n)}\#(queueField)}"#)
    ) { response in
        #expect(response.status == .created)
        let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        return try #require(object?["id"] as? String)
    }
    try await http.execute(uri: "/v1/jobs/\(id)?wait=30", method: .get) { response in
        let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        #expect(object?["state"] as? String == "succeeded", "worker log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        if let queue { #expect(object?["queue"] as? String == queue) }
        #expect((object?["result"] as? [String: Any])?["n"] as? Int == n)
    }
}
