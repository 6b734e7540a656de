import Broker
import Foundation
import Logging
import Synchronization
import Tern
import TernCore
import Worker

/// Tests for an application's tasks, without Redis, processes or waiting.
///
/// The harness holds the application's tasks and dependencies (with the doubles a test swaps in),
/// a ``MemoryJobBroker`` on a ``TestClock``, and a ``TernClient`` for the code under test to
/// enqueue with. It runs a task inline, lists what was enqueued, and drains the broker one job at a
/// time, moving the clock to each delayed job or retry.
///
/// ```swift
/// @Test func invoiceIsSent() async throws {
///     let mailer = RecordingMailer()
///     let tern = try TernTestHarness(Shop.self) { dependencies in
///         dependencies.register((any Mailer).self, value: mailer)
///     }
///     try await Checkout(client: tern.client).placeOrder(42)
///     let jobs = try await tern.enqueued(SendInvoice.self)
///     #expect(jobs.map(\.input.order) == [42])
///     let report = try await tern.drain()
///     #expect(report.succeeded == 1 && mailer.sent.count == 1)
/// }
/// ```
public final class TernTestHarness: Sendable {
    /// The broker's clock; ``drain(advancingTime:limit:)`` moves it, and so may the test.
    public let clock: TestClock
    /// The memory broker the jobs live in.
    public let broker: MemoryJobBroker
    /// A client on ``broker``: hand it to the code under test.
    public let client: TernClient
    /// The application's tasks.
    public let registry: TaskRegistry
    /// The resources jobs get, made on first use (doubles included); see ``shutdown()``.
    public let dependencies: DependencyStore
    /// The logger tasks get (it discards by default).
    public let logger: Logger
    /// The middleware: ``client`` runs its enqueue middleware, ``drain(advancingTime:limit:)`` its
    /// execution middleware and observers (``run(_:_:attempt:maxAttempts:)`` runs the task alone).
    public let middleware: Middleware
    private let reports = Mutex<[ProgressReport]>([])

