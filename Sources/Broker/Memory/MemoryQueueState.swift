import Foundation
import TernCore

/// A job as ``MemoryJobBroker`` stores it: the record users see, plus what the Redis job hash holds
/// but does not show.
struct MemoryStoredJob: Sendable {
    var record: JobRecord
    /// The lease token of the current (or last) run.
    var token: String?
    /// The job expires if it has not started by then (`expires_ms`).
    var expiresMilliseconds: Int64?
    /// How long the job is kept once finished (`retention_ms`).
    var retentionMilliseconds: Int64
    /// How long the job is kept once failed (`failed_retention_ms`).
    var failedRetentionMilliseconds: Int64
    /// When the finished job disappears (the job hash's TTL in Redis).
    var removeAtMilliseconds: Int64?
    /// The unique key it took (`unique`).
    var unique: UniqueLock? = nil
    /// What it waits for (`parents`, `input_from`, `on_fail`, `join`, `workflow`).
    var dependencies: JobDependencies? = nil
    /// The jobs that depend on it, each with this job's index among their dependencies.
    var dependents: [(id: JobID, index: Int)] = []
    /// Its dependencies released it (`released`).
    var released = false
    /// The index of the dependency whose failure cancelled it (`dep_cancel`).
    var dependencyCancel: Int? = nil
    /// The limit buckets whose concurrency slots it holds while running (`held`).
    var held: [String] = []
    /// It was promoted from a limit bucket's held-back jobs (`thr` 1).
    var promoted = false
}

/// One queue of ``MemoryJobBroker``: the counterpart of the keys under one queue's base in Redis,
/// with one method per Redis Function of ``JobFunctions`` and the same semantics.
struct MemoryQueueState: Sendable {
    /// Jobs by id (`job:<id>`).
    var jobs: [JobID: MemoryStoredJob] = [:]
    /// Limits by scope field (`limits`).
    var limits: [String: QueueLimit] = [:]
    /// Limit buckets by name (`lrate:`, `lhold:`, `lwait:`, `limit_due`).
    var limitBuckets: [String: MemoryLimitBucket] = [:]
    /// Queued jobs held back by a limit (`throttled`).
    var throttled: Set<JobID> = []
    /// Queued jobs by priority band × 2^40 + sequence (`pending`).
    var pending = MemorySortedSet<JobID>()
    /// Scheduled and retrying jobs by due time (`scheduled`).
    var scheduled = MemorySortedSet<JobID>()
    /// Running jobs by lease deadline (`active`).
    var active = MemorySortedSet<JobID>()
    /// Finished jobs by the time they are dropped, per terminal state.
    var finished: [JobState: MemorySortedSet<JobID>] = [:]
    /// Idempotency key hashes to job ids (`idem:<hash>`), and when each key expires.
    /// Idempotency key hash → the job it holds and the fingerprint of the request that made it.
    var idempotency: [String: (id: JobID, fingerprint: String)] = [:]
    var idempotencyExpiry = MemorySortedSet<String>()
    /// Unique keys to the job that took each (`unique:<key>`), and when `until` keys expire.
    var uniqueHolders: [String: JobID] = [:]
    var uniqueExpiry = MemorySortedSet<String>()
    /// Jobs waiting for their dependencies, by creation time (`waiting`).
    var waitingSet = MemorySortedSet<JobID>()
    /// Each waiting (or not yet created) job's dependencies' outcomes by index (`deps:<id>`).
    var outcomes: [JobID: [Int: DependencyOutcome]] = [:]
    /// Jobs whose dependents must learn of a change (`relay`); the broker drains it after every
    /// operation, under the same lock.
    var relay: [JobID] = []
    /// The dependents of purged jobs, which learn that their dependency is gone (the relay's
    /// entries of deleted hashes).
    var purgedDependents: [(id: JobID, dependents: [(id: JobID, index: Int)])] = []
    /// `meta`: the pending sequence, the claim batch counter, pause and the counters.
    var sequence: Int64 = 0
    var batch: Int64 = 0
    var paused = false
    var staleWrites = 0
    var lostLeases = 0
    /// Jobs finished per minute (`minute:<m>`): minute → (succeeded, failed), the last
    /// ``JobLimits/throughputMinutes`` minutes.
    var minutes: [Int64: (succeeded: Int, failed: Int)] = [:]
    /// Enqueue→start waits: since the queue began (`meta`'s `lat:` fields), and per minute.
    var latencyTotal = LatencyHistogram()
    var latencyMinutes: [Int64: LatencyHistogram] = [:]
    /// Wake tokens left for `waitForWork` (the `wake` list, at most 64).
    var wakeTokens = 0
    /// Wakes asked by the operation in progress; the broker delivers them when it ends.
    var wakes = 0

