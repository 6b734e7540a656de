import Foundation

/// One thread of its own for a worker's duties (heartbeats, the reaper), with its own timers.
///
/// Job bodies may fill Swift's shared pool (`--job-threads 0`, or a host application's own work),
/// and so may anything else in the process. Tasks that prefer this executor run here instead, and
/// ``sleep(for:)`` wakes them from here too: `Task.sleep` would not do, because its wake-up is
/// queued on the shared pool first and waits there behind whatever holds it (measured: a 1 s
/// heartbeat 5.8 s late with CPU-bound jobs on the shared pool). Redis replies resume the waiting
/// task here as well, so a heartbeat never needs a thread of the shared pool.
final class DutyThread: TaskExecutor, @unchecked Sendable {
    private struct Timer {
        let id: Int
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Void, Never>
    }

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var jobs: [UnownedJob] = []
    private var timers: [Timer] = []
    /// Timers cancelled before they were registered.
    private var cancelled: Set<Int> = []
    private var nextTimer = 0
    private var stopping = false

    /// Starts the thread, named `name`; it runs until ``stop()``.
    init(name: String = "tern-duties") {
        // Named from inside: on Linux a name set before the start does not reach the thread, which
        // would keep its creator's (such as a pool thread's `oot.default-qos`) in `top -H` and perf.
        let thread = Thread {
            ThreadName.set(name)
            self.serve()
        }
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Suspends the calling task for `duration`, woken by this thread; returns early when the task
    /// is cancelled (like `try? await Task.sleep(for:)`).
    func sleep(for duration: Duration) async {
        let deadline = ContinuousClock.now + duration
        let id = condition.withLock {
            nextTimer += 1
            return nextTimer
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                condition.lock()
                if cancelled.remove(id) != nil || stopping {
                    condition.unlock()
                    continuation.resume()
                    return
                }
                timers.append(Timer(id: id, deadline: deadline, continuation: continuation))
                condition.signal()
                condition.unlock()
            }
        } onCancel: {
            condition.lock()
            let timer = timers.firstIndex { $0.id == id }.map { timers.remove(at: $0) }
            if timer == nil { cancelled.insert(id) }
            condition.unlock()
            timer?.continuation.resume()
        }
    }

    /// Ends the thread once no work is left; pending sleeps end at once (the thread resumes them and
    /// runs what they lead to before it ends). Give it no new work afterwards: nothing would run it.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func serve() {
        while true {
            condition.lock()
            var due: [Timer] = []
            while true {
                // Timers are looked at on every pass, so a stream of work cannot hold them back.
                let now = ContinuousClock.now
                let isDue = { (timer: Timer) in self.stopping || timer.deadline <= now }
                due = timers.filter(isDue)
                timers.removeAll(where: isDue)
                if !jobs.isEmpty || !due.isEmpty || stopping { break }
                if let next = timers.map(\.deadline).min() {
                    // NSCondition waits until a wall-clock time, so a backward step of the system
                    // clock during a wait delays the timers by that step (NTP slews rather than
                    // steps); short waits re-read the monotonic clock often.
                    let wait = min(now.duration(to: next), .milliseconds(250))
                    let seconds = Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18
                    _ = condition.wait(until: Date(timeIntervalSinceNow: seconds))
                } else {
                    condition.wait()
                }
            }
            if jobs.isEmpty && due.isEmpty {
                condition.unlock()
                return
            }
            let ready = jobs
            jobs.removeAll(keepingCapacity: true)
            condition.unlock()
            // Resuming enqueues each sleeping task back on its preferred executor: this one.
            for timer in due { timer.continuation.resume() }
            for job in ready { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }
}
