import TernCore

/// Carries jobs' changes to the jobs that depend on them, across queues (and so across Cluster
/// slots).
///
/// A job's dependents on its own queue learn its outcome in the atomic step that finishes it. For
/// dependents on other queues, the job enters its queue's `relay` set in that same step (and when it
/// is retried). Draining the relay takes entries with their job's current outcome
/// (`tern_relay_take`), makes each dependent's record of that outcome match it on the dependent's
/// own queue (`tern_resolve`: idempotent, so an entry resolved twice changes nothing), then removes
/// the entries that did not change meanwhile (`tern_relay_done`). Whoever changed the job drains at
/// once; every reaper pass drains what is older than a second, so a process that dies in between
/// only delays its dependents.
struct DependencyRelay {
    let client: RedisClient
    let keys: RedisJobKeys
    /// The most dependents' updates sent in one Function call.
    static let maxUpdatesPerCall = 1000

    /// Drains `queue`'s relay: the entries of `ids`, else up to `limit` entries at least `minAge`
    /// old; then, for up to 16 rounds, the entries of dependents that finished in turn. Returns how
    /// many entries were drained.
    @discardableResult
    func process(_ queue: QueueName, ids: [JobID]? = nil, minAge: Duration = .zero, limit: Int = 100) async throws -> Int {
        var round: [(queue: QueueName, ids: [JobID]?)] = [(queue, ids)]
        var drained = 0
        for _ in 0..<16 where !round.isEmpty {
            let takes = round.map { queue, ids in
                var command = RedisCommand(
                    "FCALL", "tern_relay_take", 1, keys.base(queue), max(1, limit), Int(minAge.nanoseconds / 1_000_000))
                for id in ids ?? [] { command.append(id.rawValue) }
                return command
            }
            var done: [QueueName: [(String, String)]] = [:]
            var updates: [QueueName: [(JobID, String, DependencyOutcome)]] = [:]
            for (entry, reply) in zip(round, try await RedisJobBroker.eachLoadingFunctions(takes, client: client)) {
                for row in try reply.get().throwingServerError().array ?? [] {
                    guard let fields = row.array, fields.count == 5, let id = fields[0].string.flatMap(JobID.init),
                        let score = fields[1].string, let kind = fields[2].string
                    else { throw RedisError.protocolError("unexpected reply from tern_relay_take") }
                    let payload = fields[3].bytes ?? []
                    let outcome: DependencyOutcome =
                        switch kind {
                        case "o": .output(payload)
                        case "reopen": .reopened
                        default: .error(String(decoding: payload, as: UTF8.self))
                        }
                    for line in (fields[4].string ?? "").split(separator: "\n") {
                        let parts = line.split(separator: " ")
                        guard parts.count == 2, let dependent = JobID(String(parts[0])) else { continue }
                        updates[dependent.queue, default: []].append((dependent, String(parts[1]), outcome))
                    }
                    done[entry.queue, default: []].append((id.rawValue, score))
                    drained += 1
                }
            }
            let next = try await resolve(updates)
            var finishing: [RedisCommand] = []
            for (queue, pairs) in done {
                var command = RedisCommand("FCALL", "tern_relay_done", 1, keys.base(queue))
                for (id, score) in pairs {
                    command.append(id)
                    command.append(score)
                }
                finishing.append(command)
            }
            for reply in try await RedisJobBroker.eachLoadingFunctions(finishing, client: client) {
                try reply.get().throwingServerError()
            }
            round = Dictionary(grouping: next, by: \.queue).map { ($0.key, $0.value) }
        }
        return drained
    }

    /// Sends each dependent's update to its queue; returns the dependents that finished there and
    /// have dependents of their own.
    private func resolve(_ updates: [QueueName: [(JobID, String, DependencyOutcome)]]) async throws -> [JobID] {
        var commands: [RedisCommand] = []
        for (queue, entries) in updates {
            for start in stride(from: 0, to: entries.count, by: Self.maxUpdatesPerCall) {
                var command = RedisCommand("FCALL", "tern_resolve", 1, keys.base(queue))
                for (dependent, index, outcome) in entries[start..<min(start + Self.maxUpdatesPerCall, entries.count)] {
                    command.append(dependent.rawValue)
                    command.append(index)
                    command.append(outcome.kind)
                    command.append(outcome.payload)
                }
                commands.append(command)
            }
        }
        var next: [JobID] = []
        for reply in try await RedisJobBroker.eachLoadingFunctions(commands, client: client) {
            next += (try reply.get().throwingServerError().array ?? []).compactMap { $0.string.flatMap(JobID.init) }
        }
        return next
    }
}

extension RedisJobBroker {
    /// Drains the relay of the queue of a job that changed, at once: its dependents on other
    /// queues, and those of its dependents that changed in turn. A failure is left to the
    /// reaper's pass.
    func relay(_ id: JobID) async {
        _ = try? await DependencyRelay(client: client, keys: keys).process(id.queue)
    }

    /// Enqueues requests of which some have dependencies: the others first, as usual, then those.
    func enqueueMixed(_ requests: [EnqueueRequest]) async throws -> [EnqueueReceipt] {
        let plain = requests.indices.filter { requests[$0].dependencies == nil }
        let waiting = requests.indices.filter { requests[$0].dependencies != nil }
        var receipts = [EnqueueReceipt?](repeating: nil, count: requests.count)
        if !plain.isEmpty {
            for (index, receipt) in zip(plain, try await enqueue(plain.map { requests[$0] })) { receipts[index] = receipt }
        }
        for (index, receipt) in zip(waiting, try await enqueueWaiting(waiting.map { requests[$0] })) { receipts[index] = receipt }
        return receipts.map { $0! }
    }

