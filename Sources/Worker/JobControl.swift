import Synchronization

/// Why a running job is being stopped before it finishes.
enum JobStop: Sendable, Hashable {
    case cancelRequested
    case softTimeLimit(Duration)
    case leaseLost
    case shutdown
}

/// Lets the worker stop one running job: the job's watcher waits on it next to the job's task.
final class JobControl: Sendable {
    private struct State {
        var stop: JobStop?
        var settling = false
        var waiter: CheckedContinuation<JobStop?, Never>?
    }

    private let state = Mutex(State())

    /// Asks the job to stop; the first reason wins.
    func signal(_ stop: JobStop) {
        let waiter: CheckedContinuation<JobStop?, Never>? = state.withLock { state in
            guard state.stop == nil else { return nil }
            state.stop = stop
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: stop)
    }

    /// The reason the job was stopped, if it was.
    var stop: JobStop? { state.withLock { $0.stop } }

    /// Marks that the job's task has ended and its outcome is about to be reported; returns the stop
    /// reason as of that moment. Together with ``claimForRelease()`` it decides, under one lock,
    /// whether the worker reports the outcome or the shutdown releases the job — never both.
    func markSettling() -> JobStop? {
        state.withLock { state in
            state.settling = true
            return state.stop
        }
    }

    /// For the shutdown: stops the job and claims the right to release it, unless its outcome is
    /// already being reported.
    func claimForRelease() -> Bool {
        let (claimed, waiter): (Bool, CheckedContinuation<JobStop?, Never>?) = state.withLock { state in
            guard !state.settling else { return (false, nil) }
            if state.stop == nil { state.stop = .shutdown }
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume(returning: .shutdown)
        return claimed
    }

    /// Whether the job's task has ended.
    var isSettling: Bool { state.withLock { $0.settling } }

    /// Returns the stop reason when the job is signalled or `limit` passes; `nil` if the waiting
    /// task is cancelled first (the job finished).
    func waitForStop(limit: Duration?) async -> JobStop? {
        // Without a limit no timer is needed, nor a group to race it (this runs beside every job).
        guard let limit else { return await waitForSignal() }
        return await withTaskGroup(of: JobStop?.self) { group in
            group.addTask { await self.waitForSignal() }
            group.addTask {
                do {
                    try await Task.sleep(for: limit)
                    return .softTimeLimit(limit)
                } catch {
                    return nil
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            if let first { signal(first) }
            return first
        }
    }

    private func waitForSignal() async -> JobStop? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready: JobStop?? = state.withLock { state in
                    if let stop = state.stop { return .some(stop) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
