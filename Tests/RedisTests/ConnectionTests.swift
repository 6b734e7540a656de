import Broker
import Foundation
import TernCore
import TernTesting
import Testing

@Suite("Connecting: auth, databases, unix sockets, restarts", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct ConnectionTests {
    @Test("an ACL user with a password connects; a wrong password fails clearly", arguments: TestRedis.transports)
    func aclAuthentication(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start()
        defer { server.stop() }
        let admin = RedisClient(configuration: try TestRedis.configuration(server, transport: transport))
        defer { admin.close() }
        try await admin.send("ACL", "SETUSER", "tern", "on", ">s3cret:/@", "~tern:*", "+@all")
        try await admin.send("CONFIG", "SET", "requirepass", "defaultpw")

        let good = RedisClient(configuration: try TestRedis.configuration(transport: transport, url: "redis://tern:s3cret%3A%2F%40@127.0.0.1:\(server.port)"))
        defer { good.close() }
        #expect(try await good.send("SET", "tern:k", "v") == .simpleString("OK"))
        #expect(try await good.send("ACL", "WHOAMI").string == "tern")
        try await expectServerError("NOPERM") { try await good.send("SET", "other:k", "v") }

        let defaultUser = RedisClient(configuration: try TestRedis.configuration(transport: transport, url: "redis://defaultpw@127.0.0.1:\(server.port)"))
        defer { defaultUser.close() }
        #expect(try await defaultUser.send("ACL", "WHOAMI").string == "default")

        let bad = RedisClient(configuration: try TestRedis.configuration(transport: transport, url: "redis://tern:wrong@127.0.0.1:\(server.port)"))
        defer { bad.close() }
        do {
            try await bad.send("PING")
            Issue.record("a wrong password must fail")
        } catch let error as RedisError {
            guard case .authenticationFailed(let serverError) = error else {
                Issue.record("expected authenticationFailed, got \(error)")
                return
            }
            #expect(serverError.code == "WRONGPASS")
            #expect(error.description.contains("rejected the credentials"))
            #expect(!error.description.contains("wrong"))
            #expect(!error.isTransient)
        }

        let anonymous = RedisClient(configuration: try TestRedis.configuration(transport: transport, url: server.url))
        defer { anonymous.close() }
        do {
            try await anonymous.send("PING")
            Issue.record("a server with requirepass must refuse a client without a password")
        } catch RedisError.authenticationFailed(let serverError) {
            #expect(serverError.code == "NOAUTH")
        }
    }

    @Test("unix sockets work, with the database and client name applied", arguments: TestRedis.transports)
    func unixSocket(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(transport: transport, url: server.unixURL + "?db=2"))
        defer { client.close() }
        let key = TestRedis.prefix() + "unix"
        try await client.send("SET", key, "here")
        #expect(try await client.send("CLIENT", "GETNAME").string == "tern")
        let tcp0 = RedisClient(configuration: try TestRedis.configuration(server, transport: transport))
        defer { tcp0.close() }
        #expect(try await tcp0.send("GET", key) == .null)
        let tcp2 = RedisClient(configuration: try TestRedis.configuration(transport: transport, url: server.url + "/2"))
        defer { tcp2.close() }
        #expect(try await tcp2.send("GET", key).string == "here")
    }

    @Test("after redis-server is killed and restarted the client reconnects by itself, with its settings", arguments: TestRedis.transports)
    func reconnectAfterRestart(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start()
        defer { server.stop() }
        var configuration = try TestRedis.configuration(server, transport: transport)
        configuration.database = 3
        configuration.clientName = "tern-reconnect"
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        #expect(try await client.send("PING").string == "PONG")

        await server.kill()
        let failFast = await elapsed {
            for _ in 0..<20 {
                do {
                    try await client.send("PING")
                    Issue.record("PING must fail while Redis is down")
                } catch let error as RedisError {
                    #expect(error.isTransient, "got \(error)")
                } catch {
                    Issue.record("unexpected \(error)")
                }
            }
        }
        recordTiming("20 commands fail while Redis is down (\(transport))", failFast, bound: .seconds(5))
        #expect(!client.isConnected)

        try await server.restart()
        let pong = try await eventually { try await client.send("PING").string }
        #expect(pong == "PONG")
        // Database and client name were applied again on the new connections.
        try await eventually {
            for _ in 0..<4 {
                #expect(try await client.send("CLIENT", "GETNAME").string == "tern-reconnect")
                let info = try await client.send("CLIENT", "INFO").string ?? ""
                #expect(info.contains(" db=3 "))
            }
        }
    }

    @Test("over a unix socket, commands to a killed server fail typed, and the client reconnects after a restart", arguments: TestRedis.transports)
    func unixSocketServerKilled(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start()
        defer { server.stop() }
        var configuration = try TestRedis.configuration(transport: transport, url: server.unixURL)
        configuration.reconnectBackoff = .init(base: .milliseconds(10), cap: .milliseconds(200))
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        #expect(try await client.send("PING").string == "PONG")
        await server.kill()
        // Many commands at a dead socket: each fails with a typed error.
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask { _ = try? await client.send("ECHO", index) }
            }
        }
        try await server.restart()
        #expect(try await eventually { try await client.send("PING").string } == "PONG")
    }

    @Test("connecting to a port with no server fails with a clear, retryable error", arguments: TestRedis.transports)
    func nothingListening(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        let port = server.port
        await server.stopAndWait()
        let client = RedisClient(configuration: try TestRedis.configuration(transport: transport, url: "redis://127.0.0.1:\(port)"))
        defer { client.close() }
        do {
            try await client.send("PING")
            Issue.record("expected a connection error")
        } catch let error as RedisError {
            #expect(error.wasNotSent)
            #expect(error.isTransient)
            #expect(error.description.contains("127.0.0.1:\(port)"))
        }
    }

    @Test("a READONLY reply (the server became a replica) reopens the connection, to find the primary again", arguments: TestRedis.transports)
    func readOnlyReopens(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let other = try await TestRedis.start(appendOnly: false)
        defer { other.stop() }
        let connection = RedisConnection(configuration: try TestRedis.configuration(server, transport: transport))
        defer { connection.close() }
        let before = try await connection.send(RedisCommand("CLIENT", "ID")).int
        try await connection.send(RedisCommand("REPLICAOF", "127.0.0.1", other.port))
        do {
            _ = try await connection.send(RedisCommand("SET", "k", "v"))
            Issue.record("a replica must refuse the write")
        } catch RedisError.server(let error) {
            #expect(error.code == "READONLY")
        }
        let after = try await eventually { try await connection.send(RedisCommand("CLIENT", "ID")).int }
        #expect(after != nil && after != before)
        // READONLY inside a transaction (its last reply is EXECABORT) reopens the connection too.
        let replies = try await connection.pipeline([RedisCommand("MULTI"), RedisCommand("SET", "k", "v"), RedisCommand("EXEC")])
        #expect(replies.contains { if case .error(let error) = $0 { error.code == "READONLY" } else { false } })
        let third = try await eventually { try await connection.send(RedisCommand("CLIENT", "ID")).int }
        #expect(third != nil && third != after)
        try await connection.send(RedisCommand("REPLICAOF", "NO", "ONE"))
        #expect(try await connection.send(RedisCommand("SET", "k", "v")) == .simpleString("OK"))
    }
}