    /// A harness for the tasks and dependencies `tasks` declares; `replacing` then swaps resources
    /// for test doubles (registering a type again replaces it).
    public init(
        tasks: (inout TaskRegistry, inout Dependencies) throws -> Void,
        replacing: (inout Dependencies) -> Void = { _ in },
        middleware: Middleware = Middleware(),
        clock: TestClock = TestClock(),
        logger: Logger = Logger(label: "tern.test", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws {
        var registry = TaskRegistry()
        var declared = Dependencies()
        let broker = MemoryJobBroker(clock: { clock.nowMilliseconds })
        let client = TernClient(broker: broker, middleware: middleware)
        self.middleware = middleware
        // As a worker does: a job that enqueues follow-up jobs asks for a TernClient.
        declared.register(TernClient.self, value: client)
        try tasks(&registry, &declared)
        replacing(&declared)
        self.clock = clock
        self.registry = registry
        self.logger = logger
        self.dependencies = DependencyStore(declared, logger: logger)
        self.broker = broker
        self.client = client
    }

    /// A harness for `application`'s tasks, dependencies and middleware; `replacing` swaps in test
    /// doubles.
    public convenience init<Application: TernApplication>(
        _ application: Application.Type,
        replacing: (inout Dependencies) -> Void = { _ in },
        clock: TestClock = TestClock()
    ) throws {
        var middleware = Middleware()
        Application.middleware(&middleware)
        try self.init(tasks: { try Application.tasks(&$0, &$1) }, replacing: replacing, middleware: middleware, clock: clock)
    }

    // MARK: Running one task

    /// One progress report of a task run by the harness.
    public struct ProgressReport: Sendable, Hashable {
        /// The job that reported it.
        public var job: JobID
        public var value: Double
        public var message: String?
    }

    /// Every progress report of the jobs the harness ran, oldest first.
    public var progress: [ProgressReport] { reports.withLock { $0 } }

    /// Runs `task` on `input` inline, now, as attempt `attempt` of `maxAttempts` (default the
    /// task's), with the harness's dependencies and logger; returns its output or throws its error.
    /// No job is stored: use ``TernClient`` and ``drain(advancingTime:limit:)`` to test the way
    /// through the broker.
    public func run<T: TernTask>(_ task: T.Type, _ input: T.Input, attempt: Int = 1, maxAttempts: Int? = nil) async throws -> T.Output {
        let context = self.context(
            id: JobID.generate(queue: T.options.queue), task: T.name, attempt: attempt,
            maxAttempts: maxAttempts ?? T.options.maxAttempts)
        return try await T().run(input, context: context)
    }

    // MARK: What was enqueued

    /// A job waiting in the broker, with its input decoded as its task's.
    public struct EnqueuedJob<T: TernTask>: Sendable {
        public var id: JobID
        public var input: T.Input
        public var queue: QueueName { id.queue }
        public var priority: Int
        public var maxAttempts: Int
        /// `queued`, `scheduled` or `retrying`.
        public var state: JobState
        /// When it is due, in milliseconds since 1970 on the ``TestClock``.
        public var dueMilliseconds: Int64?
    }

    /// The jobs of `task` that wait to run (queued, scheduled or retrying), in every queue.
    /// - Throws: a `DecodingError` if a job's input does not decode as `T.Input`.
    public func enqueued<T: TernTask>(_ task: T.Type) async throws -> [EnqueuedJob<T>] {
        try await waiting().filter { $0.task == T.name }.map { record in
            EnqueuedJob<T>(
                id: record.id, input: try TaskCodec.decoder.decode(T.Input.self, from: record.input), priority: record.priority,
                maxAttempts: record.maxAttempts, state: record.state, dueMilliseconds: record.dueMilliseconds)
        }
    }

    /// Every job that waits to run, of any task, by queue name then in each queue's list order.
    public func waiting() async throws -> [JobRecord] {
        var records: [JobRecord] = []
        for queue in try await broker.queues().sorted(by: { $0.rawValue < $1.rawValue }) {
            for state in [JobState.queued, .scheduled, .retrying] {
                var cursor: String?
                repeat {
                    let page = try await broker.jobs(queue: queue, state: state, cursor: cursor, limit: 1000)
                    records += page.jobs
                    cursor = page.nextCursor
                } while cursor != nil
            }
        }
        return records
    }

    // MARK: Draining

    /// What ``drain(advancingTime:limit:)`` ran.
    public struct DrainReport: Sendable, Hashable {
        /// Attempts that succeeded.
        public var succeeded = 0
        /// Attempts that failed and will be retried.
        public var retried = 0
        /// Attempts that failed for good.
        public var failed = 0
        /// Attempts run in all.
        public var attempts: Int { succeeded + retried + failed }

        /// A report of these counts (for comparing in a test).
        public init(succeeded: Int = 0, retried: Int = 0, failed: Int = 0) {
            self.succeeded = succeeded
            self.retried = retried
            self.failed = failed
        }
    }

    /// The drain ran more attempts than its limit: a job keeps enqueuing or retrying.
    public struct DrainLimitReached: Error, CustomStringConvertible {
        public var limit: Int
        public var description: String { "drain stopped after \(limit) attempts: jobs keep coming (raise the limit if that is expected)" }
    }

    /// Runs every due job, one at a time — queues by name, each by priority then first in, first
    /// out — including the jobs those jobs enqueue, until none is due. With `advancingTime` (the
    /// default), it then moves the ``clock`` to the next delayed job or retry and goes on until
    /// nothing waits. Failures are settled as a worker settles them: a permanent error or the last
    /// attempt fails the job, any other error schedules a retry after the task's backoff.
    /// - Throws: ``DrainLimitReached`` after `limit` attempts; a broker error.
    @discardableResult
    public func drain(advancingTime: Bool = true, limit: Int = 10_000) async throws -> DrainReport {
        var report = DrainReport()
        while true {
            if let job = try await claimNext() {
                guard report.attempts < limit else {
                    try await broker.release([job.lease])  // back to its queue, not left running
                    throw DrainLimitReached(limit: limit)
                }
                try await settle(job, into: &report)
                continue
            }
            guard advancingTime, let wait = try await broker.nextDue(queues: try await broker.queues()) else { return report }
            clock.advance(by: max(wait, .milliseconds(1)))
        }
    }

    /// Closes the resources jobs made (see ``DependencyStore/shutdown()``).
    public func shutdown() async { await dependencies.shutdown() }

    private func claimNext() async throws -> ClaimedJob? {
        for queue in try await broker.queues().sorted(by: { $0.rawValue < $1.rawValue }) {
            if let job = try await broker.claim(queue: queue, limit: 1, worker: "tern-test", lease: .seconds(3_600)).first {
                return job
            }
        }
        return nil
    }

    private func settle(_ job: ClaimedJob, into report: inout DrainReport) async throws {
        guard let entry = registry[job.task] else {
            _ = try await broker.fail(job.lease, message: "unknown task '\(job.task)': the harness registers no such task", retryAfter: nil)
            report.failed += 1
            return
        }
        let context = self.context(
            id: job.id, task: job.task, attempt: job.attempt, maxAttempts: job.maxAttempts, headers: job.headers)
        func event(_ kind: JobLifecycleEvent.Kind, error: String? = nil, retryIn: Duration? = nil) -> JobLifecycleEvent {
            JobLifecycleEvent(
                kind, id: job.id, task: job.task, attempt: job.attempt, headers: job.headers,
                duration: kind == .started ? nil : .zero, error: error, retryIn: retryIn)
        }
        middleware.emit(event(.started))
        do {
            let output = try await middleware.run(context) { try await entry.run(job.input, $0) }
            _ = try await broker.complete(job.lease, result: output)
            report.succeeded += 1
            middleware.emit(event(.succeeded))
        } catch {
            let delay = entry.retryDelay(afterAttempt: job.attempt, of: job.maxAttempts, error: error)
            let message = JobWorker.describe(error)
            let state = try await broker.fail(job.lease, message: message, retryAfter: delay)
            if state == .retrying { report.retried += 1 } else { report.failed += 1 }
            middleware.emit(event(state == .retrying ? .retrying : .failed, error: message, retryIn: state == .retrying ? delay : nil))
        }
    }

    private func context(id: JobID, task: String, attempt: Int, maxAttempts: Int, headers: [String: String] = [:]) -> JobContext {
        var logger = self.logger
        logger[metadataKey: "job"] = "\(id)"
        logger[metadataKey: "task"] = "\(task)"
        logger[metadataKey: "attempt"] = "\(attempt)"
        logger[metadataKey: "worker"] = "tern-test"
        return JobContext(
            id: id, attempt: attempt, maxAttempts: maxAttempts, task: task, headers: headers, logger: logger, dependencies: dependencies
        ) {
            [self] value, message in
            self.reports.withLock { $0.append(ProgressReport(job: id, value: value, message: message)) }
        }
    }
}
