import Broker
import Foundation
import Logging
import Tasks
import TernCore
import Testing
import Worker

@Suite("Job lifecycle through Redis and a worker", .enabled(if: TestRedis.enabled, TestRedis.reason))
struct JobLifecycleTests {
    @Test("a job runs and its typed result and record come back")
    func succeeds() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        try await environment.withWorker { _ in
            let handle = try await environment.tern.enqueue(Echo.self, .object(["hello": .string("world")]))
            #expect(handle.id.queue == .default)
            let output = try await handle.result(timeout: .seconds(20))
            #expect(output == .object(["hello": .string("world")]))
            let record = try await handle.status()
            #expect(record.state == .succeeded)
            #expect(record.task == "echo")
            #expect(record.attempts == 1)
            #expect(record.worker != nil)
            #expect(record.startedMilliseconds != nil && record.finishedMilliseconds != nil)
            #expect(record.errors.isEmpty)
        }
    }

    @Test("cancelling a worker's task releases its running jobs at once and unregisters it: queued again, no attempt used")
    func cancellationReleases() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var configuration = JobEnvironment.workerConfiguration(concurrency: 2)
        // A grace far longer than the test: only the cancellation can stop the worker.
        configuration.shutdownGrace = .seconds(3600)
        let worker = JobWorker(
            broker: environment.broker, registry: environment.registry, configuration: configuration,
            logger: Logger(label: "test.worker", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await worker.run() }
        let handles = try await environment.tern.enqueueBatch(Sleep.self, Array(repeating: .init(ms: 600_000), count: 2))
        try await eventually(within: .seconds(20)) {
            guard worker.busy == 2 else { throw WaitError("\(worker.busy) of 2 jobs claimed") }
        }
        running.cancel()
        _ = await running.result
        for handle in handles {
            let record = try #require(try await environment.broker.job(handle.id))
            #expect(record.state == .queued, "\(record.state)")
            #expect(record.attempts == 0 && record.errors.isEmpty, "\(record.attempts) \(record.errors.map(\.message))")
        }
        #expect(try await environment.broker.workers().isEmpty)
    }

    @Test("a flaky job is retried with backoff and succeeds, its errors recorded")
    func retries() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        try await environment.withWorker { _ in
            let handle = try await environment.tern.enqueue(Flaky.self, .init(failures: 2))
            let output = try await handle.result(timeout: .seconds(30))
            #expect(output.attempt == 3)
            let record = try await handle.status()
            #expect(record.attempts == 3)
            #expect(record.errors.map(\.attempt) == [1, 2])
            #expect(record.errors.first?.message == "flaky failure on attempt 1")
            // Backoff: at least half the nominal delay of 100 ms passed between attempts 1 and 2
            // (the jitter draws from half to all of it).
            #expect(record.errors[1].atMilliseconds - record.errors[0].atMilliseconds >= 50)
        }
    }

    @Test("a permanent error fails the job at once, without retries")
    func permanentFailure() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        try await environment.withWorker { _ in
            let handle = try await environment.tern.enqueue(Fail.self, .init(message: "bad input"))
            await #expect(throws: TernClientError.failed(handle.id, "bad input")) {
                try await handle.result(timeout: .seconds(20))
            }
            let record = try await handle.status()
            #expect(record.attempts == 1)
            #expect(record.errors.count == 1)
            #expect(try await environment.broker.stats(.default).failed == 1)
        }
    }

    @Test("input that does not decode fails the job at once, naming the field")
    func invalidInput() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        try await environment.withWorker { _ in
            let request = EnqueueRequest(
                task: "flaky", input: Data(#"{"failures":"many"}"#.utf8), options: Flaky.options)
            let receipt = try await environment.broker.enqueue([request])[0]
            let record = try await environment.waitFor(receipt.id, .failed)
            #expect(record.attempts == 1)
            #expect(record.error?.hasPrefix("invalid input: /failures") == true, "\(record.error ?? "")")
            let unknown = try await environment.broker.enqueue([
                EnqueueRequest(task: "no.such.task", input: Data("{}".utf8), options: TaskOptions())
            ])[0]
            let lost = try await environment.waitFor(unknown.id, .failed)
            #expect(lost.error == "unknown task 'no.such.task': no worker of this deployment registers it")
        }
    }

    @Test("attempts run out: the job fails after maxAttempts")
    func attemptsExhausted() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        try await environment.withWorker { _ in
            let handle = try await environment.tern.enqueue(
                Flaky.self, .init(failures: 10), options: .init(maxAttempts: 2))
            await #expect(throws: TernClientError.self) { try await handle.result(timeout: .seconds(20)) }
            let record = try await handle.status()
            #expect(record.state == .failed)
            #expect(record.attempts == 2)
            #expect(record.error == "flaky failure on attempt 2")
        }
    }

    @Test("higher priority runs first, FIFO among equals")
    func priorityOrder() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let broker = environment.broker
        var expected: [JobID] = []
        var low: [JobID] = []
        for index in 0..<6 {
            let priority = index % 2 == 0 ? 2 : 8
            let handle = try await environment.tern.enqueue(Echo.self, .number(Double(index)), options: .init(priority: priority))
            if priority == 8 { expected.append(handle.id) } else { low.append(handle.id) }
        }
        expected += low
        let claimed = try await broker.claim(queue: .default, limit: 10, worker: "w", lease: .seconds(30))
        #expect(claimed.map(\.id) == expected)
    }

    @Test("an idle worker starts a delayed job on time and is listed while it runs")
    func delayedOnTime() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var configuration = JobEnvironment.workerConfiguration()
        configuration.idleWait = .seconds(10)
        try await environment.withWorker(configuration) { worker in
            let workers = try await eventually {
                let list = try await environment.broker.workers()
                guard !list.isEmpty else { throw WaitError("no worker registered yet") }
                return list
            }
            #expect(workers.map(\.id) == [worker.info.id])
            #expect(workers.first?.queues == ["default"])
            #expect(workers.first?.concurrency == configuration.concurrency)
            let handle = try await environment.tern.enqueue(Echo.self, .null, options: .init(timing: .after(.milliseconds(500))))
            let record = try await environment.waitFor(handle.id, .succeeded)
            let late = (record.startedMilliseconds ?? 0) - (record.dueMilliseconds ?? 0)
            // On an idle machine it is a few ms (see BENCHMARKS.md); the bound only proves the worker
            // did not sleep through its 10 s idle wait while the whole suite loads the machine.
            #expect(late >= 0, "started \(late) ms before its due time")
            recordTiming("an idle worker starts a delayed job after its due time", .milliseconds(late), bound: .seconds(5))
        }
        #expect(try await environment.broker.workers().isEmpty)
    }

    @Test("a delayed job waits for its time, then runs")
    func delayed() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        // An hour away: not claimable, however slow the machine.
        let later = try await environment.tern.enqueue(Echo.self, .null, options: .init(timing: .after(.seconds(3600))))
        #expect(try await later.status().state == .scheduled)
        #expect(try await environment.broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(5)).isEmpty)
        // Two seconds away: claimed once due, not before.
        let handle = try await environment.tern.enqueue(Echo.self, .null, options: .init(timing: .after(.seconds(2))))
        #expect(try await handle.status().state == .scheduled)
        let claimed = try await eventually {
            let jobs = try await environment.broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(5))
            guard let job = jobs.first else { throw WaitError("not due yet") }
            return job
        }
        #expect(claimed.id == handle.id)
        let record = try await handle.status()
        #expect(record.state == .running)
        #expect((record.startedMilliseconds ?? 0) - (record.dueMilliseconds ?? 0) >= 0)
        #expect((record.startedMilliseconds ?? 0) - record.createdMilliseconds >= 2000)
    }

    @Test("a job not started before its deadline expires")
    func expiry() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        try await environment.broker.setPaused(.default, true)
        let handle = try await environment.tern.enqueue(Echo.self, .null, options: .init(expiresAfter: .milliseconds(100)))
        try await Task.sleep(for: .milliseconds(300))
        try await environment.broker.setPaused(.default, false)
        #expect(try await environment.broker.claim(queue: .default, limit: 5, worker: "w", lease: .seconds(5)).isEmpty)
        #expect(try await handle.status().state == .expired)
        await #expect(throws: TernClientError.expired(handle.id)) { try await handle.result(timeout: .seconds(1)) }
    }

    @Test("100 concurrent enqueues with one idempotency key make one job")
    func idempotency() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let broker = environment.broker
        let request = try TernClient.request(Echo.self, .string("once"), options: .init(idempotencyKey: "order-42"))
        let receipts = try await withThrowingTaskGroup(of: EnqueueReceipt.self) { group in
            for _ in 0..<100 { group.addTask { try await broker.enqueue([request])[0] } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(receipts.map(\.id)).count == 1)
        #expect(receipts.filter(\.created).count == 1)
        #expect(try await broker.stats(.default).pending == 1)
        // The key is stored hashed.
        let keys = try await environment.client.send("KEYS", "\(broker.keys.prefix):*idem:*").array ?? []
        #expect(keys.count == 1)
        #expect(keys.first?.string?.contains("order-42") == false)
    }

    @Test("cancel: a queued job at once, a running one through its worker")
    func cancellation() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let queued = try await environment.tern.enqueue(Echo.self, .null, options: .init(timing: .after(.seconds(60))))
        #expect(try await queued.cancel() == .cancelled)
        #expect(try await queued.status().state == .cancelled)
        #expect(try await queued.cancel() == .cancelled)
        try await environment.withWorker { _ in
            let running = try await environment.tern.enqueue(Sleep.self, .init(ms: 20_000))
            _ = try await environment.waitFor(running.id, .running)
            let asked = ContinuousClock.now
            #expect(try await running.cancel() == .running)
            _ = try await environment.waitFor(running.id, .cancelled, within: .seconds(10))
            recordTiming("a running job is cancelled after the request", ContinuousClock.now - asked, bound: .seconds(10))
        }
        let unknown = environment.tern.handle(Echo.self, id: JobID.generate(queue: .default))
        await #expect(throws: TernClientError.notFound(unknown.id)) { try await unknown.cancel() }
    }

    @Test("a soft time limit cancels the job's task and records the failure")
    func softTimeLimit() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        try await environment.withWorker { _ in
            let handle = try await environment.tern.enqueue(SlowTask.self, .init(ms: 30_000))
            let record = try await environment.waitFor(handle.id, .failed)
            #expect(record.error?.contains("soft time limit") == true)
            #expect(record.attempts == 1)
        }
    }

    @Test("a write with a stale lease token is rejected and counted")
    func staleLease() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let broker = environment.broker
        let handle = try await environment.tern.enqueue(Echo.self, .null)
        let first = try await broker.claim(queue: .default, limit: 1, worker: "slow", lease: .milliseconds(100))[0]
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await broker.reap(.default, limit: 100).requeued == 1)
        let second = try await broker.claim(queue: .default, limit: 1, worker: "fast", lease: .seconds(30))[0]
        #expect(second.id == handle.id)
        #expect(second.attempt == 2)
        #expect(try await broker.complete(first.lease, result: Data("\"late\"".utf8)) == false)
        #expect(try await broker.progress(first.lease, value: 0.5, message: nil) == false)
        #expect(try await broker.complete(second.lease, result: Data("\"on time\"".utf8)) == true)
        let record = try await handle.status()
        #expect(record.state == .succeeded)
        #expect(record.result == Data("\"on time\"".utf8))
        #expect(record.lostLeases == 1)
        let stats = try await broker.stats(.default)
        #expect(stats.staleWrites == 2)
        #expect(stats.lostLeases == 1)
    }

    @Test("the reaper repairs a hand-broken invariant")
    func reaperRepairs() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let broker = environment.broker
        let active = broker.keys.queueKey(.default, .active)
        let ghost = JobID.generate(queue: .default)
        try await environment.client.send("ZADD", active, 0, ghost.rawValue)
        let handle = try await environment.tern.enqueue(Echo.self, .null)
        try await environment.client.send("ZADD", active, 0, handle.id.rawValue)
        let report = try await broker.reap(.default, limit: 100)
        #expect(report.repaired == 2)
        #expect(try await environment.client.send("ZCARD", active) == .integer(0))
        #expect(try await handle.status().state == .queued)
    }

    @Test("graceful shutdown returns unfinished jobs to the queue at once, attempts unused")
    func gracefulShutdown() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var configuration = JobEnvironment.workerConfiguration()
        configuration.shutdownGrace = .milliseconds(300)
        let handles = try await environment.tern.enqueueBatch(Sleep.self, [.init(ms: 30_000), .init(ms: 30_000)])
        let quick = try await environment.tern.enqueue(Sleep.self, .init(ms: 100))
        try await environment.withWorker(configuration) { _ in
            for handle in handles { _ = try await environment.waitFor(handle.id, .running) }
            _ = try await environment.waitFor(quick.id, .succeeded)
        }
        for handle in handles {
            let record = try await handle.status()
            #expect(record.state == .queued)
            #expect(record.attempts == 0)
        }
        #expect(try await environment.broker.stats(.default).running == 0)
    }

    @Test("finished jobs leave no key without a TTL or a bound")
    func keyspaceStaysBounded() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let broker = environment.broker
        try await environment.withWorker { _ in
            var handles: [JobHandle<Echo>] = []
            for index in 0..<20 {
                handles.append(try await environment.tern.enqueue(Echo.self, .number(Double(index)), options: .init(idempotencyKey: "k\(index)")))
            }
            let failing = try await environment.tern.enqueue(Fail.self, .init(message: "x"))
            for handle in handles { _ = try await handle.result(timeout: .seconds(20)) }
            _ = try await environment.waitFor(failing.id, .failed)
        }
        let keys = try await environment.client.send("KEYS", "\(broker.keys.prefix):*").array?.compactMap(\.string) ?? []
        let bounded: Set<String> = [
            broker.keys.queues, broker.keys.queueKey(.default, .meta), broker.keys.queueKey(.default, .wake),
            broker.keys.queueKey(.default, .succeeded), broker.keys.queueKey(.default, .failed),
            // Catalogue versions: each publication drops those not announced for a week.
            broker.keys.catalogues,
        ]
        let jobPrefix = broker.keys.base(.default) + QueueItemKey.job.rawValue
        for key in keys where !bounded.contains(key) {
            let ttl = try await environment.client.send("PTTL", key).int ?? -1
            if key.hasPrefix(jobPrefix) {
                // A finished job's hash has no TTL: its entry in its state's set bounds it (the
                // reaper's sweep deletes the hash when the entry is due, at its drop_ms).
                let id = String(key.dropFirst(jobPrefix.count))
                let state = try await environment.client.send("HGET", key, "state").string ?? ""
                let holding = broker.keys.queueKey(.default, state == "failed" ? .failed : .succeeded)
                let due = try await environment.client.send("ZSCORE", holding, id).string
                #expect(due != nil, "\(key) is in no finished set")
                #expect(due == (try await environment.client.send("HGET", key, "drop_ms").string), "\(key): drop_ms")
                #expect(ttl == -1, "\(key) has a TTL")
            } else {
                #expect(ttl > 0, "\(key) has no TTL")
            }
        }
        #expect(try await environment.client.send("LLEN", broker.keys.queueKey(.default, .wake)).int ?? 0 <= 64)
    }
}
