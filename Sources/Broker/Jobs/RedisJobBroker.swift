import Foundation
import Synchronization
import TernCore

/// The production ``JobBroker``: every state change is one Redis Function call (see
/// ``JobFunctions``).
///
/// ```swift
/// let broker = try RedisJobBroker(client: client)
/// try await broker.prepare()
/// let receipts = try await broker.enqueue([request])
/// ```
public final class RedisJobBroker: JobBroker {
    /// The Redis client.
    public let client: RedisClient
    /// The key layout.
    public let keys: RedisJobKeys
    /// The most failed jobs kept per queue.
    public let failedCap: Int
    /// How long a failed job is kept when its task sets no ``TaskOptions/failedRetention``.
    public let failedRetention: Duration
    /// The caps on waiting jobs per queue, checked at enqueue.
    public let caps: QueueCaps
    /// The most jobs one Function call handles; larger requests are split.
    static let maxJobsPerCall = 1000
    private let enqueues: Coalescer<[EnqueueRequest], [EnqueueReceipt]>
    private let completions: Coalescer<(JobLease, Data), Bool>
    private let knownQueues = KnownQueues()

    /// Creates a broker on `client` with keys under `prefix`.
    public init(
        client: RedisClient, prefix: String = RedisJobKeys.defaultPrefix, failedCap: Int = JobLimits.defaultFailedCap,
        failedRetention: Duration = JobLimits.defaultFailedRetention, caps: QueueCaps = QueueCaps()
    ) throws {
        let keys = try RedisJobKeys(prefix: prefix)
        self.client = client
        self.keys = keys
        self.failedCap = failedCap
        self.failedRetention = failedRetention
        self.caps = caps
        let knownQueues = self.knownQueues
        enqueues = Coalescer(maxBatch: 64) { batches in
            do {
                let receipts = try await Self.enqueueNow(
                    batches.flatMap { $0 }, client: client, keys: keys, known: knownQueues, caps: caps, failedRetention: failedRetention)
                var offset = 0
                return batches.map { batch in
                    defer { offset += batch.count }
                    return Result { try receipts[offset..<(offset + batch.count)].map { try $0.get() } }
                }
            } catch {
                return batches.map { _ in .failure(error) }
            }
        }
        completions = Coalescer(maxBatch: Self.maxJobsPerCall) { items in
            await Self.completeNow(items, client: client, keys: keys)
        }
    }

    /// Loads the Functions library if Redis lacks this version. Call once at start-up; calls also
    /// load it by themselves if Redis lost it.
    public func prepare() async throws {
        try await client.load(JobFunctions.library)
    }

    func call(_ function: String, _ queue: QueueName, _ arguments: [any RedisArgument]) async throws -> RedisValue {
        try await client.call(JobFunctions.library, function, keys: [keys.base(queue)], arguments: arguments)
    }

    /// Enqueues jobs. Concurrent calls are merged into one Function call per queue (see
    /// ``Coalescer``), and large requests are split into calls of at most 1,000 jobs.
    public func enqueue(_ requests: [EnqueueRequest]) async throws -> [EnqueueReceipt] {
        guard !requests.isEmpty else { return [] }
        if requests.contains(where: { $0.dependencies != nil }) { return try await enqueueMixed(requests) }
        if requests.count > Self.maxJobsPerCall {
            return try await Self.enqueueNow(
                requests, client: client, keys: keys, known: knownQueues, caps: caps, failedRetention: failedRetention
            ).map { try $0.get() }
        }
        return try await enqueues.submit(requests)
    }