    static let band: Int64 = 1 << 40
    static let leaseExpiredMessage = "lease expired: the worker stopped reporting"

    // MARK: Helpers (the Lua library's local functions)

    /// The job with `id` unless it is unknown or was removed after its retention.
    func stored(_ id: JobID, now: Int64) -> MemoryStoredJob? {
        guard let job = jobs[id] else { return nil }
        if let removeAt = job.removeAtMilliseconds, now >= removeAt { return nil }
        return job
    }

    /// Adds a job to the pending set after every job already there of its priority (FIFO).
    mutating func addPending(_ id: JobID, priority: Int) {
        sequence += 1
        let clamped = Int64(min(max(priority, -1_000_000), 1_000_000))
        pending.insert(id, score: (9 - clamped) * Self.band + sequence)
    }

    /// Counts a job finished as `state` in the current minute (`count_minute`), forgetting minutes
    /// past ``JobLimits/throughputMinutes``.
    mutating func countMinute(_ state: JobState, now: Int64) {
        guard state == .succeeded || state == .failed else { return }
        let minute = now / 60_000
        var count = minutes[minute] ?? (0, 0)
        if state == .succeeded { count.succeeded += 1 } else { count.failed += 1 }
        minutes[minute] = count
        if minutes.count > JobLimits.throughputMinutes {
            minutes = minutes.filter { $0.key > minute - Int64(JobLimits.throughputMinutes) }
        }
    }

    /// Records a first attempt's wait since its due time (`record_latency`).
    mutating func recordLatency(_ milliseconds: Int64, now: Int64) {
        latencyTotal.record(milliseconds)
        let minute = now / 60_000
        latencyMinutes[minute, default: LatencyHistogram()].record(milliseconds)
        latencyMinutes[minute]?.sumMilliseconds = 0  // as in Redis: the sum is kept only since the queue began
        if latencyMinutes.count > JobLimits.throughputMinutes {
            latencyMinutes = latencyMinutes.filter { $0.key > minute - Int64(JobLimits.throughputMinutes) }
        }
    }

    /// The waits of the last `count` minutes, or since the queue began.
    func latency(minutes count: Int?, now: Int64) -> LatencyHistogram {
        guard let count else { return latencyTotal }
        let current = now / 60_000
        var histogram = LatencyHistogram()
        for (minute, counted) in latencyMinutes where minute > current - Int64(count) && minute <= current {
            histogram.add(counted)
        }
        return histogram
    }

    /// The last `count` minutes' finished jobs, oldest first.
    func throughput(minutes count: Int, now: Int64) -> [MinuteCount] {
        let current = now / 60_000
        return (0..<Int64(count)).map { offset in
            let minute = current - Int64(count) + 1 + offset
            let counted = minutes[minute] ?? (0, 0)
            return MinuteCount(minuteMilliseconds: minute * 60_000, succeeded: counted.succeeded, failed: counted.failed)
        }
    }

    /// Moves a job to a terminal state; it is removed after its retention.
    mutating func finish(_ id: JobID, _ state: JobState, now: Int64) {
        guard let job = jobs[id] else { return }
        unlock(id, job.unique)
        if !job.dependents.isEmpty { relay.append(id) }
        countMinute(state, now: now)
        let dropAt = now + (state == .failed ? job.failedRetentionMilliseconds : job.retentionMilliseconds)
        jobs[id]?.record.state = state
        jobs[id]?.record.finishedMilliseconds = now
        jobs[id]?.removeAtMilliseconds = dropAt
        finished[state, default: MemorySortedSet()].insert(id, score: dropAt)
    }

    /// Deletes the failed jobs beyond `cap` that are due to be dropped first (with one retention: the oldest).
    mutating func capFailed(_ cap: Int) {
        var excess = (finished[.failed]?.count ?? 0) - cap
        while excess > 0, let oldest = finished[.failed]?.popMin() {
            jobs.removeValue(forKey: oldest.member)
            excess -= 1
        }
    }

