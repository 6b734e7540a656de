import Broker
import Logging
import Synchronization

/// An operator's orders to a supervisor (`POST /v1/workers/{id}/quiet`, `/resume`, `/stop` with
/// the supervisor's own id), read each time it registers, every heartbeat interval.
extension WorkerSupervisor {
    /// What the supervisor is doing besides running, as its registry entry shows it.
    var mode: WorkerInfo.Mode? {
        state.withLock { $0.stopping ? .stopping : $0.quiet ? .quiet : nil }
    }

    /// Keeps to `order`: stop is as a first SIGTERM (every process drains and exits); quiet is
    /// passed on to every process at each report (so one that lost it, or started since, has it
    /// again within a heartbeat); withdrawn, it is withdrawn from them all.
    func follow(_ order: WorkerOrder?, _ registry: any WorkerRegistry) async {
        if order == .stop {
            guard !state.withLock({ $0.stopping }) else { return }
            logger.notice("stopping: an operator asked this supervisor to stop")
            stopAsOrdered()
            return
        }
        let (quiet, pass, withdraw, changed) = state.withLock { state -> (Bool, [String], [String], Bool) in
            // Quiet by SIGTSTP, whose order is not stored yet: not withdrawn, only not stored.
            let quiet = order == .quiet || state.quietAsked > state.quietStored
            let changed = state.quiet != quiet
            state.quiet = quiet
            if quiet { return (true, state.children.values.filter { !$0.retiring }.compactMap(\.workerID), [], changed) }
            return (false, [], Array(state.quieted), changed)
        }
        if changed {
            logger.notice(quiet
                ? "quiet: an operator asked this supervisor's processes to claim no more jobs; running jobs go on"
                : "resumed: the quiet order was withdrawn; the processes claim jobs again")
        }
        for id in pass where (try? await registry.give(.quiet, to: id)) != nil {
            _ = state.withLock { $0.quieted.insert(id) }
        }
        // Each is retried at the next registration until it succeeds.
        for id in withdraw where (try? await registry.give(nil, to: id)) != nil {
            _ = state.withLock { $0.quieted.remove(id) }
        }
    }

    /// Quiets every process, as a quiet order to the supervisor's id does (`tern worker` calls it
    /// on SIGTSTP): the order is passed to each process at once, and stored for the supervisor's
    /// id at once (else at its next report, while Redis cannot be reached), so it shows in the
    /// worker list and lasts until a resume order (`POST /v1/workers/{id}/resume`) withdraws it.
    public func quiet() {
        let pass = state.withLock { state -> [String]? in
            state.quietAsked += 1
            guard !state.quiet else { return nil }
            state.quiet = true
            return state.children.values.filter { !$0.retiring }.compactMap(\.workerID)
        }
        if let pass {
            logger.notice("quiet: SIGTSTP asked this supervisor's processes to claim no more jobs; running jobs go on (resume it with tern workers resume \(id))")
            for child in pass { work.continuation.yield(.quiet(child)) }
        }
        if let registry = broker as? any WorkerRegistry { Task { await storeAskedQuiet(registry) } }
    }

    /// Stores the quiet order ``quiet()`` asked for, once old orders are withdrawn; retried at each
    /// report until it succeeds. A later call of ``quiet()`` stores it again.
    func storeAskedQuiet(_ registry: any WorkerRegistry) async {
        // A stopping supervisor deletes its order as it leaves: storing one then would outlive it.
        guard let asked = state.withLock({ $0.ordersReady && !$0.stopping && $0.quietAsked > $0.quietStored ? $0.quietAsked : nil })
        else { return }
        do {
            try await registry.give(.quiet, to: id)
            state.withLock { $0.quietStored = max($0.quietStored, asked) }
        } catch {
            logger.warning("the quiet order is not stored yet; it is tried again at the next report", metadata: ["error": "\(error)"])
        }
    }

    /// Withdraws an order given to this supervisor's id before it started: its id is the same
    /// after a restart with the same pid (as pid 1 in a container). Until that succeeded (Redis may
    /// be down at start) it follows no order; it is tried again at each report.
    func withdrawOldOrder() async {
        guard let registry = broker as? any WorkerRegistry, !state.withLock({ $0.ordersReady }) else { return }
        if (try? await registry.give(nil, to: id)) != nil { state.withLock { $0.ordersReady = true } }
    }
}