    private static func enqueueNow(
        _ requests: [EnqueueRequest], client: RedisClient, keys: RedisJobKeys, known: KnownQueues, caps: QueueCaps,
        failedRetention: Duration
    ) async throws -> [Result<EnqueueReceipt, any Error>] {
        let ids = requests.map { JobID.generate(queue: $0.queue) }
        let decided = try await reserveKeys(requests, ids: ids, client: client, keys: keys)
        var order: [QueueName] = []
        var groups: [QueueName: [Int]] = [:]
        for (index, request) in requests.enumerated() where decided[index] == nil {
            if groups[request.queue] == nil { order.append(request.queue) }
            groups[request.queue, default: []].append(index)
        }
        guard !order.isEmpty else { return decided.map { $0! } }
        let newQueues = known.unknown(order)
        var commands: [RedisCommand] = []
        if !newQueues.isEmpty {
            commands.append(RedisCommand("SADD", arguments: [keys.queues] + newQueues.map { $0.rawValue }))
        }
        var calls: [(queue: QueueName, indices: ArraySlice<Int>)] = []
        for queue in order {
            let indices = groups[queue]!
            for start in stride(from: 0, to: indices.count, by: maxJobsPerCall) {
                calls.append((queue, indices[start..<min(start + maxJobsPerCall, indices.count)]))
            }
        }
        for (queue, indices) in calls {
            var command = RedisCommand("FCALL", "tern_enqueue", 1, keys.base(queue))
            command.append(caps.cap(queue) ?? -1)
            for index in indices {
                let request = requests[index]
                command.append(ids[index].rawValue)
                command.append(request.task)
                command.append(request.input)
                command.append(request.priority)
                command.append(request.maxAttempts)
                switch request.timing {
                case .now:
                    command.append(-1)
                    command.append(0)
                case .after(let delay):
                    command.append(-2)
                    command.append(Int(max(0, delay.nanoseconds / 1_000_000)))
                case .at(let milliseconds):
                    command.append(Int(max(0, milliseconds)))
                    command.append(0)
                }
                command.append(request.expiresAfter.map { Int($0.nanoseconds / 1_000_000) } ?? -1)
                command.append(Int(request.retention.nanoseconds / 1_000_000))
                command.append(request.idempotencyKey.map { SHA256.hex($0) } ?? "")
                command.append(Int(request.idempotencyTTL.nanoseconds / 1_000_000))
                command.append(request.idempotencyKey == nil ? "" : request.fingerprint)
                command.append(Int((request.failedRetention ?? failedRetention).nanoseconds / 1_000_000))
                command.append(request.unique?.stored ?? "")
                command.append(Int(max(1, request.unique?.mode.windowMilliseconds ?? 1)))
                command.append(request.storedHeaders)
                command.append(request.limitKey ?? "")
            }
            commands.append(command)
        }
        // Each command has its own outcome: on a cluster a node that is down fails only its queues.
        let replies = try await eachLoadingFunctions(commands, client: client)
        // The set of queue names is a directory, not part of the job: its failure fails no enqueue.
        if !newQueues.isEmpty, case .success(let reply) = replies[0], !reply.isError { known.add(newQueues) }
        var receipts = decided.map { $0 ?? .failure(RedisError.protocolError("no reply from tern_enqueue")) }
        for (position, call) in calls.enumerated() {
            // Each call stands alone: one queue's error (OOM, say) fails only that queue's jobs.
            do {
                let rows = try replies[position + (newQueues.isEmpty ? 0 : 1)].get().throwingServerError().array ?? []
                guard rows.count == call.indices.count else {
                    throw RedisError.protocolError("tern_enqueue returned \(rows.count) rows for \(call.indices.count) jobs")
                }
                for (row, index) in zip(rows, call.indices) {
                    guard let fields = row.array, fields.count == 3, let id = fields[0].string.flatMap(JobID.init) else {
                        throw RedisError.protocolError("unexpected reply from tern_enqueue")
                    }
                    receipts[index] = .success(
                        EnqueueReceipt(
                            id: id, created: fields[1].int == 1, state: fields[2].string.flatMap(JobState.init(rawValue:)),
                            refused: fields[1].int == 2, keyReused: fields[1].int == 3, duplicate: fields[1].int == 4,
                            debounced: fields[1].int == 5))
                }
            } catch {
                for index in call.indices { receipts[index] = .failure(error) }
            }
        }
        return receipts
    }

    /// Reserves each idempotency key for its request's queue (`SET <prefix>:idemq:<hash> <id> NX
    /// GET`, one round trip for all keyed requests, none without keys): a key belongs to the queue
    /// of the first job made with it, so the same key on another queue is refused instead of making
    /// a second job there. Returns the receipts decided here: the key held on another queue, or a
    /// reservation that failed; `nil` where the queue's Function decides.
    private static func reserveKeys(
        _ requests: [EnqueueRequest], ids: [JobID], client: RedisClient, keys: RedisJobKeys
    ) async throws -> [Result<EnqueueReceipt, any Error>?] {
        var decided = [Result<EnqueueReceipt, any Error>?](repeating: nil, count: requests.count)
        let keyed = requests.indices.filter { requests[$0].idempotencyKey != nil }
        guard !keyed.isEmpty else { return decided }
        let commands = keyed.map { index in
            let request = requests[index]
            return RedisCommand(
                "SET", keys.idempotencyQueue(SHA256.hex(request.idempotencyKey!)), ids[index].rawValue, "NX", "GET", "PX",
                max(1, Int(request.idempotencyTTL.nanoseconds / 1_000_000)))
        }
        let replies = try await client.pipeline(commands)
        var elsewhere: [(index: Int, reserved: JobID)] = []
        for (index, reply) in zip(keyed, replies) {
            if case .error(let error) = reply {
                decided[index] = .failure(RedisError.server(error))
            } else if let held = reply.string.flatMap(JobID.init), held.queue != requests[index].queue {
                elsewhere.append((index, held))
            }
        }
        guard !elsewhere.isEmpty else { return decided }
        // The reserving request's id names the job unless a concurrent twin's call made it first:
        // the key's queue says which job it holds.
        let lookups = elsewhere.map { entry in
            RedisCommand(
                "GET", keys.base(entry.reserved.queue) + QueueItemKey.idempotency.rawValue + SHA256.hex(requests[entry.index].idempotencyKey!))
        }
        let held = try await client.pipeline(lookups)
        for (entry, reply) in zip(elsewhere, held) {
            let id = reply.string.flatMap { $0.split(separator: " ").first.flatMap { JobID(String($0)) } } ?? entry.reserved
            decided[entry.index] = .success(EnqueueReceipt(id: id, created: false, state: nil, keyReused: true))
        }
        return decided
    }