    mutating func recordError(_ id: JobID, attempt: Int, message: String, now: Int64) {
        guard jobs[id] != nil else { return }
        jobs[id]?.record.errors.append(JobRecord.AttemptError(attempt: attempt, message: message, atMilliseconds: now))
        let excess = (jobs[id]?.record.errors.count ?? 0) - JobLimits.errorsKept
        if excess > 0 { jobs[id]?.record.errors.removeFirst(excess) }
        jobs[id]?.record.error = message
    }

    /// Whether `lease` is the current run's: the token matches and the job is running. A stale
    /// write is counted.
    mutating func holds(_ lease: JobLease, now: Int64) -> Bool {
        if let job = stored(lease.id, now: now), job.token == lease.token, job.record.state == .running { return true }
        staleWrites += 1
        return false
    }

    /// Moves up to `limit` due scheduled and retrying jobs to the pending set.
    mutating func promoteDue(now: Int64, limit: Int) -> Int {
        var count = 0
        while count < limit, let due = scheduled.popMin(maxScore: now) {
            count += 1
            guard let job = stored(due.member, now: now) else { continue }
            jobs[due.member]?.record.state = .queued
            addPending(due.member, priority: job.record.priority)
        }
        if count > 0 { wakes += 1 }
        return count
    }

    /// The job holding the key `lock` would take, and its state; `nil` when the key is free
    /// (`unique_holder`).
    func uniqueHolder(_ lock: UniqueLock, now: Int64) -> (id: JobID, state: JobState?)? {
        guard let holder = uniqueHolders[lock.key] else { return nil }
        if case .until = lock.mode {
            guard let expiry = uniqueExpiry.score(of: lock.key), now < expiry else { return nil }
            return (holder, stored(holder, now: now)?.record.state)
        }
        guard let state = stored(holder, now: now)?.record.state else { return nil }
        if case .debounce = lock.mode { return state == .scheduled ? (holder, state) : nil }
        return state.isTerminal ? nil : (holder, state)
    }

    /// Releases the key of a job that finished or was deleted, if it still holds it (`unlock`).
    mutating func unlock(_ id: JobID, _ lock: UniqueLock?) {
        guard let lock, uniqueHolders[lock.key] == id else { return }
        if case .until = lock.mode { return }
        uniqueHolders[lock.key] = nil
    }

    /// A retried job takes its key back unless another live job holds it (`relock`).
    mutating func relock(_ id: JobID, _ lock: UniqueLock?, now: Int64) {
        guard let lock else { return }
        if case .until = lock.mode { return }
        if let holder = uniqueHolders[lock.key], holder != id, let state = stored(holder, now: now)?.record.state, !state.isTerminal {
            return
        }
        uniqueHolders[lock.key] = id
    }

    // MARK: Operations (the Lua library's registered functions)

    /// Jobs waiting: queued, scheduled and retrying (what a queue's cap counts).
    var waiting: Int { pending.count + scheduled.count + throttled.count }

