import Foundation
import TernCore

/// Everything stored about a job.
public struct JobRecord: Sendable, Hashable {
    /// One failed attempt.
    public struct AttemptError: Sendable, Hashable, Codable {
        /// The attempt that failed, from 1.
        public var attempt: Int
        /// The error's message.
        public var message: String
        /// When it failed, in milliseconds since 1970 (Redis time).
        public var atMilliseconds: Int64

        enum CodingKeys: String, CodingKey {
            case attempt, message
            case atMilliseconds = "at_ms"
        }
    }

    public var id: JobID
    public var task: String
    public var state: JobState
    /// The input as JSON.
    public var input: Data
    public var priority: Int
    /// Attempts started so far.
    public var attempts: Int
    public var maxAttempts: Int
    public var createdMilliseconds: Int64
    /// When the job is or was due to run.
    public var dueMilliseconds: Int64?
    public var startedMilliseconds: Int64?
    public var finishedMilliseconds: Int64?
    /// The worker running or last running it.
    public var worker: String?
    /// The result as JSON, once succeeded.
    public var result: Data?
    /// The last error's message.
    public var error: String?
    /// The most recent errors, oldest first (at most ``JobLimits/errorsKept``).
    public var errors: [AttemptError]
    public var progress: Double?
    public var progressMessage: String?
    /// Times a worker lost this job's lease.
    public var lostLeases: Int
    /// Whether cancellation was asked while it ran.
    public var cancelRequested: Bool
    /// How many processes died while running the job alone (the crashes charged to it).
    public var crashes = 0
    /// A process died while running this job with others: it now runs alone in a process of its own.
    public var suspect = false
    /// The schedule that emitted the job, if one did.
    public var schedule: String?
    /// The schedule's tick the job is for, in milliseconds since 1970.
    public var tickMilliseconds: Int64?
    /// The job's unique key (32 hex digits; see ``UniquePolicy``), if it was enqueued with one.
    public var uniqueKey: String?
    /// The rule of ``uniqueKey``: `while_active`, `until` or `debounce`.
    public var uniqueMode: String?
    /// The jobs this one depends on (``JobDependencies/parents``), in order.
    public var dependsOn: [JobID] = []
    /// The jobs that depend on this one.
    public var dependents: [JobID] = []
    /// The kind of workflow whose final job this is (`chain`, `group`, `chord`, `batch`).
    public var workflow: String?
    /// A join: no task runs; it succeeded with its dependencies' outputs as its result.
    public var isJoin = false
    /// Where the job's input comes from once its dependencies finished (`given`, `output`,
    /// `outputs`, `outcomes`, `summary`), for a job with dependencies.
    public var inputFrom: String?
    /// The job's headers (``JobHeaders``).
    public var headers: [String: String] = [:]
    /// The job's limit key (``JobLimit``), if it has one.
    public var limitKey: String?
    /// A queued job held back by a limit.
    public var throttled = false

    public var queue: QueueName { id.queue }

    /// The version of the stored layout this code reads; a job written by a newer layout is refused
    /// (``init(fields:)`` returns `nil`) rather than misread.
    public static let layoutVersion = 1

    /// Creates a record from its fields (the memory broker's jobs).
    init(
        id: JobID, task: String, state: JobState, input: Data, priority: Int, attempts: Int = 0, maxAttempts: Int,
        createdMilliseconds: Int64, dueMilliseconds: Int64?, startedMilliseconds: Int64? = nil,
        finishedMilliseconds: Int64? = nil, worker: String? = nil, result: Data? = nil, error: String? = nil,
        errors: [AttemptError] = [], progress: Double? = nil, progressMessage: String? = nil, lostLeases: Int = 0,
        cancelRequested: Bool = false
    ) {
        self.id = id
        self.task = task
        self.state = state
        self.input = input
        self.priority = priority
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.createdMilliseconds = createdMilliseconds
        self.dueMilliseconds = dueMilliseconds
        self.startedMilliseconds = startedMilliseconds
        self.finishedMilliseconds = finishedMilliseconds
        self.worker = worker
        self.result = result
        self.error = error
        self.errors = errors
        self.progress = progress
        self.progressMessage = progressMessage
        self.lostLeases = lostLeases
        self.cancelRequested = cancelRequested
    }

    /// Builds a record from a job hash's fields; `nil` when essential fields are missing.
    init?(fields: [String: [UInt8]]) {
        func text(_ key: String) -> String? { fields[key].map { String(decoding: $0, as: UTF8.self) } }
        func int(_ key: String) -> Int64? { text(key).flatMap { Int64($0) } }
        guard (int("v") ?? 1) <= Int64(Self.layoutVersion), let idText = text("id"), let id = JobID(idText),
            let task = text("task"),
            let state = text("state").flatMap(JobState.init(rawValue:))
        else { return nil }
        self.id = id
        self.task = task
        self.state = state
        self.input = Data(fields["input"] ?? [])
        self.priority = Int(int("priority") ?? 5)
        self.attempts = Int(int("attempts") ?? 0)
        self.maxAttempts = Int(int("max_attempts") ?? 1)
        self.createdMilliseconds = int("created_ms") ?? 0
        self.dueMilliseconds = int("due_ms")
        self.startedMilliseconds = int("started_ms")
        self.finishedMilliseconds = int("finished_ms")
        self.worker = text("worker")
        self.result = fields["result"].map { Data($0) }
        self.error = text("error")
        self.errors = fields["errors"].flatMap { try? JSONDecoder().decode([AttemptError].self, from: Data($0)) } ?? []
        self.progress = text("progress").flatMap(Double.init)
        self.progressMessage = text("progress_message").flatMap { $0.isEmpty ? nil : $0 }
        self.lostLeases = Int(int("lost") ?? 0)
        self.cancelRequested = text("cancel_requested") == "1"
        self.crashes = Int(int("crashes") ?? 0)
        self.suspect = text("suspect") == "1"
        self.schedule = text("schedule")
        self.tickMilliseconds = int("tick_ms")
        self.dependsOn = (text("parents") ?? "").split(separator: " ").compactMap { JobID(String($0)) }
        self.dependents = (text("dependents") ?? "").split(separator: "\n").compactMap { line in
            line.split(separator: " ").first.flatMap { JobID(String($0)) }
        }
        self.workflow = text("workflow")
        self.isJoin = text("join") == "1"
        self.inputFrom = text("input_from")
        self.headers = JobHeaders.decode(fields["headers"] ?? [])
        self.limitKey = text("lkey")
        self.throttled = state == .queued && text("thr") == "0"
        if let unique = text("unique"), let space = unique.firstIndex(of: " ") {
            self.uniqueMode = UniqueLock.modeName(stored: unique[..<space])
            self.uniqueKey = String(unique[unique.index(after: space)...])
        }
    }
}

/// Limits that keep every job's footprint in Redis bounded.
public enum JobLimits {
    /// The largest result stored, in bytes (1 MiB); a larger one fails the job permanently.
    public static let defaultMaxResultBytes = 1 << 20
    /// The most errors kept per job (the newest).
    public static let errorsKept = 10
    /// How many minutes of per-minute finished-job counts each queue keeps (2 hours).
    public static let throughputMinutes = 120
    /// The most failed jobs kept per queue (the newest); older ones are deleted.
    public static let defaultFailedCap = 10_000
    /// How long a failed job is kept when neither its task nor the configuration says: 7 days.
    public static let defaultFailedRetention = Duration.seconds(7 * 86_400)
}
