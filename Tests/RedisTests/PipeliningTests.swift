import Broker
import Foundation
import Synchronization
import TernTesting
import Testing

@Suite("Concurrent callers, blocking commands, timeouts and cancellation", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct PipeliningTests {
    @Test("100 tasks × 1,000 INCR on one connection give the exact total, each task's replies in order", arguments: TestRedis.transports)
    func concurrentIncrements(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let connection = RedisConnection(configuration: try TestRedis.configuration(server, commandTimeout: .seconds(60), transport: transport))
        defer { connection.close() }
        let key = TestRedis.prefix() + "counter"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<100 {
                group.addTask {
                    var last = 0
                    let own = "\(key):\(task)"
                    for _ in 0..<1_000 {
                        let total = try await connection.send(RedisCommand("INCR", key)).int ?? -1
                        #expect(total > 0 && total <= 100_000)
                        // A per-task counter proves each reply went to the caller that asked.
                        let mine = try await connection.send(RedisCommand("INCR", own)).int ?? -1
                        #expect(mine == last + 1)
                        last = mine
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await connection.send(RedisCommand("GET", key)).int == 100_000)
    }

    @Test("ECHO replies reach their own callers while half of them are cancelled", arguments: TestRedis.transports)
    func cancellationKeepsOrder(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let connection = RedisConnection(configuration: try TestRedis.configuration(server, transport: transport))
        defer { connection.close() }
        for round in 0..<20 {
            let tasks = (0..<200).map { index in
                Task { try await connection.send(RedisCommand("ECHO", "\(round)-\(index)")).string }
            }
            for (index, task) in tasks.enumerated() where index % 2 == 0 { task.cancel() }
            for (index, task) in tasks.enumerated() {
                do {
                    let echoed = try await task.value
                    #expect(echoed == "\(round)-\(index)")
                } catch is CancellationError {
                    #expect(index % 2 == 0)
                }
            }
        }
        #expect(try await connection.send(RedisCommand("PING")).string == "PONG")
    }

    @Test("a shielded command gets its reply although its task is cancelled; a blocking one never waits", arguments: TestRedis.transports)
    func cancellationShield(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server, transport: transport))
        defer { client.close() }
        let key = TestRedis.prefix() + "shielded"
        let task = Task {
            // Cancelled before the command is sent: unshielded, it would fail at once.
            withUnsafeCurrentTask { $0?.cancel() }
            return try await RedisCancellationShield.shielded {
                _ = try await client.send(RedisCommand("SET", key, "written"))
                return try await client.send(RedisCommand("GET", key)).string
            }
        }
        #expect(try await task.value == "written")
        let blocked = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await RedisCancellationShield.shielded {
                try await client.sendBlocking(RedisCommand("BLPOP", key + ":empty", 8), blockFor: .seconds(8))
            }
        }
        let waited = await elapsed {
            let result = await blocked.result
            #expect(throws: CancellationError.self) { try result.get() }
        }
        recordTiming("a cancelled shielded BLPOP returns (8 s block)", waited, bound: .seconds(4))
    }

    @Test("a cancelled blocking command returns at once and the connection stays in step", arguments: TestRedis.transports)
    func cancelBlockingCommand(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let connection = RedisConnection(configuration: try TestRedis.configuration(server, transport: transport))
        defer { connection.close() }
        let key = TestRedis.prefix() + "empty"
        let blocked = Task { try await connection.send(RedisCommand("BLPOP", key, 8), timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(100))
        blocked.cancel()
        let waited = await elapsed {
            let result = await blocked.result
            #expect(throws: CancellationError.self) { try result.get() }
        }
        recordTiming("a cancelled blocking command returns (8 s block)", waited, bound: .seconds(4))
        // The BLPOP's nil reply arrives later and is dropped; this PING gets its own reply.
        #expect(try await connection.send(RedisCommand("PING")).string == "PONG")
        #expect(try await connection.send(RedisCommand("ECHO", "after")).string == "after")
    }

    @Test("a blocking command on one connection does not delay commands on the others", arguments: TestRedis.transports)
    func blockingIsIsolated(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server, transport: transport))
        defer { client.close() }
        let key = TestRedis.prefix() + "queue"
        let poppedFinished = Mutex(false)
        let popped = Task {
            defer { poppedFinished.withLock { $0 = true } }
            return try await client.sendBlocking(RedisCommand("BLPOP", key, 60), blockFor: .seconds(60))
        }
        try await Task.sleep(for: .milliseconds(100))
        for index in 0..<200 {
            let echoed = try await client.send("ECHO", index)
            #expect(echoed.int == index)
        }
        // Had the ECHOs queued behind the BLPOP, they could only have finished after it returned,
        // which needs the RPUSH below: the BLPOP is still waiting, so they did not.
        #expect(poppedFinished.withLock { $0 } == false)
        try await client.send("RPUSH", key, "job")
        let reply = try await popped.value
        #expect(reply == .array([.bulkString(Array(key.utf8)), .bulkString(Array("job".utf8))]))
    }

    @Test("blocking and mode-changing commands are refused on shared connections", arguments: TestRedis.transports)
    func misuse(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server, transport: transport))
        defer { client.close() }
        await #expect(throws: RedisError.self) { try await client.send("BLPOP", "k", 1) }
        await #expect(throws: RedisError.self) { try await client.send("XREAD", "block", 10, "STREAMS", "s", "$") }
        await #expect(throws: RedisError.self) { try await client.send("SUBSCRIBE", "channel") }
        await #expect(throws: RedisError.self) { try await client.pipeline([RedisCommand("BRPOP", "k", 1)]) }
        await #expect(throws: RedisError.self) { try await client.send("CLIENT", "REPLY", "OFF") }
        #expect(try await client.send("XREAD", "COUNT", 1, "STREAMS", "s", "0") == .null)
        // "block" after STREAMS is a key, not the option.
        #expect(try await client.send("XREAD", "STREAMS", "block", "0") == .null)
        #expect(try await client.send("CLIENT", "GETNAME").string == "tern")
    }

    @Test("a transaction runs as one pipeline; MULTI on its own is refused", arguments: TestRedis.transports)
    func transactions(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server, transport: transport))
        defer { client.close() }
        let key = TestRedis.prefix() + "tx"
        let replies = try await client.pipeline([
            RedisCommand("MULTI"), RedisCommand("INCR", key), RedisCommand("INCR", key), RedisCommand("EXEC"),
        ])
        #expect(replies.last == .array([.integer(1), .integer(2)]))
        await #expect(throws: RedisError.self) { try await client.send("MULTI") }
        await #expect(throws: RedisError.self) { try await client.pipeline([RedisCommand("MULTI"), RedisCommand("INCR", key)]) }
        await #expect(throws: RedisError.self) { try await client.send("SELECT", 1) }
        await #expect(throws: RedisError.self) { try await client.send("UNSUBSCRIBE", "a", "b") }
        #expect(try await client.send("GET", key).int == 2)
    }

    @Test("a short per-command timeout fires even behind a command with a longer one", arguments: TestRedis.transports)
    func perCommandTimeout(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let connection = RedisConnection(configuration: try TestRedis.configuration(server, transport: transport))
        defer { connection.close() }
        let key = TestRedis.prefix() + "empty"
        let blocked = Task { try await connection.send(RedisCommand("BLPOP", key, 5), timeout: .seconds(30)) }
        // The PING must queue behind the BLPOP: wait until the server shows it blocked.
        let observer = RedisConnection(configuration: try TestRedis.configuration(server, transport: transport))
        defer { observer.close() }
        try await eventually {
            guard try await observer.send(RedisCommand("CLIENT", "LIST")).string?.contains("cmd=blpop") == true else {
                throw WaitError("the BLPOP is not blocking yet")
            }
        }
        let waited = await elapsed {
            await #expect(throws: RedisError.timeout(.milliseconds(200))) {
                try await connection.send(RedisCommand("PING"), timeout: .milliseconds(200))
            }
        }
        recordTiming("a 200 ms per-command timeout behind a blocking command", waited, bound: .seconds(10))
        // The reset connection fails the command ahead too: its outcome is unknown.
        await #expect(throws: RedisError.self) { try await blocked.value }
        #expect(try await eventually { try await connection.send(RedisCommand("PING")).string } == "PONG")
    }

    @Test("closing a client fails a blocking command that is waiting", arguments: TestRedis.transports)
    func closeStopsBlockingCommands(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let client = RedisClient(configuration: try TestRedis.configuration(server, transport: transport))
        let key = TestRedis.prefix() + "empty"
        let blocked = Task { try await client.sendBlocking(RedisCommand("BLPOP", key, 20), blockFor: .seconds(20)) }
        try await Task.sleep(for: .milliseconds(200))
        let waited = await elapsed {
            client.close()
            let result = await blocked.result
            #expect(throws: RedisError.self) { try result.get() }
        }
        recordTiming("closing a client fails a waiting blocking command", waited, bound: .seconds(5))
        await #expect(throws: RedisError.closed) { try await client.send("PING") }
    }

    @Test("the command timeout fires on a frozen server, and the client recovers when it thaws", arguments: TestRedis.transports)
    func commandTimeout(transport: RedisConfiguration.Transport) async throws {
        let server = try await TestRedis.start(appendOnly: false)
        defer { server.stop() }
        let connection = RedisConnection(configuration: try TestRedis.configuration(server, commandTimeout: .milliseconds(300), transport: transport))
        defer { connection.close() }
        #expect(try await connection.send(RedisCommand("PING"), timeout: .seconds(10)).string == "PONG")
        server.send(signal: SIGSTOP)
        let waited = await elapsed {
            do {
                _ = try await connection.send(RedisCommand("PING"))
                Issue.record("expected a timeout")
            } catch let error as RedisError {
                #expect(error == .timeout(.milliseconds(300)))
                #expect(!error.wasNotSent)
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        #expect(waited >= .milliseconds(250))
        recordTiming("a 300 ms command timeout on a frozen server", waited, bound: .seconds(5))
        server.send(signal: SIGCONT)
        let pong = try await eventually { try await connection.send(RedisCommand("PING")).string }
        #expect(pong == "PONG")
    }
}