    /// `room`: how many more jobs the queue's cap allows (`nil`: no cap); a created job takes one.
    mutating func enqueue(_ request: EnqueueRequest, now: Int64, room: inout Int?, failedRetention: Duration) -> EnqueueReceipt {
        let key = request.idempotencyKey.map { SHA256.hex($0) }
        let fingerprint = key == nil ? "" : request.fingerprint
        if let key, let existing = idempotency[key], let expiry = idempotencyExpiry.score(of: key), now < expiry {
            return EnqueueReceipt(
                id: existing.id, created: false, state: stored(existing.id, now: now)?.record.state,
                keyReused: existing.fingerprint != fingerprint)
        }
        if let lock = request.unique, let holder = uniqueHolder(lock, now: now) {
            guard case .debounce(let window) = lock.mode else {
                return EnqueueReceipt(id: holder.id, created: false, state: holder.state, duplicate: true)
            }
            let due = now + window.nanoseconds / 1_000_000
            jobs[holder.id]?.record.input = request.input
            jobs[holder.id]?.record.headers = request.headers
            jobs[holder.id]?.record.dueMilliseconds = due
            jobs[holder.id]?.expiresMilliseconds = request.expiresAfter.map { due + $0.nanoseconds / 1_000_000 }
            scheduled.insert(holder.id, score: due)
            return EnqueueReceipt(id: holder.id, created: false, state: .scheduled, debounced: true)
        }
        let id = JobID.generate(queue: request.queue)
        if let left = room {
            guard left > 0 else { return EnqueueReceipt(id: id, created: false, state: nil, refused: true) }
            room = left - 1
        }
        var due: Int64
        switch request.timing {
        case .now: due = now
        case .after(let delay): due = now + max(0, delay.nanoseconds / 1_000_000)
        case .at(let milliseconds): due = max(0, milliseconds)
        }
        if case .debounce(let window)? = request.unique?.mode { due = now + window.nanoseconds / 1_000_000 }
        let state: JobState = due > now ? .scheduled : .queued
        let expiresAfter = request.expiresAfter.map { $0.nanoseconds / 1_000_000 }
        var record = JobRecord(
            id: id, task: request.task, state: state, input: request.input, priority: request.priority,
            maxAttempts: request.maxAttempts, createdMilliseconds: now, dueMilliseconds: due)
        record.uniqueKey = request.unique?.key
        record.uniqueMode = request.unique?.mode.name
        record.limitKey = request.limitKey
        record.headers = request.headers
        jobs[id] = MemoryStoredJob(
            record: record, token: nil,
            expiresMilliseconds: expiresAfter.flatMap { $0 >= 0 ? due + $0 : nil },
            retentionMilliseconds: max(1, request.retention.nanoseconds / 1_000_000),
            failedRetentionMilliseconds: max(1, (request.failedRetention ?? failedRetention).nanoseconds / 1_000_000),
            removeAtMilliseconds: nil, unique: request.unique)
        if let lock = request.unique {
            uniqueHolders[lock.key] = id
            if case .until(let window) = lock.mode { uniqueExpiry.insert(lock.key, score: now + window.nanoseconds / 1_000_000) }
        }
        if let key {
            idempotency[key] = (id, fingerprint)
            idempotencyExpiry.insert(key, score: now + max(1, request.idempotencyTTL.nanoseconds / 1_000_000))
        }
        if state == .queued {
            addPending(id, priority: request.priority)
        } else {
            scheduled.insert(id, score: due)
        }
        return EnqueueReceipt(id: id, created: true, state: state)
    }

    mutating func claim(limit: Int, worker: String, leaseMilliseconds: Int64, now: Int64) -> [ClaimedJob] {
        _ = promoteDue(now: now, limit: 1000)
        if paused { return [] }
        if !limits.isEmpty || !throttled.isEmpty { promoteLimited(now: now) }
        var out: [ClaimedJob] = []
        var batchNumber: Int64?
        while out.count < limit, let entry = pending.popMin() {
            let number: Int64
            if let batchNumber {
                number = batchNumber
            } else {
                batch += 1
                number = batch
                batchNumber = number
            }
            let id = entry.member
            guard let job = stored(id, now: now), job.record.state == .queued else { continue }
            if job.record.attempts == 0, let expires = job.expiresMilliseconds, expires < now {
                finish(id, .expired, now: now)
                continue
            }
            // Held back by a limit: another job may run instead.
            if !limits.isEmpty && !admit(id, now: now) { continue }
            let attempt = job.record.attempts + 1
            let token = "\(worker)/\(number)/\(out.count)"
            jobs[id]?.record.state = .running
            jobs[id]?.record.attempts = attempt
            jobs[id]?.record.startedMilliseconds = now
            jobs[id]?.record.worker = worker
            jobs[id]?.token = token
            active.insert(id, score: now + leaseMilliseconds)
            if attempt == 1 { recordLatency(now - (job.record.dueMilliseconds ?? job.record.createdMilliseconds), now: now) }
            out.append(
                ClaimedJob(
                    lease: JobLease(id: id, token: token), task: job.record.task, input: job.record.input,
                    attempt: attempt, maxAttempts: job.record.maxAttempts, suspect: job.record.suspect,
                    headers: job.record.headers))
        }
        return out
    }

