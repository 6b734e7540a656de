import Broker
import Foundation
import TernCore

/// How a worker process claims and runs jobs.
public struct WorkerConfiguration: Sendable {
    /// How the worker picks among its queues.
    public enum QueueOrder: Sendable, Hashable {
        /// Always drain earlier queues first.
        case strict
        /// Visit queues in a random order weighted by these weights (one per queue, ≥ 1).
        case weighted([Int])
    }

    /// The queues to claim from (default `default`).
    public var queues: [QueueName] = [.default]
    /// How queues are visited (default strict, in the order of ``queues``).
    public var queueOrder: QueueOrder = .strict
    /// Jobs run at once (default 10).
    public var concurrency = 10
    /// How long a claimed job stays this worker's without a heartbeat (default 15 s).
    public var lease: Duration = .seconds(15)
    /// How often leases are extended and cancel requests picked up (default 1 s).
    public var heartbeatInterval: Duration = .seconds(1)
    /// How often this worker's reaper returns expired leases to their queues (default 1 s).
    public var reaperInterval: Duration = .seconds(1)
    /// How long running jobs may take to finish after shutdown is asked (default 25 s); the rest are
    /// returned to their queues.
    public var shutdownGrace: Duration = .seconds(25)
    /// How long an idle worker blocks on Redis waiting for work before it looks again (default 1 s).
    public var idleWait: Duration = .seconds(1)
    /// The largest result stored, in bytes (default 1 MiB); a larger result fails the job permanently.
    public var maxResultBytes = JobLimits.defaultMaxResultBytes
    /// This worker's id, unique in the fleet (default `<host>:<pid>:<random>`).
    public var workerID: String
    /// Threads the bodies of tasks run on, so that CPU-bound jobs cannot starve time limits, cancel
    /// requests and shutdown: `nil` for `min(concurrency, 64)` (default); 0 runs them on Swift's
    /// shared pool, which is faster for tiny async jobs (about 15 % more no-op jobs a second) but
    /// lets as many CPU-bound jobs as cores delay those. Heartbeats have a thread of their own
    /// either way.
    public var jobThreads: Int?
    /// How long a job that ignores cancellation may run past its hard time limit (or, isolated, past
    /// its cancellation) before its process is killed (default 10 s).
    public var killGrace: Duration = .seconds(10)
    /// Where jobs of isolated tasks run: `nil` runs every job in this process (default).
    public var isolation: ProcessIsolation?
    /// An isolated job whose process died this many times fails as `worker_crashed` (default 3).
    public var maxCrashes = 3
    /// The pid of the supervisor running this worker process, if one does (`worker --processes`).
    public var supervisorPID: Int32?
    /// Limits to declare when the worker starts, besides its tasks' own (``TaskOptions/limit``):
    /// the config file's `limits`. Declared limits win over a task's in the same scope.
    public var limits: [LimitDeclaration] = []
    /// The most jobs the worker claims in all (`nil`, the default: no limit). Once it has claimed
    /// that many it claims no more; a supervised process recycled by `--max-jobs-per-process`
    /// (``Recycler``) runs exactly that many before it is replaced.
    public var maxJobs: Int?

    /// Creates a configuration with the defaults.
    public init() {
        let host = ProcessInfo.processInfo.hostName.prefix(64)
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        workerID = "\(host):\(getpid()):\(random)"
    }
}
