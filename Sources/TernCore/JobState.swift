/// Where a job is in its life.
///
/// `scheduled` → `queued` → `running` → `succeeded` | `failed` | `cancelled`; `running` → `retrying`
/// → `queued`; `expired` when its deadline passes before it starts; `waiting` → `queued` once the
/// jobs it depends on have finished (or → `cancelled` when one of them failed).
public enum JobState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Waiting for its run time.
    case scheduled
    /// Ready to run.
    case queued
    /// Claimed by a worker under a lease.
    case running
    /// Failed an attempt and waiting for its retry time.
    case retrying
    /// Finished with a result.
    case succeeded
    /// Failed for good: attempts exhausted or a permanent error.
    case failed
    /// Cancelled before it finished.
    case cancelled
    /// Not started before its deadline.
    case expired
    /// Waiting for the jobs it depends on (a workflow's later step).
    case waiting

    /// Whether the job has finished and will never change again.
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .expired: true
        case .scheduled, .queued, .running, .retrying, .waiting: false
        }
    }
}