    /// Sends a pipeline; if Redis lost the Functions library, loads it and sends again.
    private func pipelineLoadingFunctions(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        try await Self.pipelineLoadingFunctions(commands, client: client)
    }

    private static func pipelineLoadingFunctions(_ commands: [RedisCommand], client: RedisClient) async throws -> [RedisValue] {
        try await eachLoadingFunctions(commands, client: client).map { try $0.get() }
    }

    /// Sends `commands` in one pipeline (on a cluster, one per node, each command with its own
    /// outcome); the commands answered `Function not found` (a Redis, or a cluster node, that lost
    /// the library) go again once the library is loaded.
    static func eachLoadingFunctions(
        _ commands: [RedisCommand], client: RedisClient
    ) async throws -> [Result<RedisValue, any Error>] {
        var results = try await client.pipelineEach(commands)
        let missing = results.indices.filter {
            if case .success(.error(let error)) = results[$0] { return RedisClient.isMissingFunction(error) }
            return false
        }
        guard !missing.isEmpty else { return results }
        try await client.load(JobFunctions.library)
        for (index, result) in zip(missing, try await client.pipelineEach(missing.map { commands[$0] })) {
            results[index] = result
        }
        return results
    }

    public func claim(queue: QueueName, limit: Int, worker: String, lease: Duration) async throws -> [ClaimedJob] {
        guard limit > 0 else { return [] }
        let reply = try await call(
            "tern_claim", queue, [min(limit, Self.maxJobsPerCall), worker, Int(lease.nanoseconds / 1_000_000), "flat"])
        return try Self.claimedJobs(reply)
    }

    /// On a single server (or Sentinel's primary) the claim is pipelined behind the wait's `BLPOP`;
    /// on a cluster, where a redirect could split the two, it is a second round trip.
    public var claimsWhileWaiting: Bool { !client.isCluster }

    /// Blocks on the queue's `wake` list and this worker's `stop:` list, with `tern_claim` sent in
    /// the same write: Redis runs the claim the moment the pop returns, which saves an idle
    /// worker a round trip between a new job and its start.
    public func waitAndClaim(
        queue: QueueName, limit: Int, worker: String, lease: Duration, timeout: Duration
    ) async throws -> [ClaimedJob] {
        guard claimsWhileWaiting, limit > 0 else {
            _ = try await waitForWork(queues: [queue], timeout: timeout)
            return try await claim(queue: queue, limit: limit, worker: worker, lease: lease)
        }
        let seconds = String(format: "%.3f", max(0.01, Double(timeout.nanoseconds) / 1e9))
        let claim = RedisClient.functionCall(
            "tern_claim", keys: [keys.base(queue)],
            arguments: [min(limit, Self.maxJobsPerCall), worker, Int(lease.nanoseconds / 1_000_000), "flat"])
        let replies = try await client.pipelineBlocking(
            [RedisCommand("BLPOP", keys.queueKey(queue, .wake), keys.interrupt(queue, worker: worker), seconds), claim],
            blockFor: timeout)
        guard replies.count == 2 else { throw RedisError.protocolError("unexpected replies to a blocking claim") }
        if case .error(let error) = replies[1], RedisClient.isMissingFunction(error) {
            // A Redis restarted without its Functions (no persistence): the plain claim loads them.
            return try await self.claim(queue: queue, limit: limit, worker: worker, lease: lease)
        }
        return try Self.claimedJobs(replies[1].throwingServerError())
    }

    /// Ends `worker`'s blocked ``waitAndClaim(queue:limit:worker:lease:timeout:)`` with a token on
    /// its `stop:` list, which expires in 10 s if no wait takes it.
    public func interruptWait(worker: String, queue: QueueName) async throws {
        let key = keys.interrupt(queue, worker: worker)
        _ = try await client.pipeline([RedisCommand("LPUSH", key, "1"), RedisCommand("PEXPIRE", key, 10_000)])
    }