    mutating func heartbeat(_ leases: [JobLease], leaseMilliseconds: Int64, now: Int64) -> HeartbeatOutcome {
        let deadline = now + leaseMilliseconds
        var outcome = HeartbeatOutcome()
        for lease in leases {
            guard let job = stored(lease.id, now: now), job.token == lease.token, job.record.state == .running else {
                outcome.lost.append(lease.id)
                continue
            }
            if active.contains(lease.id) { active.insert(lease.id, score: deadline) }
            if job.record.cancelRequested { outcome.cancelRequested.append(lease.id) }
        }
        return outcome
    }

    mutating func complete(_ lease: JobLease, result: Data, now: Int64) -> Bool {
        // This very completion again (its answer was lost, the worker retried): done already.
        if let job = stored(lease.id, now: now), job.token == lease.token, job.record.state == .succeeded { return true }
        guard holds(lease, now: now) else { return false }
        jobs[lease.id]?.record.result = result
        leaveRunning(lease.id, now: now)
        finish(lease.id, .succeeded, now: now)
        return true
    }

    /// `retryDelay` `nil` fails the job for good.
    mutating func fail(
        _ lease: JobLease, message: String, retryDelay: Int64?, failedCap: Int, now: Int64
    ) -> JobState? {
        guard holds(lease, now: now), let job = jobs[lease.id] else { return nil }
        recordError(lease.id, attempt: job.record.attempts, message: message, now: now)
        leaveRunning(lease.id, now: now)
        // Cancellation was asked while it ran: the failure stops it for good.
        if job.record.cancelRequested {
            finish(lease.id, .cancelled, now: now)
            return .cancelled
        }
        if let retryDelay {
            jobs[lease.id]?.record.state = .retrying
            jobs[lease.id]?.record.dueMilliseconds = now + retryDelay
            scheduled.insert(lease.id, score: now + retryDelay)
            return .retrying
        }
        finish(lease.id, .failed, now: now)
        capFailed(failedCap)
        return .failed
    }

    mutating func crashed(
        _ lease: JobLease, message: String, maxCrashes: Int, shared: Bool, failedCap: Int, now: Int64
    ) -> JobState? {
        guard holds(lease, now: now), let job = jobs[lease.id] else { return nil }
        let charged = !shared || job.record.suspect
        let recorded = charged ? message : message + " (the process ran other jobs too: not counted; the job runs alone from now on)"
        recordError(lease.id, attempt: job.record.attempts, message: recorded, now: now)
        leaveRunning(lease.id, now: now)
        jobs[lease.id]?.token = nil
        jobs[lease.id]?.record.worker = nil
        if charged {
            jobs[lease.id]?.record.crashes += 1
        } else {
            jobs[lease.id]?.record.suspect = true
        }
        if job.record.cancelRequested {
            finish(lease.id, .cancelled, now: now)
            return .cancelled
        }
        if charged && job.record.crashes + 1 >= maxCrashes {
            finish(lease.id, .failed, now: now)
            capFailed(failedCap)
            return .failed
        }
        jobs[lease.id]?.record.attempts -= 1
        jobs[lease.id]?.record.state = .queued
        addPending(lease.id, priority: job.record.priority)
        wakes += 1
        return .queued
    }

    mutating func cancelled(_ lease: JobLease, now: Int64) -> Bool {
        guard holds(lease, now: now) else { return false }
        leaveRunning(lease.id, now: now)
        finish(lease.id, .cancelled, now: now)
        return true
    }

    mutating func cancel(_ id: JobID, now: Int64) -> JobState? {
        guard let job = stored(id, now: now) else { return nil }
        switch job.record.state {
        case .queued:
            // A job held back by a limit stays in its bucket's list, which skips it.
            pending.remove(id)
            throttled.remove(id)
        case .scheduled, .retrying:
            scheduled.remove(id)
        case .waiting:
            waitingSet.remove(id)
        case .running:
            jobs[id]?.record.cancelRequested = true
            return .running
        case .succeeded, .failed, .cancelled, .expired:
            return job.record.state
        }
        finish(id, .cancelled, now: now)
        return .cancelled
    }

    mutating func retry(_ id: JobID, now: Int64) -> JobState? {
        guard let job = stored(id, now: now) else { return nil }
        guard [.failed, .cancelled, .expired].contains(job.record.state), job.dependencyCancel == nil else { return job.record.state }
        requeueFinished([id], now: now)
        return jobs[id]?.record.state ?? .queued
    }