    /// Creates jobs that wait for their dependencies. Each is first registered with each of its
    /// parents that has not finished (`tern_depend`, on the parent's queue), so that the parent's
    /// relay will reach it; then it is created (`tern_wait`, on its own queue) with the outcomes of
    /// the parents that had finished already. A parent that finishes in between relays to a job not
    /// yet created: its outcome is kept for it, and `tern_wait` reads it.
    private func enqueueWaiting(_ requests: [EnqueueRequest]) async throws -> [EnqueueReceipt] {
        let ids = requests.map { JobID.generate(queue: $0.queue) }
        var pairs: [QueueName: [(job: Int, index: Int, parent: JobID)]] = [:]
        for (job, request) in requests.enumerated() {
            let parents = request.dependencies!.parents
            guard (1...JobDependencies.maxParents).contains(parents.count) else {
                throw JobDependencyError.parentCount(parents.count)
            }
            for (index, parent) in parents.enumerated() { pairs[parent.queue, default: []].append((job, index, parent)) }
        }
        var known = [[(index: Int, outcome: DependencyOutcome)]](repeating: [], count: requests.count)
        var commands: [RedisCommand] = []
        var sent: [[(job: Int, index: Int, parent: JobID)]] = []
        for (queue, entries) in pairs {
            for start in stride(from: 0, to: entries.count, by: Self.maxJobsPerCall) {
                let chunk = Array(entries[start..<min(start + Self.maxJobsPerCall, entries.count)])
                var command = RedisCommand("FCALL", "tern_depend", 1, keys.base(queue))
                for entry in chunk {
                    command.append(entry.parent.rawValue)
                    command.append("\(ids[entry.job].rawValue) \(entry.index)")
                }
                commands.append(command)
                sent.append(chunk)
            }
        }
        for (chunk, reply) in zip(sent, try await Self.eachLoadingFunctions(commands, client: client)) {
            let rows = try reply.get().throwingServerError().array ?? []
            guard rows.count == chunk.count else { throw RedisError.protocolError("unexpected reply from tern_depend") }
            for (entry, row) in zip(chunk, rows) {
                let fields = row.array ?? []
                switch fields.first?.string {
                case "live": break
                case "full": throw JobDependencyError.tooManyDependents(entry.parent)
                case "o": known[entry.job].append((entry.index, .output(fields.count > 1 ? fields[1].bytes ?? [] : [])))
                default:
                    let message = fields.count > 1 ? fields[1].string ?? "" : "\(entry.parent) gone"
                    known[entry.job].append((entry.index, .error(message)))
                }
            }
        }
        return try await createWaiting(requests, ids: ids, known: known)
    }

    /// `tern_wait` per queue, with each job's known outcomes.
    private func createWaiting(
        _ requests: [EnqueueRequest], ids: [JobID], known: [[(index: Int, outcome: DependencyOutcome)]]
    ) async throws -> [EnqueueReceipt] {
        let byQueue = Dictionary(grouping: requests.indices, by: { requests[$0].queue })
        var commands: [RedisCommand] = []
        let queues = Array(byQueue.keys)
        commands.append(RedisCommand("SADD", arguments: [keys.queues] + queues.map(\.rawValue)))
        for queue in queues {
            var command = RedisCommand("FCALL", "tern_wait", 1, keys.base(queue))
            for job in byQueue[queue]! {
                let request = requests[job]
                let dependencies = request.dependencies!
                command.append(ids[job].rawValue)
                command.append(dependencies.join ? JobDependencies.joinTask : request.task)
                command.append(request.input)
                command.append(request.priority)
                command.append(request.maxAttempts)
                command.append(max(1, Int(request.retention.nanoseconds / 1_000_000)))
                command.append(max(1, Int((request.failedRetention ?? failedRetention).nanoseconds / 1_000_000)))
                command.append(dependencies.parents.map(\.rawValue).joined(separator: " "))
                command.append(dependencies.input.rawValue)
                command.append(dependencies.onFailure.rawValue)
                command.append(dependencies.join ? "1" : "0")
                command.append(dependencies.workflow ?? "")
                command.append(request.storedHeaders)
                command.append(request.limitKey ?? "")
                command.append(known[job].count)
                for (index, outcome) in known[job] {
                    command.append(index)
                    command.append(outcome.kind)
                    command.append(outcome.payload)
                }
            }
            commands.append(command)
        }
        let replies = try await Self.eachLoadingFunctions(commands, client: client)
        var states: [JobID: JobState] = [:]
        for reply in replies.dropFirst() {
            for row in try reply.get().throwingServerError().array ?? [] {
                guard let fields = row.array, fields.count == 2, let id = fields[0].string.flatMap(JobID.init) else {
                    throw RedisError.protocolError("unexpected reply from tern_wait")
                }
                states[id] = fields[1].string.flatMap(JobState.init(rawValue:))
            }
        }
        // A job cancelled or joined at once (its parents had finished) has its own dependents'
        // relay to drain later; it has none yet, being new.
        return ids.map { EnqueueReceipt(id: $0, created: true, state: states[$0]) }
    }
}

/// Dependencies a broker refuses.
public enum JobDependencyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A job must depend on 1 to ``JobDependencies/maxParents`` jobs.
    case parentCount(Int)
    /// The job already has ``JobDependencies/maxDependents`` dependents.
    case tooManyDependents(JobID)

    public var description: String {
        switch self {
        case .parentCount(let count): "a job depends on 1 to \(JobDependencies.maxParents) jobs, not \(count)"
        case .tooManyDependents(let id): "job \(id) already has \(JobDependencies.maxDependents) dependents"
        }
    }
}