    /// The jobs of a `tern_claim` reply asked for `flat`: 8 values per job, one list. A library of
    /// an earlier version (loaded by an older process sharing this Redis) ignores `flat` and
    /// answers with a table per job, which is read too.
    static func claimedJobs(_ reply: RedisValue) throws -> [ClaimedJob] {
        var values = reply.array ?? []
        if values.first?.array != nil {
            let rows = values.compactMap(\.array)
            guard rows.count == values.count, rows.allSatisfy({ $0.count == 8 }) else {
                throw RedisError.protocolError("unexpected reply from tern_claim")
            }
            values = rows.flatMap { $0 }
        }
        guard values.count % 8 == 0 else { throw RedisError.protocolError("unexpected reply from tern_claim") }
        return try stride(from: 0, to: values.count, by: 8).map { start in
            let fields = values[start..<start + 8]
            guard let id = fields[start].string.flatMap(JobID.init), let task = fields[start + 1].string,
                let input = fields[start + 2].bytes, let attempt = fields[start + 3].int,
                let maxAttempts = fields[start + 4].int, let token = fields[start + 5].string
            else { throw RedisError.protocolError("unexpected reply from tern_claim") }
            return ClaimedJob(
                lease: JobLease(id: id, token: token), task: task, input: Data(input), attempt: attempt,
                maxAttempts: maxAttempts, suspect: fields[start + 6].int == 1,
                headers: JobHeaders.decode(fields[start + 7].bytes ?? []))
        }
    }

    public func nextDue(queues: [QueueName]) async throws -> Duration? {
        guard !queues.isEmpty else { return nil }
        // A limit bucket's next held-back job counts as due then (`limit_due`; +inf: a slot must free).
        let commands =
            queues.flatMap { queue in
                [QueueKey.scheduled, .limitDue].map { RedisCommand("ZRANGE", keys.queueKey(queue, $0), 0, 0, "WITHSCORES") }
            } + [RedisCommand("TIME")]
        let replies = try await client.pipeline(commands)
        guard let time = try replies.last?.throwingServerError().array, time.count == 2, let seconds = time[0].int,
            let micros = time[1].int
        else { throw RedisError.protocolError("unexpected reply to TIME") }
        let now = seconds * 1000 + micros / 1000
        let due = try replies.dropLast().compactMap { reply -> Int? in
            guard let pair = try reply.throwingServerError().array, pair.count == 2 else { return nil }
            return pair[1].string.flatMap(Double.init).flatMap { $0.isFinite ? Int($0) : nil }
        }.min()
        return due.map { .milliseconds(max(0, $0 - now)) }
    }

