import Foundation
import TernCore

/// Dependencies in one memory queue: the counterparts of `tern_wait`, `tern_resolve` and the
/// relay's reads in ``JobFunctions``, with the same semantics.
extension MemoryQueueState {
    /// The outcome a job gives its dependents now (`tern_relay_take`).
    func outcome(of id: JobID, now: Int64) -> DependencyOutcome {
        guard let job = stored(id, now: now) else { return .error("\(id) gone") }
        return DependencyOutcome.of(
            id: id, state: job.record.state, result: job.record.result.map { Array($0) }, error: job.record.error)
    }

    /// Registers `dependent` (its dependency number `index`) with job `id` unless it has succeeded
    /// (`tern_depend`). Returns `nil` when registered, else the finished job's outcome.
    mutating func depend(_ id: JobID, dependent: JobID, index: Int, now: Int64) throws -> DependencyOutcome? {
        guard let job = stored(id, now: now) else { return .error("\(id) gone") }
        if job.record.state.isTerminal {
            // Failed, cancelled or expired: a retry of it resumes its dependents, this one too.
            if job.record.state != .succeeded && job.dependents.count < JobDependencies.maxDependents {
                jobs[id]?.dependents.append((dependent, index))
                jobs[id]?.record.dependents.append(dependent)
            }
            return outcome(of: id, now: now)
        }
        guard job.dependents.count < JobDependencies.maxDependents else { throw JobDependencyError.tooManyDependents(id) }
        jobs[id]?.dependents.append((dependent, index))
        jobs[id]?.record.dependents.append(dependent)
        return nil
    }

    /// Creates a job that waits for its dependencies, with the outcomes known already (`tern_wait`).
    mutating func createWaiting(
        _ request: EnqueueRequest, id: JobID, known: [(Int, DependencyOutcome)], failedRetention: Duration, now: Int64
    ) -> JobState {
        let dependencies = request.dependencies!
        var record = JobRecord(
            id: id, task: dependencies.join ? JobDependencies.joinTask : request.task, state: .waiting, input: request.input,
            priority: request.priority, maxAttempts: request.maxAttempts, createdMilliseconds: now, dueMilliseconds: nil)
        record.dependsOn = dependencies.parents
        record.workflow = dependencies.workflow
        record.isJoin = dependencies.join
        record.inputFrom = dependencies.input.rawValue
        record.headers = request.headers
        record.limitKey = request.limitKey
        jobs[id] = MemoryStoredJob(
            record: record, token: nil, expiresMilliseconds: nil,
            retentionMilliseconds: max(1, request.retention.nanoseconds / 1_000_000),
            failedRetentionMilliseconds: max(1, (request.failedRetention ?? failedRetention).nanoseconds / 1_000_000),
            removeAtMilliseconds: nil, dependencies: dependencies)
        for (index, outcome) in known where outcomes[id]?[index] == nil { outcomes[id, default: [:]][index] = outcome }
        waitingSet.insert(id, score: now)
        return settle(id, now: now, scan: true)
    }

    /// Makes `id`'s record of dependency `index` match that dependency's current outcome
    /// (`tern_resolve`). Returns whether the job finished here and has dependents of its own.
    mutating func resolve(_ id: JobID, index: Int, outcome: DependencyOutcome, now: Int64) -> Bool {
        let old = outcomes[id]?[index]
        let new: DependencyOutcome? = outcome == .reopened ? nil : outcome
        guard old != new else { return false }
        if old != nil {
            outcomes[id]?[index] = nil
            reopen(id, index: index, now: now)
        }
        guard let new else {
            if old != nil, jobs[id] != nil { _ = settle(id, now: now, scan: true) }
            return false
        }
        outcomes[id, default: [:]][index] = new
        guard jobs[id] != nil else { return false }
        var failure: (Int, String)?
        if case .error(let message) = new { failure = (index, message) }
        // After a replaced outcome, another dependency's failure may be what decides.
        let state = settle(id, now: now, failure: failure, scan: old != nil)
        return state != .waiting && state != .queued && !(jobs[id]?.dependents.isEmpty ?? true)
    }

    /// Cancels, releases or leaves waiting a job after an outcome changed (`settle`).
    mutating func settle(_ id: JobID, now: Int64, failure: (index: Int, message: String)? = nil, scan: Bool = false) -> JobState {
        guard let job = jobs[id], let dependencies = job.dependencies else { return jobs[id]?.record.state ?? .cancelled }
        guard job.record.state == .waiting else { return job.record.state }
        let known = outcomes[id] ?? [:]
        var failure = failure
        // All known, or asked: none may have failed (one recorded while the job was cancelled and
        // then reopened would not have been seen).
        if scan || known.count >= dependencies.parents.count, failure == nil, dependencies.onFailure == .cancel {
            for (index, outcome) in known.sorted(by: { $0.key < $1.key }) {
                if case .error(let message) = outcome { failure = (index, message); break }
            }
        }
        if let failure, dependencies.onFailure == .cancel {
            waitingSet.remove(id)
            jobs[id]?.dependencyCancel = failure.index
            recordError(id, attempt: 0, message: "dependency " + failure.message, now: now)
            finish(id, .cancelled, now: now)
            return .cancelled
        }
        guard known.count >= dependencies.parents.count else { return .waiting }
        let input = Self.madeInput(dependencies, given: job.record.input, outcomes: known)
        waitingSet.remove(id)
        if dependencies.join {
            jobs[id]?.record.result = input
            finish(id, .succeeded, now: now)
            return .succeeded
        }
        jobs[id]?.record.input = input
        jobs[id]?.record.state = .queued
        jobs[id]?.record.dueMilliseconds = now
        jobs[id]?.released = true
        addPending(id, priority: job.record.priority)
        wakes += 1
        return .queued
    }

