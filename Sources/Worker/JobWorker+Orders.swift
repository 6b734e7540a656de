import Broker
import Logging
import Synchronization

/// An operator's orders (`POST /v1/workers/{id}/quiet`, `/resume`, `/stop`), which the worker reads
/// each time it registers, every heartbeat interval.
extension JobWorker {
    /// What the worker is doing besides running, as its registry entry shows it.
    var mode: WorkerInfo.Mode? {
        state.withLock { $0.stopping ? .stopping : $0.quiet ? .quiet : nil }
    }

    /// Keeps to `order`: quiet stops the claims (running jobs go on) until the order is withdrawn;
    /// stop is ``shutdown()``, as on SIGTERM. No order does not end a quiet that ``quiet()`` began
    /// until its order is stored.
    func follow(_ order: WorkerOrder?) {
        switch order {
        case .stop?:
            guard !isStopping else { return }
            logger.notice("stopping: an operator asked this worker to stop")
            shutdown()
        case .quiet?:
            goQuiet("quiet: an operator asked this worker to claim no more jobs; running jobs go on")
        case nil:
            let (changed, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
                // Quiet by SIGTSTP, whose order is not stored yet: not withdrawn, only not stored.
                guard state.quiet, state.quietAsked == state.quietStored else { return (false, nil) }
                state.quiet = false
                defer { state.slotWaiter = nil }
                return (true, state.slotWaiter)
            }
            guard changed else { return }
            waiter?.resume()
            logger.notice("resumed: the quiet order was withdrawn; claiming jobs again")
        }
    }

    /// Quiets the worker at once, as a quiet order to its id does (`tern worker` calls it on
    /// SIGTSTP): it claims nothing more and running jobs go on. The order is stored for its id at
    /// once (else at its next registration, while Redis cannot be reached), so it shows in the
    /// worker list and lasts until a resume order (`POST /v1/workers/{id}/resume`) withdraws it.
    public func quiet() {
        state.withLock { $0.quietAsked += 1 }
        goQuiet("quiet: SIGTSTP asked this worker to claim no more jobs; running jobs go on (resume it with tern workers resume \(configuration.workerID))")
        if let registry = broker as? any WorkerRegistry { Task { await storeAskedQuiet(registry) } }
    }

    private func goQuiet(_ notice: Logger.Message) {
        let (changed, interrupt) = state.withLock { state -> (Bool, JobControl?) in
            guard !state.quiet else { return (false, nil) }
            state.quiet = true
            return (true, state.idleInterrupt)
        }
        guard changed else { return }
        interrupt?.signal(.shutdown)
        logger.notice(notice)
    }

    /// Stores the quiet order ``quiet()`` asked for, once old orders are withdrawn; retried at each
    /// registration until it succeeds. A later call of ``quiet()`` stores it again.
    func storeAskedQuiet(_ registry: any WorkerRegistry) async {
        // A stopping worker deletes its order as it leaves: storing one then would outlive it.
        guard let asked = state.withLock({ $0.ordersReady && !$0.stopping && $0.quietAsked > $0.quietStored ? $0.quietAsked : nil })
        else { return }
        do {
            try await registry.give(.quiet, to: configuration.workerID)
            state.withLock { $0.quietStored = max($0.quietStored, asked) }
        } catch {
            logger.warning("the quiet order is not stored yet; it is tried again at the next report", metadata: ["error": "\(error)"])
        }
    }

    /// A signal that ends one idle wait, fired by ``shutdown()`` and by a quiet order; fired at once
    /// if either holds already.
    func idleInterrupt() -> JobControl {
        let control = JobControl()
        let fire = state.withLock { state in
            state.idleInterrupt = control
            return state.stopping || state.quiet
        }
        if fire { control.signal(.shutdown) }
        return control
    }

    /// Withdraws an order given to this worker's id before it started (a restarted worker with a
    /// fixed id must not stop at once because of its predecessor's order). Until that succeeded
    /// (Redis may be down at start) the worker follows no order; it is tried at each registration.
    func withdrawOldOrder() async {
        guard let registry = broker as? any WorkerRegistry, !state.withLock({ $0.ordersReady }) else { return }
        if (try? await registry.give(nil, to: configuration.workerID)) != nil { state.withLock { $0.ordersReady = true } }
    }
}
