import Foundation
import Logging
import Tern
import TernTesting
import Testing

@Suite("TernTestHarness: a user's tasks tested inline, without Redis")
struct HarnessTests {
    @Test("a task runs inline with a swapped-in double; its progress is recorded")
    func runInline() async throws {
        let mailer = RecordingMailer()
        let tern = try TernTestHarness(Shop.self) { dependencies in
            dependencies.register((any Mailer).self, value: mailer)
        }
        let output = try await tern.run(SendInvoice.self, .init(order: 7, email: "a@example.com"))
        #expect(output == .init(sent: true))
        #expect(mailer.messages == ["a@example.com: Invoice 7"])
        #expect(tern.progress.map(\.value) == [0.5])
        #expect(tern.progress.map(\.message) == ["rendered"])
        #expect(try await tern.waiting().isEmpty, "running inline stores no job")
    }

    @Test("what code enqueued is listed with its typed input and options; draining runs it and what it enqueues")
    func enqueuedThenDrained() async throws {
        let mailer = RecordingMailer()
        let tern = try TernTestHarness(Shop.self) { dependencies in
            dependencies.register((any Mailer).self, value: mailer)
        }
        _ = try await tern.client.enqueue(SendInvoice.self, .init(order: 1, email: "b@example.com"))
        _ = try await tern.client.enqueue(
            SendInvoice.self, .init(order: 2, email: "c@example.com"), options: .init(priority: 9, timing: .after(.seconds(60))))
        let jobs = try await tern.enqueued(SendInvoice.self)
        #expect(jobs.map(\.input.order).sorted() == [1, 2])
        #expect(jobs.allSatisfy { $0.queue == "mail" && $0.maxAttempts == 4 })
        let delayed = try #require(jobs.first { $0.input.order == 2 })
        #expect(delayed.state == .scheduled && delayed.priority == 9)
        #expect(delayed.dueMilliseconds == tern.clock.nowMilliseconds + 60_000)

        let now = tern.clock.nowMilliseconds
        let firstPass = try await tern.drain(advancingTime: false)
        #expect(firstPass.succeeded == 1 && mailer.messages == ["b@example.com: Invoice 1"])
        #expect(tern.clock.nowMilliseconds == now, "without advancingTime the clock stays")
        let secondPass = try await tern.drain()
        #expect(secondPass.succeeded == 1 && mailer.messages.count == 2)
        #expect(tern.clock.nowMilliseconds == now + 60_000, "the clock moved to the delayed job's due time, no further")
        #expect(try await tern.waiting().isEmpty)
    }

    @Test("a job that enqueues another gets the harness's client as its TernClient; the drain runs both")
    func jobsEnqueueJobs() async throws {
        let mailer = RecordingMailer()
        let tern = try TernTestHarness(Shop.self) { $0.register((any Mailer).self, value: mailer) }
        let checkout = try await tern.client.enqueue(Checkout.self, .init(order: 5))
        let report = try await tern.drain()
        #expect(report.succeeded == 2)
        #expect(mailer.messages == ["buyer@example.com: Invoice 5"])
        let invoiceID = try await checkout.result(timeout: .seconds(1))
        #expect(try await tern.broker.job(JobID(invoiceID)!)?.state == .succeeded)
    }

    @Test("draining settles failures as a worker does: retries after the task's backoff on the test clock, then the last attempt fails")
    func retriesOnTheTestClock() async throws {
        let tern = try TernTestHarness(Shop.self)
        let succeeds = try await tern.client.enqueue(Wobbly.self, .init(succeedOn: 3))
        let fails = try await tern.client.enqueue(Wobbly.self, .init(succeedOn: 9))
        let start = tern.clock.nowMilliseconds
        let report = try await tern.drain()
        #expect(report == .init(succeeded: 1, retried: 4, failed: 1))
        #expect(try await succeeds.result(timeout: .seconds(1)) == 3)
        let failed = try #require(try await tern.broker.job(fails.id))
        #expect(failed.state == .failed && failed.attempts == 3 && failed.error == "wobble")
        // Two retries 10 s apart (a fixed backoff): exactly 20 s of test clock, whatever the machine's speed.
        #expect(tern.clock.nowMilliseconds - start == 20_000)
    }

    @Test("a drain that never ends stops at its limit with a clear error")
    func drainLimit() async throws {
        let tern = try TernTestHarness(tasks: { tasks, _ in try tasks.register(Wobbly.self) })
        for _ in 0..<5 { _ = try await tern.client.enqueue(Wobbly.self, .init(succeedOn: 1)) }
        let error = await #expect(throws: TernTestHarness.DrainLimitReached.self) { try await tern.drain(limit: 3) }
        #expect(error?.limit == 3)
    }

    @Test("the task's logger carries job, task, attempt and worker")
    func loggerMetadata() async throws {
        let store = CapturingLogHandler.Store()
        let tern = try TernTestHarness(
            tasks: { try Shop.tasks(&$0, &$1) }, replacing: { $0.register((any Mailer).self, value: RecordingMailer()) },
            logger: Logger(label: "test", factory: { _ in CapturingLogHandler(store: store) }))
        let handle = try await tern.client.enqueue(SendInvoice.self, .init(order: 3, email: "d@example.com"))
        try await tern.drain()
        let entry = try #require(store.all.first { $0.message == "invoice sent" })
        #expect(entry.metadata["job"] == "\(handle.id)")
        #expect(entry.metadata["task"] == "send-invoice")
        #expect(entry.metadata["attempt"] == "1")
        #expect(entry.metadata["worker"] == "tern-test")
    }
}