    mutating func retryFailed(limit: Int, now: Int64) -> Int {
        let ids = (finished[.failed]?.sortedMembers() ?? []).prefix(limit).filter { stored($0, now: now) != nil }
        requeueFinished(Array(ids), now: now)
        return ids.count
    }

    /// Deletes a finished job before its retention ends (`tern_delete`).
    mutating func delete(_ id: JobID, now: Int64) -> JobDeletion? {
        guard let job = stored(id, now: now) else { return nil }
        let state = job.record.state
        guard state.isTerminal else { return .notFinished(state) }
        jobs[id] = nil
        outcomes[id] = nil
        finished[state]?.remove(id)
        return .deleted(state)
    }

    /// Makes a scheduled or retrying job due now (`tern_promote`).
    mutating func promote(_ id: JobID, now: Int64) -> JobPromotion? {
        guard let job = stored(id, now: now) else { return nil }
        let state = job.record.state
        guard state == .scheduled || state == .retrying, scheduled.remove(id) else { return .notDelayed(state) }
        jobs[id]?.record.state = .queued
        jobs[id]?.record.dueMilliseconds = now
        addPending(id, priority: job.record.priority)
        wakes += 1
        return .promoted(from: state)
    }

    /// Deletes up to `limit` jobs in `state`, first in its set's order (`tern_purge`).
    mutating func purge(_ state: JobState, limit: Int, now: Int64) -> Int {
        let ids: [JobID]
        switch state {
        case .queued: ids = pending.sortedMembers() + throttled.sorted { $0.rawValue < $1.rawValue }
        case .scheduled, .retrying: ids = scheduled.sortedMembers()
        case .running: return 0
        case .succeeded, .failed, .cancelled, .expired: ids = finished[state]?.sortedMembers() ?? []
        case .waiting: ids = waitingSet.sortedMembers()
        }
        let gone = ids.prefix(limit).filter { jobs[$0] == nil || jobs[$0]?.record.state == state }
        for id in gone {
            if !state.isTerminal { unlock(id, jobs[id]?.unique) }
            // A finished job's dependents have its outcome already: only a live one's are told.
            if !state.isTerminal, let dependents = jobs[id]?.dependents, !dependents.isEmpty { purgedDependents.append((id, dependents)) }
            jobs[id] = nil
            outcomes[id] = nil
            pending.remove(id)
            throttled.remove(id)
            scheduled.remove(id)
            waitingSet.remove(id)
            finished[state]?.remove(id)
        }
        return gone.count
    }

    /// Puts finished jobs back in the queue as new, keeping their error history.
    private mutating func requeueFinished(_ ids: [JobID], now: Int64) {
        for id in ids {
            guard let job = jobs[id] else { continue }
            finished[job.record.state]?.remove(id)
            var record = job.record
            record.state = .queued
            record.attempts = 0
            record.dueMilliseconds = now
            record.finishedMilliseconds = nil
            record.result = nil
            record.error = nil
            record.cancelRequested = false
            record.worker = nil
            record.progress = nil
            record.progressMessage = nil
            record.startedMilliseconds = nil
            let waitsAgain = job.dependencies != nil && !job.released
            if waitsAgain { record.state = .waiting }
            jobs[id] = MemoryStoredJob(
                record: record, token: nil, expiresMilliseconds: nil, retentionMilliseconds: job.retentionMilliseconds,
                failedRetentionMilliseconds: job.failedRetentionMilliseconds, removeAtMilliseconds: nil, unique: job.unique,
                dependencies: job.dependencies, dependents: job.dependents, released: job.released)
            relock(id, job.unique, now: now)
            if !job.dependents.isEmpty { relay.append(id) }
            if waitsAgain {
                // Cancelled before its dependencies released it: it waits for them again.
                waitingSet.insert(id, score: now)
                _ = settle(id, now: now, scan: true)
                continue
            }
            addPending(id, priority: record.priority)
        }
        if !ids.isEmpty { wakes += 1 }
    }

    mutating func release(_ leases: [JobLease], now: Int64) {
        var released = 0
        for lease in leases {
            guard holds(lease, now: now), let job = jobs[lease.id] else { continue }
            leaveRunning(lease.id, now: now)
            if job.record.cancelRequested {
                // Cancellation was asked while it ran: released means stopped, so it is cancelled.
                finish(lease.id, .cancelled, now: now)
                continue
            }
            jobs[lease.id]?.record.attempts -= 1
            jobs[lease.id]?.record.state = .queued
            jobs[lease.id]?.record.worker = nil
            jobs[lease.id]?.token = nil
            addPending(lease.id, priority: job.record.priority)
            released += 1
        }
        if released > 0 { wakes += 1 }
    }

