import Foundation

/// A job about to be enqueued, as ``EnqueueMiddleware`` sees it.
public struct OutgoingJob: Sendable {
    /// The task's name.
    public let task: String
    /// The queue it goes to.
    public let queue: QueueName
    /// The input as JSON, already validated against the task's input type.
    public let input: Data
    /// The job's headers (``JobHeaders``): the caller's, and what earlier middleware added.
    public var headers: [String: String]

    /// Creates the view of one job.
    public init(task: String, queue: QueueName, input: Data, headers: [String: String]) {
        (self.task, self.queue, self.input, self.headers) = (task, queue, input, headers)
    }
}

/// Runs before every job is enqueued through a ``Middleware`` chain: by `TernClient` (every
/// enqueue, batch and workflow) and by the HTTP API (`POST /v1/jobs`, `/v1/jobs/batch`,
/// `/v1/workflows`). It may add or change headers, or throw to refuse the job: nothing of the call
/// is enqueued, the Swift caller gets the error as thrown, an HTTP caller a 422 `enqueue_refused`
/// with the error's description.
///
/// ```swift
/// struct TenantHeader: EnqueueMiddleware {
///     func enqueue(_ job: inout OutgoingJob) async throws {
///         guard let tenant = Tenant.current else { throw PermanentError("no tenant") }
///         job.headers["tenant"] = tenant.id
///     }
/// }
/// ```
public protocol EnqueueMiddleware: Sendable {
    /// Prepares `job` for its enqueue, or throws to refuse it.
    func enqueue(_ job: inout OutgoingJob) async throws
}

/// Runs around every attempt of every job a worker runs: the place for error reporting, tenant
/// context, timing and tracing. Call `next` once to run the task (with the context given, or one
/// you changed, e.g. with more logger metadata); return its output or throw. What you throw is the
/// attempt's error, retried or not as the task decides (``TernTask/isPermanent(_:)``).
///
/// ```swift
/// struct Timing: JobMiddleware {
///     func run(_ context: JobContext, next: (JobContext) async throws -> Data) async throws -> Data {
///         let start = ContinuousClock.now
///         defer { context.logger.info("took \(ContinuousClock.now - start)") }
///         return try await next(context)
///     }
/// }
/// ```
public protocol JobMiddleware: Sendable {
    /// Runs one attempt of the job `context` describes; `next` runs the rest of the chain and the task.
    func run(_ context: JobContext, next: (JobContext) async throws -> Data) async throws -> Data
}

/// One step in a job's life, as a worker saw it (``JobObserver``).
public struct JobLifecycleEvent: Sendable {
    /// What happened.
    public enum Kind: String, Sendable {
        /// An attempt started.
        case started
        /// The job succeeded.
        case succeeded
        /// An attempt failed and the job will be retried (``retryIn``).
        case retrying
        /// The job failed for good.
        case failed
        /// The job was cancelled while it ran.
        case cancelled
    }

    public let kind: Kind
    public let id: JobID
    public let task: String
    /// The attempt, from 1.
    public let attempt: Int
    /// The job's headers.
    public let headers: [String: String]
    /// How long the attempt ran; `nil` for ``Kind/started``.
    public let duration: Duration?
    /// The attempt's error, for ``Kind/retrying`` and ``Kind/failed``.
    public let error: String?
    /// The delay before the next attempt, for ``Kind/retrying``.
    public let retryIn: Duration?

    /// Creates an event.
    public init(
        _ kind: Kind, id: JobID, task: String, attempt: Int, headers: [String: String] = [:], duration: Duration? = nil,
        error: String? = nil, retryIn: Duration? = nil
    ) {
        (self.kind, self.id, self.task, self.attempt, self.headers) = (kind, id, task, attempt, headers)
        (self.duration, self.error, self.retryIn) = (duration, error, retryIn)
    }
}

/// Observes the lifecycle of the jobs a worker process runs. Called on the worker's path, after
/// the outcome is stored (before, for ``JobLifecycleEvent/Kind/started``): keep it quick, and hand
/// slow work to a task of your own. A job that stops without an outcome (its lease lost, the worker
/// shutting down) sends no final event; another attempt starts later.
public protocol JobObserver: Sendable {
    func observe(_ event: JobLifecycleEvent)
}

/// The middleware and observers of an application (``EnqueueMiddleware``, ``JobMiddleware``,
/// ``JobObserver``), run in the order added: the first execution middleware is the outermost.
public struct Middleware: Sendable {
    /// Runs before each enqueue.
    public var enqueue: [any EnqueueMiddleware] = []
    /// Runs around each attempt.
    public var execution: [any JobMiddleware] = []
    /// Sees each lifecycle event.
    public var observers: [any JobObserver] = []

    /// An empty chain.
    public init() {}

    /// Adds ``JobTracing`` to the enqueue middleware, and as the outermost execution middleware
    /// (so that spans of other middleware are children of the job's run span).
    public mutating func addTracing() {
        enqueue.append(JobTracing())
        execution.insert(JobTracing(), at: 0)
    }

    /// Adds an observer given as a closure.
    public mutating func observe(_ body: @escaping @Sendable (JobLifecycleEvent) -> Void) {
        observers.append(ClosureObserver(body: body))
    }

    /// Runs the enqueue middleware on `job`.
    public func prepare(_ job: inout OutgoingJob) async throws {
        for middleware in enqueue { try await middleware.enqueue(&job) }
    }

    /// Runs `body` inside the execution middleware, the first one outermost.
    public func run(_ context: JobContext, _ body: (JobContext) async throws -> Data) async throws -> Data {
        try await run(context, from: 0, body)
    }

    private func run(_ context: JobContext, from index: Int, _ body: (JobContext) async throws -> Data) async throws -> Data {
        guard index < execution.count else { return try await body(context) }
        return try await execution[index].run(context) { try await run($0, from: index + 1, body) }
    }

    /// Sends `event` to every observer.
    public func emit(_ event: JobLifecycleEvent) {
        for observer in observers { observer.observe(event) }
    }
}

private struct ClosureObserver: JobObserver {
    let body: @Sendable (JobLifecycleEvent) -> Void
    func observe(_ event: JobLifecycleEvent) { body(event) }
}