    public func waitForWork(queues: [QueueName], timeout: Duration) async throws -> Bool {
        guard !queues.isEmpty else { return false }
        let seconds = String(format: "%.3f", max(0.01, Double(timeout.nanoseconds) / 1e9))
        let wakeKeys = queues.map { keys.queueKey($0, .wake) }
        // A multi-key command needs one slot on a cluster: there, one BLPOP per slot, at once, and the
        // first woken wins (the others are cancelled; their connections are closed, not reused). A
        // slot whose node fails does not end the wait for the others; only all failing does.
        let groups =
            client.isCluster ? Array(Dictionary(grouping: wakeKeys, by: RedisClusterSlot.of).values) : [wakeKeys]
        if groups.count == 1 {
            return try await !client.sendBlocking(RedisCommand("BLPOP", arguments: wakeKeys + [seconds]), blockFor: timeout).isNull
        }
        let outcome = await withTaskGroup(of: Result<Bool, any Error>.self) { group -> Result<Bool, any Error> in
            for slotKeys in groups {
                group.addTask {
                    do {
                        let reply = try await self.client.sendBlocking(RedisCommand("BLPOP", arguments: slotKeys + [seconds]), blockFor: timeout)
                        return .success(!reply.isNull)
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var firstError: (any Error)?
            var answered = false
            for await outcome in group {
                switch outcome {
                case .success(true):
                    group.cancelAll()
                    return .success(true)
                case .success(false): answered = true
                case .failure(let error): firstError = firstError ?? error
                }
            }
            if let firstError, !answered { return .failure(firstError) }
            return .success(false)
        }
        return try outcome.get()
    }

    public func heartbeat(_ leases: [JobLease], lease: Duration) async throws -> HeartbeatOutcome {
        let byQueue = Dictionary(grouping: leases, by: \.id.queue)
        guard !byQueue.isEmpty else { return HeartbeatOutcome() }
        let commands = byQueue.map { queue, leases in
            var command = RedisCommand("FCALL", "tern_heartbeat", 1, keys.base(queue), Int(lease.nanoseconds / 1_000_000))
            for lease in leases {
                command.append(lease.id.rawValue)
                command.append(lease.token)
            }
            return command
        }
        var outcome = HeartbeatOutcome()
        // On a cluster a node that is down fails only its queues' heartbeats: the others still count.
        let results = try await Self.eachLoadingFunctions(commands, client: client)
        if let failure = results.first(where: { if case .failure = $0 { true } else { false } }),
            results.allSatisfy({ if case .failure = $0 { true } else { false } })
        {
            _ = try failure.get()
        }
        for case .success(let reply) in results {
            let parts = try reply.throwingServerError().array ?? []
            guard parts.count == 2 else { throw RedisError.protocolError("unexpected reply from tern_heartbeat") }
            outcome.lost += (parts[0].array ?? []).compactMap { $0.string.flatMap(JobID.init) }
            outcome.cancelRequested += (parts[1].array ?? []).compactMap { $0.string.flatMap(JobID.init) }
        }
        return outcome
    }

    /// Records success. Concurrent completions are merged into one Function call per queue.
    public func complete(_ lease: JobLease, result: Data) async throws -> Bool {
        try await completions.submit((lease, result))
    }

    private static func completeNow(
        _ items: [(JobLease, Data)], client: RedisClient, keys: RedisJobKeys
    ) async -> [Result<Bool, any Error>] {
        var order: [QueueName] = []
        var groups: [QueueName: [Int]] = [:]
        for (index, item) in items.enumerated() {
            if groups[item.0.id.queue] == nil { order.append(item.0.id.queue) }
            groups[item.0.id.queue, default: []].append(index)
        }
        let commands = order.map { queue in
            var command = RedisCommand("FCALL", "tern_complete", 1, keys.base(queue))
            for index in groups[queue]! {
                command.append(items[index].0.id.rawValue)
                command.append(items[index].0.token)
                command.append(items[index].1)
            }
            return command
        }
        var results = [Result<Bool, any Error>](repeating: .failure(RedisError.protocolError("no reply")), count: items.count)
        do {
            // Each queue's call has its own outcome: on a cluster a node that is down fails only its queues.
            let replies = try await eachLoadingFunctions(commands, client: client)
            for (queue, reply) in zip(order, replies) {
                let indices = groups[queue]!
                switch reply {
                case .success(.array(let flags)) where flags.count == indices.count:
                    for (index, flag) in zip(indices, flags) { results[index] = .success(flag.int == 1 || flag.int == 2) }
                    // Dependents on other queues: their turn now. A failure here is the reaper's
                    // to retry (the relay keeps them).
                    if flags.contains(where: { $0.int == 2 }) { _ = try? await DependencyRelay(client: client, keys: keys).process(queue) }
                case .success(.error(let error)):
                    for index in indices { results[index] = .failure(RedisError.server(error)) }
                case .failure(let error):
                    for index in indices { results[index] = .failure(error) }
                default:
                    for index in indices { results[index] = .failure(RedisError.protocolError("unexpected reply from tern_complete")) }
                }
            }
        } catch {
            return items.map { _ in .failure(error) }
        }
        return results
    }

    public func fail(_ lease: JobLease, message: String, retryAfter: Duration?) async throws -> JobState? {
        let delay = retryAfter.map { Int(max(0, $0.nanoseconds / 1_000_000)) } ?? -1
        let reply = try await call(
            "tern_fail", lease.id.queue,
            [lease.id.rawValue, lease.token, String(message.prefix(4096)), delay, failedCap, JobLimits.errorsKept])
        let state = reply.string.flatMap(JobState.init(rawValue:))
        if state?.isTerminal == true { await relay(lease.id) }
        return state
    }

    public func cancelled(_ lease: JobLease) async throws -> Bool {
        let done = try await call("tern_cancelled", lease.id.queue, [lease.id.rawValue, lease.token]).int == 1
        if done { await relay(lease.id) }
        return done
    }

    public func release(_ leases: [JobLease]) async throws {
        let byQueue = Dictionary(grouping: leases, by: \.id.queue)
        let commands = byQueue.map { queue, leases in
            var command = RedisCommand("FCALL", "tern_release", 1, keys.base(queue))
            for lease in leases {
                command.append(lease.id.rawValue)
                command.append(lease.token)
            }
            return command
        }
        for reply in try await pipelineLoadingFunctions(commands) { try reply.throwingServerError() }
    }

    public func crashed(_ lease: JobLease, reason: String, maxCrashes: Int, shared: Bool) async throws -> JobState? {
        let state = try await call("tern_crashed", lease.id.queue, [
            lease.id.rawValue, lease.token, String(reason.prefix(500)), max(1, maxCrashes), failedCap, JobLimits.errorsKept,
            shared ? 1 : 0,
        ]).string.flatMap(JobState.init(rawValue:))
        if state?.isTerminal == true { await relay(lease.id) }
        return state
    }

    public func progress(_ lease: JobLease, value: Double, message: String?) async throws -> Bool {
        try await call("tern_progress", lease.id.queue, [lease.id.rawValue, lease.token, value, message ?? ""]).int == 1
    }

    public func cancel(_ id: JobID) async throws -> JobState? {
        let state = try await call("tern_cancel", id.queue, [id.rawValue]).string.flatMap(JobState.init(rawValue:))
        if state == .cancelled { await relay(id) }
        return state
    }

    /// Emits tick `tick` of schedule `name` as a job, at most once across all callers (see
    /// `tern_schedule`). `mark` (≥ `tick`) is the point the schedule's mark moves to, past ticks that
    /// are skipped; `skipIfRunning` skips the tick while the schedule's last job has not finished.
    public func emitTick(
        schedule name: String, tick: Int64, mark: Int64, skipIfRunning: Bool, request: EnqueueRequest
    ) async throws -> TickEmission {
        try await schedule(name, tick: String(tick), mark: mark, skipIfRunning: skipIfRunning, request: request)
    }

    /// Runs schedule `name` now, outside its ticks: enqueues its job (a schedule's job, whose tick is
    /// Redis time) and records it as the schedule's last job, without moving the mark, so the
    /// schedule's own ticks go on as before. With `skipIfRunning`, nothing is enqueued while the
    /// schedule's last job has not finished: the answer is then ``TickEmission/overlapped(lastJob:)``.
    public func runSchedule(_ name: String, skipIfRunning: Bool, request: EnqueueRequest) async throws -> TickEmission {
        try await schedule(name, tick: "now", mark: 0, skipIfRunning: skipIfRunning, request: request)
    }

    private func schedule(
        _ name: String, tick: String, mark: Int64, skipIfRunning: Bool, request: EnqueueRequest
    ) async throws -> TickEmission {
        if !knownQueues.unknown([request.queue]).isEmpty {
            _ = try await client.send(RedisCommand("SADD", keys.queues, request.queue.rawValue))
            knownQueues.add([request.queue])
        }
        let reply = try await call("tern_schedule", request.queue, [
            name, tick, Int(mark), skipIfRunning ? "skip" : "allow", JobID.generate(queue: request.queue).rawValue,
            request.task, request.input, request.priority, request.maxAttempts,
            request.timing.delay.map { Int($0.nanoseconds / 1_000_000) } ?? 0, Int(request.retention.nanoseconds / 1_000_000),
            Int((request.failedRetention ?? failedRetention).nanoseconds / 1_000_000),
            request.expiresAfter.map { Int($0.nanoseconds / 1_000_000) } ?? -1, request.storedHeaders, request.limitKey ?? "",
        ])
        let parts = reply.array ?? []
        let id = parts.count == 2 ? parts[1].string.flatMap(JobID.init) : nil
        switch parts.first?.string {
        case "emitted": return .emitted(id!)
        case "overlap": return .overlapped(lastJob: id)
        default: return .duplicate(lastJob: id)
        }
    }

    public func retry(_ id: JobID) async throws -> JobState? {
        let state = try await call("tern_retry", id.queue, ["job", id.rawValue]).string.flatMap(JobState.init(rawValue:))
        if state == .queued || state == .waiting { await relay(id) }
        return state
    }

    public func delete(_ id: JobID) async throws -> JobDeletion? {
        let reply = try await call("tern_delete", id.queue, [id.rawValue]).array ?? []
        guard reply.count == 2, let state = reply[1].string.flatMap(JobState.init(rawValue:)) else { return nil }
        return reply[0].int == 1 ? .deleted(state) : .notFinished(state)
    }

    public func promote(_ id: JobID) async throws -> JobPromotion? {
        let reply = try await call("tern_promote", id.queue, [id.rawValue]).array ?? []
        guard reply.count == 2, let state = reply[1].string.flatMap(JobState.init(rawValue:)) else { return nil }
        return reply[0].int == 1 ? .promoted(from: state) : .notDelayed(state)
    }

    public func purge(_ queue: QueueName, state: JobState, limit: Int) async throws -> Int {
        precondition(state != .running, "running jobs are cancelled, not purged")
        let count = try await call("tern_purge", queue, [state.rawValue, max(1, min(limit, Self.maxJobsPerCall))]).int ?? 0
        // Dependents of purged jobs learn that they are gone (else at the reaper's next pass).
        if count > 0 { _ = try? await DependencyRelay(client: client, keys: keys).process(queue) }
        return count
    }

    public func retryFailed(_ queue: QueueName, limit: Int) async throws -> Int {
        let count = try await call("tern_retry", queue, ["failed", max(1, limit)]).int ?? 0
        if count > 0 { _ = try? await DependencyRelay(client: client, keys: keys).process(queue) }
        return count
    }

    public func job(_ id: JobID) async throws -> JobRecord? {
        let reply = try await client.send(RedisCommand("HGETALL", keys.job(id)))
        return Self.record(from: reply)
    }

    /// The job in an `HGETALL` reply, or `nil` if there is none or its retention has passed
    /// (`drop_ms` by this process's clock: the hash stays until the reaper's sweep deletes it).
    static func record(from reply: RedisValue, now: Int64 = Int64(WallClock.nowMilliseconds())) -> JobRecord? {
        guard let items = reply.array, !items.isEmpty else { return nil }
        var fields: [String: [UInt8]] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            if let key = items[index].string, let value = items[index + 1].bytes { fields[key] = value }
        }
        if let drop = fields["drop_ms"].flatMap({ Int64(String(decoding: $0, as: UTF8.self)) }), drop <= now { return nil }
        return JobRecord(fields: fields)
    }

    public func jobs(queue: QueueName, state: JobState, cursor: String?, limit: Int) async throws -> JobPage {
        let limit = min(max(limit, 1), 1000)
        // A cursor is an offset; one that is not a plausible offset starts from the beginning.
        let offset = cursor.flatMap(Int.init).flatMap { (0...10_000_000).contains($0) ? $0 : nil } ?? 0
        var ids = try await client.send(
            RedisCommand("ZRANGE", keys.queueKey(queue, QueueKey(holding: state)), offset, offset + limit - 1)
        ).array ?? []
        if state == .queued && ids.count < limit {
            // Queued jobs held back by a limit come after the others, in the order they were held back.
            let pending = try await client.send(RedisCommand("ZCARD", keys.queueKey(queue, .pending))).int ?? 0
            let start = max(0, offset + ids.count - pending)
            ids += try await client.send(
                RedisCommand("ZRANGE", keys.queueKey(queue, .throttled), start, start + limit - ids.count - 1)
            ).array ?? []
        }
        let records = try await client.pipeline(
            ids.compactMap { $0.string.flatMap(JobID.init) }.map { RedisCommand("HGETALL", keys.job($0)) })
        let now = Int64(WallClock.nowMilliseconds())
        let jobs = records.compactMap { Self.record(from: $0, now: now) }.filter { $0.state == state }
        return JobPage(jobs: jobs, nextCursor: ids.count == limit ? String(offset + limit) : nil)
    }

    public func stats(_ queue: QueueName) async throws -> QueueStats {
        let sets: [QueueKey] = [.pending, .scheduled, .active, .succeeded, .failed, .cancelled, .expired, .waiting, .throttled]
        var commands = sets.map { RedisCommand("ZCARD", keys.queueKey(queue, $0)) }
        commands.append(RedisCommand("HMGET", keys.queueKey(queue, .meta), "paused", "stale_writes", "lost_leases"))
        commands.append(RedisCommand("ZRANGE", keys.queueKey(queue, .pending), 0, 0))
        commands.append(RedisCommand("TIME"))
        let replies = try await client.pipeline(commands)
        let counts = try replies.prefix(sets.count).map { try $0.throwingServerError().int ?? 0 }
        var stats = QueueStats(queue: queue)
        (stats.pending, stats.scheduled, stats.running) = (counts[0], counts[1], counts[2])
        (stats.succeeded, stats.failed, stats.cancelled, stats.expired) = (counts[3], counts[4], counts[5], counts[6])
        (stats.waiting, stats.throttled) = (counts[7], counts[8])
        let meta = replies[sets.count].array ?? []
        stats.paused = meta.first?.string == "1"
        stats.staleWrites = meta.count > 1 ? meta[1].int ?? 0 : 0
        stats.lostLeases = meta.count > 2 ? meta[2].int ?? 0 : 0
        if let head = replies[sets.count + 1].array?.first?.string.flatMap(JobID.init),
            let due = try await client.send(RedisCommand("HGET", keys.job(head), "due_ms")).int,
            let time = replies[sets.count + 2].array, time.count == 2, let seconds = time[0].int,
            let micros = time[1].int
        {
            stats.oldestPendingMilliseconds = max(0, Int64(seconds * 1000 + micros / 1000) - Int64(due))
        }
        return stats
    }

    /// The last `minutes` whole minutes of Redis's clock (at most ``JobLimits/throughputMinutes``),
    /// oldest first: the names of a queue's `minute:<m>` hashes.
    private func recentMinutes(_ minutes: Int) async throws -> ClosedRange<Int64> {
        let count = Int64(min(max(minutes, 1), JobLimits.throughputMinutes))
        guard let time = try await client.send("TIME").array, time.count == 2, let seconds = time[0].int else {
            throw RedisError.protocolError("unexpected reply to TIME")
        }
        let current = Int64(seconds) / 60
        return (current - count + 1)...current
    }

    public func throughput(_ queue: QueueName, minutes: Int) async throws -> [MinuteCount] {
        let range = try await recentMinutes(minutes)
        let base = keys.base(queue) + QueueItemKey.minute.rawValue
        let replies = try await client.pipeline(range.map { RedisCommand("HMGET", base + String($0), "succeeded", "failed") })
        return try zip(range, replies).map { minute, reply in
            let fields = try reply.throwingServerError().array ?? []
            return MinuteCount(
                minuteMilliseconds: minute * 60_000, succeeded: fields.first?.int ?? 0, failed: fields.count > 1 ? fields[1].int ?? 0 : 0)
        }
    }

    public func latency(_ queue: QueueName, minutes: Int?) async throws -> LatencyHistogram {
        let fields = LatencyHistogram.fields
        guard let minutes else {
            let reply = try await client.send(RedisCommand("HMGET", arguments: [keys.queueKey(queue, .meta)] + fields))
            return LatencyHistogram(fieldValues: (reply.array ?? []).map { $0.int ?? 0 })
        }
        let base = keys.base(queue) + QueueItemKey.minute.rawValue
        let buckets = Array(fields.dropLast())
        let replies = try await client.pipeline(
            try await recentMinutes(minutes).map { RedisCommand("HMGET", arguments: [base + String($0)] + buckets) })
        var histogram = LatencyHistogram()
        for reply in replies {
            histogram.add(LatencyHistogram(fieldValues: (try reply.throwingServerError().array ?? []).map { $0.int ?? 0 }))
        }
        return histogram
    }

    public func setPaused(_ queue: QueueName, _ paused: Bool) async throws {
        var commands = [RedisCommand("HSET", keys.queueKey(queue, .meta), "paused", paused ? "1" : "0")]
        if !paused {
            commands.append(RedisCommand("LPUSH", keys.queueKey(queue, .wake), "1"))
            commands.append(RedisCommand("LTRIM", keys.queueKey(queue, .wake), 0, 63))
        }
        commands.append(RedisCommand("SADD", keys.queues, queue.rawValue))
        for reply in try await client.pipeline(commands) { try reply.throwingServerError() }
    }

    public func limits(_ queue: QueueName) async throws -> [QueueLimit] {
        let reply = try await client.send(RedisCommand("HGETALL", keys.queueKey(queue, .limits))).throwingServerError()
        let items = reply.array ?? []
        var fields: [String: String] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            if let field = items[index].string, let value = items[index + 1].string { fields[field] = value }
        }
        return QueueLimit.parse(fields)
    }

    public func setLimit(_ limit: JobLimit??, scope: LimitScope, queue: QueueName, declared: Bool) async throws {
        let field = (declared ? "d:" : "o:") + scope.field
        let value = limit.map { $0?.stored ?? "0 0 1 0" } ?? ""
        _ = try await call("tern_limit", queue, [field, value])
        _ = try await client.send(RedisCommand("SADD", keys.queues, queue.rawValue))
    }

    public func queues() async throws -> [QueueName] {
        let members = try await client.send(RedisCommand("SMEMBERS", keys.queues)).array ?? []
        return members.compactMap { $0.string.flatMap(QueueName.init) }.sorted { $0.rawValue < $1.rawValue }
    }

    public func reap(_ queue: QueueName, limit: Int) async throws -> ReapReport {
        let reply = try await call("tern_reap", queue, [limit, failedCap, JobLimits.errorsKept])
        // Changes not relayed at once (a process died between a job's change and its relay, or
        // Redis failed then) are relayed after a second.
        _ = try await DependencyRelay(client: client, keys: keys).process(queue, minAge: .seconds(1), limit: limit)
        let counts = (reply.array ?? []).map { $0.int ?? 0 }
        var report = ReapReport()
        if counts.count == 5 {
            (report.requeued, report.failed, report.promoted, report.repaired) = (counts[0], counts[1], counts[2], counts[3])
            report.dropped = counts[4]
        }
        return report
    }
}

/// The queues this process has already added to the set of queue names, so that enqueues skip the
/// `SADD` after the first time.
final class KnownQueues: Sendable {
    private let names = Mutex<Set<QueueName>>([])

    func unknown(_ queues: [QueueName]) -> [QueueName] {
        names.withLock { names in queues.filter { !names.contains($0) } }
    }

    func add(_ queues: [QueueName]) {
        names.withLock { $0.formUnion(queues) }
    }
}