    /// A job cancelled because of dependency `index` waits again (`reopen`).
    private mutating func reopen(_ id: JobID, index: Int, now: Int64) {
        // One past its retention is gone (to readers, and to a retry of its own): it stays so.
        guard let job = stored(id, now: now), job.record.state == .cancelled, job.dependencyCancel == index else { return }
        finished[.cancelled]?.remove(id)
        jobs[id]?.dependencyCancel = nil
        jobs[id]?.record.state = .waiting
        jobs[id]?.record.finishedMilliseconds = nil
        jobs[id]?.record.error = nil
        jobs[id]?.record.cancelRequested = false
        jobs[id]?.removeAtMilliseconds = nil
        waitingSet.insert(id, score: now)
        if !job.dependents.isEmpty { relay.append(id) }
    }

    /// The input of a job whose dependencies all finished (`made_input`).
    static func madeInput(_ dependencies: JobDependencies, given: Data, outcomes: [Int: DependencyOutcome]) -> Data {
        let count = dependencies.parents.count
        func output(_ index: Int) -> [UInt8]? {
            if case .output(let bytes)? = outcomes[index] { return bytes }
            return nil
        }
        switch dependencies.input {
        case .given: return given
        case .output: return Data(output(0) ?? Array("null".utf8))
        case .summary:
            let succeeded = (0..<count).filter { output($0) != nil }.count
            return Data(#"{"total":\#(count),"succeeded":\#(succeeded),"failed":\#(count - succeeded)}"#.utf8)
        case .outputs, .outcomes:
            var bytes: [UInt8] = [UInt8(ascii: "[")]
            for index in 0..<count {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                switch (dependencies.input, outcomes[index]) {
                case (.outputs, .output(let value)?): bytes += value
                case (.outputs, _): bytes += Array("null".utf8)
                case (_, .output(let value)?): bytes += Array(#"{"ok":"#.utf8) + value + [UInt8(ascii: "}")]
                case (_, .error(let message)?):
                    let quoted = (try? JSONEncoder().encode(message)).map(Array.init) ?? Array("\"\"".utf8)
                    bytes += Array(#"{"error":"#.utf8) + quoted + [UInt8(ascii: "}")]
                default: bytes += Array("null".utf8)
                }
            }
            bytes.append(UInt8(ascii: "]"))
            return Data(bytes)
        }
    }
}

extension MemoryBrokerState {
    /// Creates jobs with dependencies: registers each with its parents, then creates it waiting.
    mutating func enqueueWaiting(_ request: EnqueueRequest, now: Int64, failedRetention: Duration) throws -> EnqueueReceipt {
        let parents = request.dependencies!.parents
        guard (1...JobDependencies.maxParents).contains(parents.count) else { throw JobDependencyError.parentCount(parents.count) }
        let id = JobID.generate(queue: request.queue)
        var known: [(Int, DependencyOutcome)] = []
        for (index, parent) in parents.enumerated() {
            let outcome = try update(parent.queue) { try $0.depend(parent, dependent: id, index: index, now: now) }
            if let outcome { known.append((index, outcome)) }
        }
        used.insert(request.queue)
        let state = update(request.queue) { $0.createWaiting(request, id: id, known: known, failedRetention: failedRetention, now: now) }
        return EnqueueReceipt(id: id, created: true, state: state)
    }

    /// Tells dependents of every change in the queues' relays, until none is left (each finished
    /// dependent with dependents of its own enters its queue's relay in turn).
    mutating func drainRelays(now: Int64) {
        while let name = queues.first(where: { !$0.value.relay.isEmpty || !$0.value.purgedDependents.isEmpty })?.key {
            let entries = update(name) { queue -> [(JobID, [(id: JobID, index: Int)], DependencyOutcome)] in
                let ids = queue.relay
                let purged = queue.purgedDependents
                queue.relay = []
                queue.purgedDependents = []
                return ids.compactMap { id in
                    guard let job = queue.jobs[id] else { return nil }
                    return (id, job.dependents, queue.outcome(of: id, now: now))
                } + purged.map { ($0.id, $0.dependents, .error("\($0.id) gone")) }
            }
            for (_, dependents, outcome) in entries {
                for dependent in dependents {
                    _ = update(dependent.id.queue) { $0.resolve(dependent.id, index: dependent.index, outcome: outcome, now: now) }
                }
            }
        }
    }
}
