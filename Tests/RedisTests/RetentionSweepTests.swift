import Broker
import Foundation
import TernCore
import TernTesting
import Testing

/// The layout of a finished job: no TTL on its hash, `drop_ms` read as gone, the reaper's sweep
/// deleting it; and jobs written by the previous layout (TTL on finished hashes, no `drop_ms`).
@Suite("Retention sweep and the previous layout", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct RetentionSweepTests {
    struct Subject {
        let server: LocalRedisServer
        let client: RedisClient
        let broker: RedisJobBroker

        func stop() {
            client.close()
            server.stop()
        }
    }

    static func start() async throws -> Subject {
        let server = try await TestRedis.start()
        let client = RedisClient(configuration: try TestRedis.configuration(server))
        let broker = try RedisJobBroker(client: client, prefix: "r" + String(UUID().uuidString.prefix(8)))
        try await broker.prepare()
        return Subject(server: server, client: client, broker: broker)
    }

    @Test("a finished job's hash has no TTL, reads as gone after its retention, and the sweep deletes it")
    func sweepDeletesFinishedHashes() async throws {
        let subject = try await Self.start()
        defer { subject.stop() }
        let broker = subject.broker
        let receipts = try await broker.enqueue((0..<3).map { _ in contractRequest(retention: .milliseconds(400)) })
        let claimed = try await broker.claim(queue: .default, limit: 3, worker: "w", lease: .seconds(30))
        #expect(claimed.count == 3)
        for job in claimed { #expect(try await broker.complete(job.lease, result: Data("1".utf8))) }
        let key = broker.keys.job(receipts[0].id)
        #expect(try await subject.client.send("PTTL", key).int == -1)
        try await eventually(within: .seconds(20)) {
            for receipt in receipts where try await broker.job(receipt.id) != nil { throw WaitError("a job still reads as kept") }
        }
        // Gone to readers, listings and retries, though nothing has deleted the hash yet.
        #expect(try await subject.client.send("EXISTS", key).int == 1)
        #expect(try await broker.jobs(queue: .default, state: .succeeded, cursor: nil, limit: 10).jobs.isEmpty)
        #expect(try await broker.retry(receipts[0].id) == nil)
        #expect(try await broker.cancel(receipts[0].id) == nil)
        let report = try await broker.reap(.default, limit: 2)
        #expect(report.dropped == 2)
        #expect(try await broker.reap(.default, limit: 2).dropped == 1)
        for receipt in receipts { #expect(try await subject.client.send("EXISTS", broker.keys.job(receipt.id)).int == 0) }
        #expect(try await broker.stats(.default).succeeded == 0)
        #expect(try await broker.reap(.default, limit: 2).dropped == 0)
    }

    @Test("a failed job past its retention, dropped by a retry of the failed jobs, takes its dependencies' outcomes with it")
    func retryDropsDependencyOutcomes() async throws {
        let subject = try await Self.start()
        defer { subject.stop() }
        let broker = subject.broker
        let parent = try await broker.enqueue([contractRequest()])[0]
        let parentJob = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
        #expect(try await broker.complete(parentJob.lease, result: Data("1".utf8)))
        var request = contractRequest()
        request.dependencies = JobDependencies(parents: [parent.id])
        request.failedRetention = .milliseconds(1)
        let child = try await broker.enqueue([request])[0]
        let childJob = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
        #expect(childJob.id == child.id)
        #expect(try await broker.fail(childJob.lease, message: "no", retryAfter: nil) == .failed)
        let outcomes = broker.keys.base(.default) + QueueItemKey.dependencies.rawValue + child.id.rawValue
        #expect(try await subject.client.send("EXISTS", outcomes).int == 1)
        try await Task.sleep(for: .milliseconds(20))
        #expect(try await broker.retryFailed(.default, limit: 10) == 0)
        #expect(try await subject.client.send("EXISTS", broker.keys.job(child.id)).int == 0)
        #expect(try await subject.client.send("EXISTS", outcomes).int == 0)
    }

    @Test("a job past its retention whose dependents have not learnt its outcome yet is not swept, and they get its output")
    func sweepWaitsForTheRelay() async throws {
        let subject = try await Self.start()
        defer { subject.stop() }
        let broker = subject.broker
        let parent = try await broker.enqueue([contractRequest(retention: .milliseconds(1))])[0]
        var request = contractRequest(queue: "other")
        request.dependencies = JobDependencies(parents: [parent.id])
        let dependent = try await broker.enqueue([request])[0]
        let job = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
        // Completed without the relay drained after it (as when the worker dies right then).
        let reply = try await subject.client.send(
            RedisCommand("FCALL", "tern_complete", 1, broker.keys.base(.default), job.id.rawValue, job.lease.token, "42"))
        #expect(reply.array?.first?.int == 2)
        try await Task.sleep(for: .milliseconds(20))
        #expect(try await broker.reap(.default, limit: 100).dropped == 0)
        #expect(try await subject.client.send("EXISTS", broker.keys.job(parent.id)).int == 1)
        // The reaper's relay pass: the dependent gets the output, then the hash goes.
        try await eventually(within: .seconds(20)) {
            _ = try await broker.reap(.default, limit: 100)
            guard try await broker.job(dependent.id)?.state == .queued else { throw WaitError("the dependent still waits") }
        }
        try await eventually(within: .seconds(20)) {
            _ = try await broker.reap(.default, limit: 100)
            guard try await subject.client.send("EXISTS", broker.keys.job(parent.id)).int == 0 else { throw WaitError("not swept yet") }
        }
    }

    @Test("jobs written by the previous layout are claimed, completed, read and swept")
    func previousLayout() async throws {
        let subject = try await Self.start()
        defer { subject.stop() }
        let (broker, client) = (subject.broker, subject.client)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // Written as the Functions before this layout wrote them: numbers formatted by Lua, a
        // finished job with a TTL on its hash and no drop_ms.
        let queued = JobID.generate(queue: .default)
        try await client.send(RedisCommand(
            "HSET", broker.keys.job(queued), "v", "1", "id", queued.rawValue, "task", "echo", "input", "[1]", "priority", "5",
            "attempts", "0", "max_attempts", "3", "state", "queued", "created_ms", now, "due_ms", now,
            "retention_ms", "86400000", "failed_retention_ms", "604800000"))
        try await client.send(RedisCommand("ZADD", broker.keys.queueKey(.default, .pending), 4 * 1_099_511_627_776 + 1, queued.rawValue))
        let kept = JobID.generate(queue: .default)
        let expired = JobID.generate(queue: .default)
        for (id, keep) in [(kept, Int64(3_600_000)), (expired, Int64(-1))] {
            try await client.send(RedisCommand(
                "HSET", broker.keys.job(id), "v", "1", "id", id.rawValue, "task", "echo", "input", "[2]", "priority", "5",
                "attempts", "1", "max_attempts", "3", "state", "succeeded", "created_ms", now - 10, "due_ms", now - 10,
                "started_ms", now - 5, "finished_ms", now - 1, "worker", "old", "token", "old/1/0", "result", "[2]",
                "retention_ms", "86400000", "failed_retention_ms", "604800000"))
            try await client.send(RedisCommand("PEXPIRE", broker.keys.job(id), 3_600_000))
            try await client.send(RedisCommand("ZADD", broker.keys.queueKey(.default, .succeeded), now + keep, id.rawValue))
        }

        let job = try await claimOne(broker)
        #expect(job.id == queued)
        #expect(job.attempt == 1)
        #expect(try await broker.complete(job.lease, result: Data("[1]".utf8)))
        let done = try #require(try await broker.job(queued))
        #expect(done.state == .succeeded)
        #expect(done.result == Data("[1]".utf8))

        // An old finished job reads as before, keeps its TTL, and the sweep deletes it when its entry is due.
        #expect(try await broker.job(kept)?.result == Data("[2]".utf8))
        #expect(try await broker.job(expired)?.state == .succeeded)
        #expect(try await broker.reap(.default, limit: 100).dropped == 1)
        #expect(try await client.send("EXISTS", broker.keys.job(expired)).int == 0)
        #expect(try await client.send("PTTL", broker.keys.job(kept)).int ?? 0 > 0)
        #expect(try await broker.stats(.default).succeeded == 2)
    }
}
