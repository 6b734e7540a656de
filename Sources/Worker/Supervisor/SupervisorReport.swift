import Broker
import Foundation
import Synchronization
import TernCore

/// What a supervised worker process tells its supervisor (``SupervisorMessage`` lines on standard
/// output): who it is, and each job it claims and settles, with when to kill it for the job's hard
/// time limit.
public struct SupervisorReport: Sendable {
    let registry: TaskRegistry
    let configuration: WorkerConfiguration
    /// Whether `outcome` lines are written (the supervisor serves metrics).
    let reportsOutcomes: Bool

    public init(registry: TaskRegistry, configuration: WorkerConfiguration, reportsOutcomes: Bool) {
        self.registry = registry
        self.configuration = configuration
        self.reportsOutcomes = reportsOutcomes
    }

    /// Names this worker, so the supervisor can drop its registry entry when the process dies.
    public func introduce() {
        Self.send(.worker(id: configuration.workerID, concurrency: configuration.concurrency))
    }

    /// Reports one of the worker's events.
    public func write(_ event: WorkerEvent) {
        switch event {
        case .claimed(let job):
            var killAfter: Duration?, retry: Duration?
            // An isolated job (a suspect too) has its own killer: the supervisor kills only for jobs
            // that run in the process itself.
            let isolated = configuration.isolation.map { isolation in registry[job.task].map(isolation.isolates) ?? false || job.suspect } ?? false
            if let entry = registry[job.task], !isolated, let limit = entry.options.effectiveHardTimeLimit
            {
                let deadline = limit + configuration.killGrace
                killAfter = deadline
                let error = HardTimeLimitExceeded(limit: limit, killedAfter: deadline)
                if job.attempt < job.maxAttempts && !entry.isPermanent(error) {
                    retry = entry.retryDelay(job.attempt, error)
                }
            }
            Self.send(.claimed(job.lease, killAfter: killAfter, retryAfter: retry, isolated: isolated))
        case .taskEnded(let id):
            Self.send(.ended(id))
        case .settled(let id):
            Self.send(.settled(id))
        case .finished(let outcome):
            guard reportsOutcomes else { return }
            Self.send(.outcome(task: outcome.task, outcome: outcome.outcome, duration: outcome.duration))
        }
    }

    /// Writes to the supervisor's pipe; once the supervisor is gone, the write fails quietly (SIGPIPE
    /// is ignored in a child) and the orphan watch stops the process.
    private static func send(_ message: SupervisorMessage) {
        try? FileHandle.standardOutput.write(contentsOf: Data(message.line.utf8))
    }
}

/// Shuts a supervised worker process down once it has settled `jobLimit` jobs or its resident
/// memory passes `memoryLimitMiB`, so its supervisor replaces it.
public final class Recycler: Sendable {
    private let jobLimit: Int?
    private let memoryLimitMiB: Int?
    private let count = Mutex(0)
    private let fired = Atomic(false)
    private let onLimit: @Sendable (String) -> Void

    /// `onLimit` is told why, once.
    public init(jobLimit: Int?, memoryLimitMiB: Int?, onLimit: @escaping @Sendable (String) -> Void) {
        self.jobLimit = jobLimit
        self.memoryLimitMiB = memoryLimitMiB
        self.onLimit = onLimit
    }

    /// Counts a settled job.
    public func settled() {
        guard let jobLimit else { return }
        let reached = count.withLock { count in
            count += 1
            return count == jobLimit
        }
        if reached { fire("finished \(jobLimit) jobs") }
    }

    /// Checks resident memory every 2 s until the cap is passed (or the task is cancelled).
    public func watchMemory() async {
        guard let memoryLimitMiB else { return }
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(2))
            if let resident = Self.residentBytes(), resident > memoryLimitMiB * 1_048_576 {
                fire("resident memory \(resident / 1_048_576) MiB is over the cap of \(memoryLimitMiB) MiB")
                return
            }
        }
    }

    private func fire(_ why: String) {
        guard !fired.exchange(true, ordering: .sequentiallyConsistent) else { return }
        onLimit(why)
    }

    /// This process's resident set size, from `/proc/self/statm`.
    public static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
