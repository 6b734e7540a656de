import TernCore

/// The jobs a job waits for, and how its input is made once they finished: the building block of
/// workflows (docs/workflows.md). A job with dependencies is created ``JobState/waiting``; when
/// every dependency has finished it becomes `queued` (a join: `succeeded`), or `cancelled` when one
/// failed and ``onFailure`` is ``OnFailure/cancel``.
///
/// Dependencies exist before their dependent (``parents`` are ids of jobs already enqueued), so a
/// cycle cannot be made.
public struct JobDependencies: Sendable, Hashable {
    /// Where the job's input comes from.
    public enum Input: String, Sendable, Hashable {
        /// The input given at enqueue.
        case given
        /// The output of the one dependency (a chain's next step).
        case output
        /// A JSON array of the dependencies' outputs, in their order (a chord's callback, a group).
        case outputs
        /// A JSON array with one `{"ok": output}` or `{"error": "message"}` per dependency, in
        /// their order (a chord that allows failures).
        case outcomes
        /// `{"total": n, "succeeded": k, "failed": n - k}` (a batch's callbacks).
        case summary
    }

    /// What a dependency that fails (for good), is cancelled or expires does to the job.
    public enum OnFailure: String, Sendable, Hashable {
        /// The job is cancelled, with the dependency's error as its own (the default).
        case cancel
        /// The job runs anyway once every dependency finished.
        case run
    }

    /// The most dependencies a job may have, and the most dependents a job may have.
    public static let maxParents = 10_000
    public static let maxDependents = 1_000

    /// The jobs waited for, 1 to ``maxParents``; their order is the order of ``Input/outputs``.
    public var parents: [JobID]
    public var input: Input
    public var onFailure: OnFailure
    /// No task runs: once the dependencies finished, the job succeeds at once with its made input
    /// as its result (a group's result). Its task name is ``joinTask``.
    public var join: Bool
    /// The kind of workflow whose final job this is (`chain`, `group`, `chord`, `batch`), if any.
    public var workflow: String?

    /// The task name of join jobs.
    public static let joinTask = "tern.join"

    /// Creates dependencies.
    public init(
        parents: [JobID], input: Input = .given, onFailure: OnFailure = .cancel, join: Bool = false, workflow: String? = nil
    ) {
        self.parents = parents
        self.input = input
        self.onFailure = onFailure
        self.join = join
        self.workflow = workflow
    }
}

/// How a dependent learns of one dependency's state: its output, its failure, or that it runs
/// again (after a retry), as the relay carries it (see ``DependencyRelay``).
enum DependencyOutcome: Sendable, Hashable {
    case output([UInt8])
    case error(String)
    case reopened

    /// The kind and payload the Redis Functions use: `o` + output, `e` + message, `reopen`.
    var kind: String {
        switch self {
        case .output: "o"
        case .error: "e"
        case .reopened: "reopen"
        }
    }

    var payload: [UInt8] {
        switch self {
        case .output(let bytes): bytes
        case .error(let message): Array(message.utf8)
        case .reopened: []
        }
    }

    /// The outcome a parent in `state` gives (``reopened`` while it has not finished).
    static func of(id: JobID, state: JobState, result: [UInt8]?, error: String?) -> DependencyOutcome {
        switch state {
        case .succeeded: .output(result ?? Array("null".utf8))
        case .failed, .cancelled, .expired: .error("\(id) \(state.rawValue)" + (error.map { ": \($0)" } ?? ""))
        case .scheduled, .queued, .running, .retrying, .waiting: .reopened
        }
    }
}
