@testable import Broker
import Foundation
import Tasks
import TernCore
import TernTesting
import Testing
import Worker

/// An idle worker's wait with its claim in the same round trip (`JobBroker.waitAndClaim`).
@Suite("Waiting and claiming in one step")
struct WaitAndClaimTests {
    @Test("a job enqueued during the wait is claimed by it; a timeout claims nothing", arguments: BrokerKind.allCases)
    func claimsWhatWokeIt(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        let empty = try await broker.waitAndClaim(
            queue: .default, limit: 4, worker: "w-1", lease: .seconds(30), timeout: .milliseconds(100))
        #expect(empty.isEmpty)
        // Whether the enqueue lands before the wait blocks or after, its wake-up ends the wait.
        async let claimed = broker.waitAndClaim(queue: .default, limit: 4, worker: "w-1", lease: .seconds(30), timeout: .seconds(20))
        let receipt = try await broker.enqueue([contractRequest(input: "7")])[0]
        let jobs = try await claimed
        #expect(jobs.map(\.id) == [receipt.id])
        #expect(jobs.first?.attempt == 1 && jobs.first?.input == Data("7".utf8))
        let record = try await broker.job(receipt.id)
        #expect(record?.state == .running && record?.worker == "w-1")
        #expect(try await broker.complete(jobs[0].lease, result: Data("1".utf8)))
        // Jobs already pending are claimed at once, up to the limit.
        let more = try await broker.enqueue((0..<3).map { _ in contractRequest() })
        let two = try await broker.waitAndClaim(queue: .default, limit: 2, worker: "w-1", lease: .seconds(30), timeout: .seconds(20))
        #expect(two.map(\.id) == more.prefix(2).map(\.id))
    }

    @Test("an interrupt ends a long wait early, and only that worker's")
    func interrupt() async throws {
        guard let subject = try await ContractBroker.make(.redis) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        #expect(broker.claimsWhileWaiting)
        // A wait of a minute: ending well within it shows the interrupt ended it. The interrupt may
        // come before the wait blocks; its token waits for it.
        let started = ContinuousClock.now
        async let interrupted = broker.waitAndClaim(queue: .default, limit: 4, worker: "w-a", lease: .seconds(30), timeout: .seconds(60))
        try await broker.interruptWait(worker: "w-a", queue: .default)
        #expect(try await interrupted.isEmpty)
        recordTiming("an interrupted wait ends", ContinuousClock.now - started, bound: .seconds(30))
        // Another worker's interrupt leaves this wait alone until its timeout.
        try await broker.interruptWait(worker: "w-b", queue: .default)
        let before = ContinuousClock.now
        #expect(try await broker.waitAndClaim(queue: .default, limit: 4, worker: "w-a", lease: .seconds(30), timeout: .milliseconds(300)).isEmpty)
        #expect(ContinuousClock.now - before >= .milliseconds(250))
    }

    @Test("a Redis that lost its Functions still claims: the library is loaded again")
    func missingFunctions() async throws {
        guard TestRedis.enabled else { return }
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let receipt = try await environment.broker.enqueue([contractRequest()])[0]
        _ = try await environment.client.send("FUNCTION", "FLUSH")
        let jobs = try await environment.broker.waitAndClaim(
            queue: .default, limit: 4, worker: "w-1", lease: .seconds(30), timeout: .seconds(5))
        #expect(jobs.map(\.id) == [receipt.id])
    }

    @Test("tern_claim answers a worker that does not ask for a flat reply (an earlier version) with a table per job; workers read both")
    func claimReplyShapes() async throws {
        guard TestRedis.enabled else { return }
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let receipts = try await environment.broker.enqueue((0..<4).map { _ in contractRequest(input: "5") })
        let base = environment.broker.keys.base(.default)
        let tables = try await environment.client.send("FCALL", "tern_claim", 1, base, 2, "w-old", 30_000).array ?? []
        #expect(tables.count == 2)
        #expect(tables.compactMap { $0.array?.count } == [8, 8])
        #expect(tables.first?.array?.first?.string == receipts[0].id.rawValue)
        #expect(tables.first?.array?[2].string == "5")
        let flat = try await environment.client.send("FCALL", "tern_claim", 1, base, 2, "w-new", 30_000, "flat").array ?? []
        #expect(flat.count == 16)
        #expect(flat[0].string == receipts[2].id.rawValue && flat[8].string == receipts[3].id.rawValue)
        #expect(flat[2].string == "5" && flat[3].int == 1)
        // The worker reads both: a library of an earlier version, loaded by an older process, answers with tables.
        let fromTables = try RedisJobBroker.claimedJobs(.array(tables))
        #expect(fromTables.map(\.id) == receipts.prefix(2).map(\.id))
        #expect(fromTables.allSatisfy { $0.input == Data("5".utf8) && $0.attempt == 1 && $0.lease.token.hasPrefix("w-old/") })
        let fromFlat = try RedisJobBroker.claimedJobs(.array(flat))
        #expect(fromFlat.map(\.id) == receipts.suffix(2).map(\.id))
        #expect(fromFlat.allSatisfy { $0.input == Data("5".utf8) && $0.attempt == 1 && $0.lease.token.hasPrefix("w-new/") })
        #expect(throws: RedisError.self) { try RedisJobBroker.claimedJobs(.array([.array([.integer(1)])])) }
    }

    @Test("an idle worker stops at once, though its wait is long; a job enqueued while it idles runs")
    func idleShutdown() async throws {
        guard TestRedis.enabled else { return }
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var configuration = JobEnvironment.workerConfiguration()
        configuration.idleWait = .seconds(120)
        let stopped = try await environment.withWorker(configuration) { worker in
            let receipt = try await environment.tern.enqueue(Echo.self, .number(3))
            let record = try await environment.waitFor(receipt.id, .succeeded)
            #expect(record.result == Data("3".utf8))
            // Idle again: the worker blocks in its wait for up to 2 minutes.
            return ContinuousClock.now
        }
        recordTiming("an idle worker's shutdown", ContinuousClock.now - stopped, bound: .seconds(60))
    }
}
