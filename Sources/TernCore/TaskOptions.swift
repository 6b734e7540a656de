/// How a task's jobs are queued, retried and kept. Every field has a default; enqueue-time options
/// override queue, priority and max attempts per job.
public struct TaskOptions: Sendable, Hashable {
    /// The queue jobs go to (default `default`).
    public var queue: QueueName
    /// 0 (lowest) to 9 (highest); higher runs first, FIFO among equals (default 5).
    public var priority: Int
    /// Attempts before the job fails for good, the first included (default 3; 1 means no retries).
    public var maxAttempts: Int
    /// The delay before each retry (default exponential from 1 s to 1 h with jitter).
    public var retryBackoff: RetryBackoff
    /// Cancel the job's task after this long (cooperative); `nil` for no limit (default 30 min).
    public var softTimeLimit: Duration?
    /// Kill the process running the job when it runs this long and then the worker's kill grace
    /// (`--kill-grace`, default 10 s) more: for a job that ignores cancellation. The job fails with
    /// `hard time limit … exceeded` (its retry policy applies). `nil` means the soft limit (default).
    /// Enforced by a supervised worker (`--processes`) and for isolated tasks; a single-process
    /// worker cannot stop a job that ignores cancellation.
    public var hardTimeLimit: Duration?
    /// Run each job of this task alone in a process of its own (default false), so that a trap or
    /// a leak in it touches no other job. Costs a process start (about 20 ms) per job.
    public var isolated: Bool
    /// How long a finished job and its result are kept (default 24 h); a failed job, see
    /// ``failedRetention``.
    public var resultRetention: Duration
    /// How long a failed job is kept, to be inspected and retried; `nil` (the default) for the
    /// deployment's retention of failed jobs: `queues.failed_retention_seconds`, else 7 days. Each
    /// queue also keeps at most `queues.max_failed` failed jobs (default 10,000).
    public var failedRetention: Duration?
    /// A job whose first attempt has not started this long after it was due (for a job enqueued to
    /// run now: after it was enqueued) becomes `expired`; `nil` for never (default). Retries never expire.
    public var expiresAfter: Duration?
    /// Keep the task's jobs unique by a key (see ``UniquePolicy``); `nil` for none (default).
    public var unique: UniquePolicy?
    /// A rate and/or concurrency limit on the task's jobs in its queue, or on each limit key
    /// (see ``JobLimit``); `nil` for none (default). Workers declare it when they start; an
    /// operator's `tern limits set` overrides it.
    public var limit: JobLimit?
    /// The task's body only awaits: it makes no blocking call and never computes for long (default
    /// false). Its jobs then run on Swift's shared pool, like the rest of an async program, instead
    /// of one of the worker's job threads, which saves each job two thread switches (about a fifth
    /// of the worker's CPU per no-op job, and about 0.1 ms of start latency; BENCHMARKS.md). A body
    /// that blocks anyway holds a thread of that pool, of which there are as many as cores: the
    /// worker's soft-limit timers, cancel requests and shutdown then wait for one (heartbeats do
    /// not). It does not apply to a job that runs isolated (``isolated``, or a suspect of a crash).
    public var nonBlocking: Bool

    /// Creates options; every parameter has the default named on its property.
    public init(
        queue: QueueName = .default, priority: Int = 5, maxAttempts: Int = 3,
        retryBackoff: RetryBackoff = .exponential(), softTimeLimit: Duration? = .seconds(1800),
        resultRetention: Duration = .seconds(86_400), expiresAfter: Duration? = nil,
        hardTimeLimit: Duration? = nil, isolated: Bool = false, failedRetention: Duration? = nil,
        unique: UniquePolicy? = nil, limit: JobLimit? = nil, nonBlocking: Bool = false
    ) {
        self.nonBlocking = nonBlocking
        self.unique = unique
        self.limit = limit
        self.failedRetention = failedRetention
        self.hardTimeLimit = hardTimeLimit
        self.isolated = isolated
        self.queue = queue
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.retryBackoff = retryBackoff
        self.softTimeLimit = softTimeLimit
        self.resultRetention = resultRetention
        self.expiresAfter = expiresAfter
    }

    /// The run time after which the job's process is killed (before the kill grace): the hard limit,
    /// else the soft limit; `nil` for none.
    public var effectiveHardTimeLimit: Duration? { hardTimeLimit ?? softTimeLimit }
}

/// The delay before a retry.
public enum RetryBackoff: Sendable, Hashable {
    /// `min(cap, base × 2^(retry-1))` with equal jitter (the upper half drawn at random).
    case exponential(base: Duration = .seconds(1), cap: Duration = .seconds(3600))
    /// The same delay before every retry.
    case fixed(Duration)

    /// The delay before retry number `retry` (1 for the first retry).
    public func delay(retry: Int) -> Duration {
        switch self {
        case .exponential(let base, let cap): Backoff(base: base, cap: cap).delay(attempt: retry)
        case .fixed(let delay): delay
        }
    }
}
