import Logging

/// A kind of background job: a name, a typed input, a typed output and options.
///
/// The same declaration serves the worker (to run it), the API (to validate input and document it)
/// and Swift clients (`enqueue(Resize.self, input)` returns a handle whose result is typed).
///
/// ```swift
/// struct Resize: TernTask {
///     struct Input: Codable, Sendable { var url: String; var width: Int }
///     struct Output: Codable, Sendable { var url: String }
///     static let name = "resize"
///     static let options = TaskOptions(queue: "images", maxAttempts: 5)
///
///     func run(_ input: Input, context: JobContext) async throws -> Output {
///         try await context.progress(0.5, "downloaded")
///         return Output(url: input.url + "?w=\(input.width)")
///     }
/// }
/// ```
public protocol TernTask: Sendable {
    /// The task's input; decoded from the job's JSON.
    associatedtype Input: Codable & Sendable
    /// The task's result; stored as JSON.
    associatedtype Output: Codable & Sendable

    /// The unique name jobs refer to (1 to 128 characters of `a-z A-Z 0-9 . _ -`).
    static var name: String { get }
    /// Queue, priority, retries, time limits and retention; ``TaskOptions/init(queue:priority:maxAttempts:retryBackoff:softTimeLimit:resultRetention:expiresAfter:)`` by default.
    static var options: TaskOptions { get }

    /// Creates the task value the worker runs. Tasks hold no per-job state.
    init()

    /// Runs one attempt. Throw ``PermanentError`` (or an error that ``isPermanent(_:)`` accepts) to
    /// fail the job without retries; any other error is retried by the task's backoff.
    func run(_ input: Input, context: JobContext) async throws -> Output

    /// Whether `error` should fail the job at once instead of being retried; by default only
    /// ``PermanentError``.
    static func isPermanent(_ error: any Error) -> Bool

    /// The delay before retrying after failed attempt `attempt` (1-based); by default from
    /// ``TaskOptions/retryBackoff``. Implement it for a custom backoff.
    static func retryDelay(afterAttempt attempt: Int, error: any Error) -> Duration
}

extension TernTask {
    public static var options: TaskOptions { TaskOptions() }
    public static func isPermanent(_ error: any Error) -> Bool { error is PermanentError }
    public static func retryDelay(afterAttempt attempt: Int, error: any Error) -> Duration {
        options.retryBackoff.delay(retry: attempt)
    }
}

/// An error that fails a job at once, without retries.
public struct PermanentError: Error, Sendable, CustomStringConvertible {
    /// What went wrong; stored with the job.
    public var message: String

    /// Creates a permanent error.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// What a running job can see and report.
public struct JobContext: Sendable {
    /// The job's id.
    public let id: JobID
    /// The attempt being run, from 1.
    public let attempt: Int
    /// The attempts allowed in all.
    public let maxAttempts: Int
    /// The task's name.
    public let task: String
    /// The job's headers (``JobHeaders``), as enqueued.
    public let headers: [String: String]
    /// A logger for the task: its metadata already carries `job`, `task`, `attempt` and `worker`,
    /// and it writes where the worker's log goes, in the worker's format and level. Execution
    /// middleware may add metadata before calling `next`.
    public var logger: Logger
    private let dependencies: DependencyStore
    private let reportProgress: @Sendable (Double, String?) async throws -> Void

    /// Creates a context; `reportProgress` stores a progress update, `dependencies` serves
    /// ``dependency(_:)`` (none by default) and `logger` is the task's (one that discards by default).
    public init(
        id: JobID, attempt: Int, maxAttempts: Int, task: String = "", headers: [String: String] = [:],
        logger: Logger = Logger(label: "tern.task", factory: { _ in SwiftLogNoOpLogHandler() }),
        dependencies: DependencyStore = .empty,
        reportProgress: @escaping @Sendable (Double, String?) async throws -> Void
    ) {
        self.id = id
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.task = task
        self.headers = headers
        self.logger = logger
        self.dependencies = dependencies
        self.reportProgress = reportProgress
    }

    /// The application resource of type `type` (see ``Dependencies``): made once per process, on
    /// first use, and shared by all its jobs.
    /// - Throws: ``DependencyError`` if no such resource is declared or the worker is stopping; the
    ///   resource's own error if making it failed (the job is then retried as for any error).
    public func dependency<Value: Sendable>(_ type: Value.Type) async throws -> Value {
        try await dependencies.get(type)
    }

    /// Records progress: a number (a fraction from 0 to 1 by convention) and a short message (at most
    /// 200 characters are kept).
    /// - Throws: ``PermanentError`` for a value that is not finite (NaN or infinity).
    public func progress(_ value: Double, _ message: String? = nil) async throws {
        guard value.isFinite else { throw PermanentError("progress must be a finite number, not \(value)") }
        try await reportProgress(value, message.map { String($0.prefix(200)) })
    }
}
