import Foundation
import TernCore

/// One limit bucket of ``MemoryQueueState``: the counterpart of `lrate:`, `lhold:`, `lwait:` and
/// the bucket's entry in `limit_due` (see ``JobFunctions``).
struct MemoryLimitBucket: Sendable {
    /// The GCRA theoretical arrival time, in milliseconds.
    var arrival: Double = 0
    /// The running jobs holding its concurrency slots.
    var holders: Set<JobID> = []
    /// Its held-back jobs, in order.
    var waiting: [JobID] = []
    /// When its first held-back job may run (`Int64.max`: once a slot frees); `nil` when none waits.
    var due: Int64?
}

extension MemoryQueueState {
    /// The buckets a job of `task` with limit key `key` counts in, with their limits.
    func buckets(task: String, key: String?) -> [(name: String, limit: JobLimit)] {
        var out: [(String, JobLimit)] = []
        if let limit = limits["*"]?.effective { out.append(("*", limit)) }
        if let limit = limits[task]?.effective { out.append((task, limit)) }
        if let key, let limit = limits[task + "#"]?.effective { out.append((task + "#" + key, limit)) }
        return out
    }

    /// `nil` if a job may run in `bucket` now; else when it may (`Int64.max`: once a slot frees).
    func limitWait(_ bucket: String, _ limit: JobLimit, now: Int64) -> Int64? {
        let state = limitBuckets[bucket] ?? MemoryLimitBucket()
        if let concurrency = limit.concurrency, state.holders.count >= concurrency { return .max }
        if let rate = limit.rate {
            let interval = Double(rate.period.nanoseconds / 1_000_000) / Double(rate.count)
            let at = max(state.arrival, Double(now)) - Double(limit.burst - 1) * interval
            if at > Double(now) { return Int64(at.rounded(.up)) }
        }
        return nil
    }

    /// Moves the first held-back job of each due bucket to the pending set (`promote_limited`).
    mutating func promoteLimited(now: Int64) {
        let due = limitBuckets.filter { ($0.value.due ?? .max) <= now }.keys.sorted().prefix(32)
        for name in due {
            // A bucket whose limit was lifted lets all its jobs go (up to 1,000).
            let scope = name.firstIndex(of: "#").map { String(name[...$0]) } ?? name
            var budget = limits[scope]?.effective == nil ? 1000 : 1
            while budget > 0, let id = limitBuckets[name]?.waiting.first {
                limitBuckets[name]?.waiting.removeFirst()
                throttled.remove(id)
                guard let job = jobs[id], job.record.state == .queued else { continue }
                jobs[id]?.promoted = true
                jobs[id]?.record.throttled = false
                // First in its priority band (in the order promoted): its turn has come, whatever
                // else is queued.
                pending.insert(id, score: (9 - Int64(job.record.priority)) * Self.band - Int64(budget))
                budget -= 1
            }
            let more = limitBuckets[name]?.waiting.isEmpty == false
            limitBuckets[name]?.due = more ? now + 1000 : nil
        }
    }

    /// Whether a popped job may run (its buckets taken); otherwise it is held back (`limit_admit`).
    mutating func admit(_ id: JobID, now: Int64) -> Bool {
        guard let job = jobs[id] else { return true }
        let buckets = buckets(task: job.record.task, key: job.record.limitKey)
        guard !buckets.isEmpty else { return true }
        for (name, limit) in buckets {
            if !job.promoted, limitBuckets[name]?.waiting.isEmpty == false {
                hold(id, in: name, until: nil, front: false, now: now)
                return false
            }
            if let at = limitWait(name, limit, now: now) {
                hold(id, in: name, until: at, front: job.promoted, now: now)
                return false
            }
        }
        var held: [String] = []
        for (name, limit) in buckets {
            var state = limitBuckets[name] ?? MemoryLimitBucket()
            if limit.concurrency != nil {
                state.holders.insert(id)
                held.append(name)
            }
            if let rate = limit.rate {
                // Starts keep to a grid: one that comes late keeps its place (as `limit_take`).
                let interval = Double(rate.period.nanoseconds / 1_000_000) / Double(rate.count)
                state.arrival = (state.arrival >= Double(now) - interval ? state.arrival : Double(now)) + interval
            }
            limitBuckets[name] = state
            if !state.waiting.isEmpty {
                let next = limitWait(name, limit, now: now) ?? now
                limitBuckets[name]?.due = next
            }
        }
        jobs[id]?.held = held
        jobs[id]?.promoted = false
        return true
    }

    private mutating func hold(_ id: JobID, in bucket: String, until at: Int64?, front: Bool, now: Int64) {
        var state = limitBuckets[bucket] ?? MemoryLimitBucket()
        if front { state.waiting.insert(id, at: 0) } else { state.waiting.append(id) }
        if let at { state.due = at == .max && !front ? (state.due ?? .max) : at }
        limitBuckets[bucket] = state
        throttled.insert(id)
        jobs[id]?.promoted = false
        jobs[id]?.record.throttled = true
    }

    /// Takes a job out of the running set, giving back its limit slots (`release_slots`).
    mutating func leaveRunning(_ id: JobID, now: Int64) {
        active.remove(id)
        guard let held = jobs[id]?.held, !held.isEmpty else { return }
        for name in held {
            limitBuckets[name]?.holders.remove(id)
            if limitBuckets[name]?.waiting.isEmpty == false { limitBuckets[name]?.due = now }
        }
        jobs[id]?.held = []
    }

    /// Forgets buckets with nothing left in them: no slot held, no job held back, no rate state
    /// still ahead of `now` (Redis lets the same keys expire or vanish when empty).
    mutating func dropIdleBuckets(now: Int64) {
        limitBuckets = limitBuckets.filter { !$0.value.holders.isEmpty || !$0.value.waiting.isEmpty || $0.value.arrival > Double(now) }
    }

    /// Sets a scope's declared or operator's limit (`tern_limit`); every held-back bucket is due.
    mutating func setLimit(_ limit: JobLimit??, scope: LimitScope, declared: Bool, now: Int64) {
        var entry = limits[scope.field] ?? QueueLimit(scope: scope)
        if declared { entry.declared = limit ?? nil } else { entry.set = limit }
        limits[scope.field] = entry.declared == nil && entry.set == nil ? nil : entry
        for name in limitBuckets.keys where limitBuckets[name]?.due != nil { limitBuckets[name]?.due = now }
    }
}
