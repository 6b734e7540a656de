import Foundation

/// Threads of their own for the bodies of tasks, so that CPU-bound jobs cannot starve the worker.
///
/// Swift concurrency runs every task on a pool of about one thread per core. A job that computes
/// without suspending holds its thread; with as many such jobs as cores, nothing else of the
/// process runs: no heartbeat (leases expire and the job runs twice), no soft time limit, no
/// shutdown. Job bodies therefore run on this executor (`executorPreference:`), and the worker's
/// duties (heartbeats, the reaper) on a ``DutyThread``, so that leases are extended on time
/// whatever the shared pool is doing. The operating system time-slices these
/// threads, so CPU-bound jobs share the cores fairly; async jobs suspend as usual and need no
/// thread while waiting.
final class JobThreads: TaskExecutor, @unchecked Sendable {
    /// At most this many threads per worker (a worker runs `min(concurrency, maxCount)`); more
    /// CPU-bound jobs than that wait for a thread, async jobs are not limited by it.
    static let maxCount = 64

    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var jobs: [UnownedJob] = []
    private var head = 0
    private var stopping = false

    /// Starts `count` threads; they run until ``stop()``.
    init(count: Int) {
        for index in 0..<max(1, count) {
            // Named from inside the thread, as ``DutyThread`` is.
            let thread = Thread {
                ThreadName.set("tern-job-\(index)")
                self.serve()
            }
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.unlock()
        // Signalled after the unlock: a thread woken while the lock is still held would block on
        // it at once and need a second wake-up (seen as futex contention under a drain).
        condition.signal()
    }

    /// Lets the threads end once no work is left (the worker has stopped: no job runs any more).
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func serve() {
        while true {
            condition.lock()
            while head == jobs.count && !stopping { condition.wait() }
            if head == jobs.count {
                condition.unlock()
                return
            }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