    mutating func progress(_ lease: JobLease, value: Double, message: String?, now: Int64) -> Bool {
        guard holds(lease, now: now) else { return false }
        jobs[lease.id]?.record.progress = value
        jobs[lease.id]?.record.progressMessage = message.flatMap { $0.isEmpty ? nil : $0 }
        return true
    }

    mutating func reap(limit: Int, failedCap: Int, now: Int64) -> ReapReport {
        var report = ReapReport()
        report.promoted = promoteDue(now: now, limit: limit)
        if !limits.isEmpty || !throttled.isEmpty { promoteLimited(now: now) }
        if !limitBuckets.isEmpty { dropIdleBuckets(now: now) }
        var examined = 0
        while examined < limit, let expired = active.popMin(maxScore: now) {
            examined += 1
            let id = expired.member
            // A lost lease gives its limit slots back.
            leaveRunning(id, now: now)
            guard let job = stored(id, now: now), job.record.state == .running else {
                report.repaired += 1
                continue
            }
            lostLeases += 1
            jobs[id]?.record.lostLeases += 1
            recordError(id, attempt: job.record.attempts, message: Self.leaseExpiredMessage, now: now)
            jobs[id]?.token = nil
            if job.record.cancelRequested {
                finish(id, .cancelled, now: now)
            } else if job.record.attempts >= job.record.maxAttempts {
                finish(id, .failed, now: now)
                capFailed(failedCap)
                report.failed += 1
            } else {
                jobs[id]?.record.state = .queued
                addPending(id, priority: job.record.priority)
                report.requeued += 1
            }
        }
        if report.requeued > 0 { wakes += 1 }
        for state in [JobState.succeeded, .failed, .cancelled, .expired] {
            var dropped = 0
            while dropped < limit, let entry = finished[state]?.popMin(maxScore: now) {
                jobs.removeValue(forKey: entry.member)
                outcomes.removeValue(forKey: entry.member)
                dropped += 1
            }
            report.dropped = max(report.dropped, dropped)
        }
        while let key = idempotencyExpiry.popMin(maxScore: now) { idempotency.removeValue(forKey: key.member) }
        while let key = uniqueExpiry.popMin(maxScore: now) { uniqueHolders.removeValue(forKey: key.member) }
        return report
    }

    // MARK: Reads

    func list(_ state: JobState, offset: Int, limit: Int, now: Int64) -> JobPage {
        let set: MemorySortedSet<JobID>?
        switch state {
        case .queued: set = pending
        case .scheduled, .retrying: set = scheduled
        case .running: set = active
        case .succeeded, .failed, .cancelled, .expired: set = finished[state]
        case .waiting: set = waitingSet
        }
        // Queued jobs held back by a limit come after the others, oldest first.
        let held = state == .queued ? throttled.sorted { $0.rawValue < $1.rawValue } : []
        let page = ((set?.sortedMembers() ?? []) + held).dropFirst(offset).prefix(limit)
        let records = page.compactMap { stored($0, now: now)?.record }.filter { $0.state == state }
        return JobPage(jobs: records, nextCursor: page.count == limit ? String(offset + limit) : nil)
    }

    mutating func stats(_ name: QueueName, now: Int64) -> QueueStats {
        var stats = QueueStats(queue: name)
        stats.pending = pending.count
        stats.scheduled = scheduled.count
        stats.running = active.count
        stats.throttled = throttled.count
        stats.succeeded = finished[.succeeded]?.count ?? 0
        stats.failed = finished[.failed]?.count ?? 0
        stats.cancelled = finished[.cancelled]?.count ?? 0
        stats.expired = finished[.expired]?.count ?? 0
        stats.waiting = waitingSet.count
        stats.paused = paused
        stats.staleWrites = staleWrites
        stats.lostLeases = lostLeases
        if let head = pending.peekMin(), let due = stored(head.member, now: now)?.record.dueMilliseconds {
            stats.oldestPendingMilliseconds = max(0, now - due)
        }
        return stats
    }
}
