import Broker
import Foundation
import TernCore

/// One line a supervised worker process writes on its standard output for its supervisor, the one
/// codec both ends use. Lines are space-separated fields ending in a newline:
///
/// - `worker <worker id> <concurrency>`: first, so the supervisor can drop the process's registry
///   entry when it dies.
/// - `claimed <id> <token> <kill after ms|-> <retry delay ms|-> <isolated 0|1>`: a job claimed,
///   when to kill the process for the job's hard time limit (plus the kill grace), the retry delay
///   to record then, and whether the job runs in a process of its own (then the death of this
///   process is not the job's doing). A line without the last field (an older binary) is not
///   isolated.
/// - `outcome <task> <outcome> <microseconds>`: an attempt finished (only when the supervisor serves
///   metrics).
/// - `ended <id>`: the job's task has ended and its outcome is being reported: if the process dies
///   now, the job did not crash it.
/// - `settled <id>`: the job's outcome is stored; the process no longer holds it.
public enum SupervisorMessage: Sendable, Equatable {
    case worker(id: String, concurrency: Int)
    case claimed(JobLease, killAfter: Duration?, retryAfter: Duration?, isolated: Bool)
    case outcome(task: String, outcome: JobOutcome.Kind, duration: Duration)
    case ended(JobID)
    case settled(JobID)

    /// The line, newline included.
    public var line: String {
        func milliseconds(_ duration: Duration?) -> String { duration.map { "\($0.nanoseconds / 1_000_000)" } ?? "-" }
        switch self {
        case .worker(let id, let concurrency): return "worker \(id) \(concurrency)\n"
        case .claimed(let lease, let killAfter, let retryAfter, let isolated):
            return "claimed \(lease.id.rawValue) \(lease.token) \(milliseconds(killAfter)) \(milliseconds(retryAfter)) \(isolated ? 1 : 0)\n"
        case .outcome(let task, let outcome, let duration):
            return "outcome \(task) \(outcome.rawValue) \(duration.nanoseconds / 1_000)\n"
        case .ended(let id): return "ended \(id.rawValue)\n"
        case .settled(let id): return "settled \(id.rawValue)\n"
        }
    }

    /// Parses a line without its newline; `nil` for anything else (a task's stray print included).
    public init?(line: some StringProtocol) {
        let parts = String(line).split(separator: " " as Character).map(String.init)
        switch (parts.first, parts.count) {
        case ("worker", 3):
            guard let concurrency = Int(parts[2]) else { return nil }
            self = .worker(id: parts[1], concurrency: concurrency)
        case ("claimed", 5), ("claimed", 6):
            guard let id = JobID(parts[1]) else { return nil }
            self = .claimed(
                JobLease(id: id, token: parts[2]), killAfter: Int64(parts[3]).map { .milliseconds($0) },
                retryAfter: Int64(parts[4]).map { .milliseconds($0) }, isolated: parts.count == 6 && parts[5] == "1")
        case ("outcome", 4):
            guard let kind = JobOutcome.Kind(rawValue: parts[2]), let micros = Int64(parts[3]) else { return nil }
            self = .outcome(task: parts[1], outcome: kind, duration: .microseconds(micros))
        case ("ended", 2):
            guard let id = JobID(parts[1]) else { return nil }
            self = .ended(id)
        case ("settled", 2):
            guard let id = JobID(parts[1]) else { return nil }
            self = .settled(id)
        default:
            return nil
        }
    }
}
