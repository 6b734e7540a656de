import Broker
import Foundation
import Hummingbird
import Logging
import TernCore

/// `/v1/queues` and `/v1/tasks`.
func addQueueRoutes(_ router: Router<APIRequestContext>, _ api: APIContext) {
    let queues = router.group("v1/queues")
    queues.get { request, context in
        try context.require(.read)
        let page = try pageSize(request, default: api.configuration.maxQueuesListed, max: api.configuration.maxQueuesListed)
        let after = request.uri.queryParameters.get("cursor").map { String($0) }
        let (stats, more) = try await broker { try await queueStats(api, after: after, limit: page) }
        let limits = try await broker {
            try await withThrowingTaskGroup(of: (QueueName, [QueueLimit]).self) { group in
                for queue in stats.map(\.queue) { group.addTask { (queue, try await api.broker.limits(queue)) } }
                return try await group.reduce(into: [QueueName: [QueueLimit]]()) { $0[$1.0] = $1.1 }
            }
        }
        return try JSONResponse.make([
            "queues": stats.map { queueObject($0, limits: limits[$0.queue] ?? []) },
            "next_cursor": JSONResponse.orNull(more ? stats.last?.queue.rawValue : nil),
        ])
    }
    queues.get(":queue") { _, context in
        try context.require(.read)
        let queue = try await knownQueue(context, api)
        let (stats, limits) = try await broker { (try await api.broker.stats(queue), try await api.broker.limits(queue)) }
        return try JSONResponse.make(queueObject(stats, limits: limits))
    }
    queues.get(":queue/events") { request, context in
        try context.require(.read)
        return try QueueEvents.response(for: try await knownQueue(context, api), request: request, api: api)
    }
    queues.get(":queue/jobs") { request, context in
        try context.require(.read)
        let queue = try queueName(context)
        let stateText = request.uri.queryParameters.get("state") ?? "queued"
        guard let state = JobState(rawValue: stateText) else {
            throw Problem(.badRequest, "invalid_state", "state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let limit = try pageSize(request, default: api.configuration.defaultPageSize, max: api.configuration.maxPageSize)
        let cursor = request.uri.queryParameters.get("cursor")
        let task = request.uri.queryParameters.get("task").map { String($0) }
        let page = try await broker { try await jobPage(api, queue: queue, state: state, task: task, cursor: cursor, limit: limit) }
        return try JSONResponse.make(["jobs": page.jobs.map(JobView.object), "next_cursor": JSONResponse.orNull(page.nextCursor)])
    }
    queues.get(":queue/throughput") { request, context in
        try context.require(.read)
        let queue = try queueName(context)
        let text = request.uri.queryParameters.get("minutes")
        guard let requested = text.map({ Int($0) }) ?? 60 else {
            throw Problem(.badRequest, "invalid_minutes", "minutes must be an integer")
        }
        let minutes = min(max(requested, 1), JobLimits.throughputMinutes)
        async let counts = broker { try await api.broker.throughput(queue, minutes: minutes) }
        async let waits = broker { try await api.broker.latency(queue, minutes: minutes) }
        let (perMinute, latency) = try await (counts, waits)
        return try JSONResponse.make([
            "queue": queue.rawValue,
            "minutes": perMinute.map { ["at": JobView.timestamp($0.minuteMilliseconds), "succeeded": $0.succeeded, "failed": $0.failed] },
            "latency": [
                "jobs": latency.total,
                "p50_ms": JSONResponse.orNull(latency.quantile(0.5)), "p99_ms": JSONResponse.orNull(latency.quantile(0.99)),
            ] as [String: Any],
        ])
    }
    queues.post(":queue/purge") { request, context in
        try context.require(.operate)
        let queue = try await knownQueue(context, api)
        let text = request.uri.queryParameters.get("state") ?? ""
        guard let state = JobState(rawValue: text), state != .running else {
            throw Problem(
                .badRequest, "invalid_state",
                "state must be one of \(JobState.allCases.filter { $0 != .running }.map(\.rawValue).joined(separator: ", ")); running jobs are cancelled, not purged")
        }
        // At most 100 calls of 1,000 jobs per request; `more` says whether to ask again.
        var purged = 0
        var more = true
        for _ in 0..<100 {
            let count = try await broker { try await api.broker.purge(queue, state: state, limit: 1_000) }
            purged += count
            if count == 0 {
                more = false
                break
            }
        }
        context.logger.notice("queue purged", metadata: ["queue": "\(queue.rawValue)", "state": "\(state.rawValue)", "purged": "\(purged)"])
        return try JSONResponse.make(["queue": queue.rawValue, "state": state.rawValue, "purged": purged, "more": more])
    }
    queues.post(":queue/pause") { _, context in
        try context.require(.operate)
        let queue = try await knownQueue(context, api)
        try await broker { try await api.broker.setPaused(queue, true) }
        return try JSONResponse.make(["queue": queue.rawValue, "paused": true])
    }
    queues.post(":queue/resume") { _, context in
        try context.require(.operate)
        let queue = try await knownQueue(context, api)
        try await broker { try await api.broker.setPaused(queue, false) }
        return try JSONResponse.make(["queue": queue.rawValue, "paused": false])
    }
    queues.post(":queue/retry-failed") { _, context in
        try context.require(.operate)
        let queue = try await knownQueue(context, api)
        // In calls of 1,000 so that no single Redis call runs long; the failed set is capped.
        var retried = 0
        while true {
            let count = try await broker { try await api.broker.retryFailed(queue, limit: 1000) }
            retried += count
            if count < 1000 || retried >= JobLimits.defaultFailedCap * 10 { break }
        }
        return try JSONResponse.make(["queue": queue.rawValue, "retried": retried])
    }
    router.get("v1/tasks") { _, context in
        try context.require(.read)
        let current = await api.tasks.current()
        // Which live workers run each task: those whose announced catalogue lists it.
        let workers = (try? await (api.broker as? any WorkerRegistry)?.workers()) ?? []
        var namesByVersion: [String: Set<String>] = [:]
        for seen in current.catalogues { namesByVersion[seen.catalogue.version] = Set(seen.catalogue.tasks.map(\.name)) }
        let tasks: [[String: Any]] = current.registry.names.compactMap { name in
            guard let entry = current.registry[name] else { return nil }
            var object = taskObject(entry)
            object["source"] = entry.isPublished ? "published" : "compiled"
            object["workers"] = workers.filter { info in
                info.catalogue.flatMap { namesByVersion[$0]?.contains(name) } ?? false
            }.map(\.id)
            return object
        }
        return try JSONResponse.make(["tasks": tasks])
    }
}

/// A page of a listing; with `task`, only that task's jobs: pages of the state are read until one
/// holds some of them, at most 10 pages per request, so a page may hold fewer than `limit` jobs
/// (none, with a `next_cursor`, when 10 pages had none).
func jobPage(
    _ api: APIContext, queue: QueueName, state: JobState, task: String?, cursor: String?, limit: Int
) async throws -> JobPage {
    guard let task else { return try await api.broker.jobs(queue: queue, state: state, cursor: cursor, limit: limit) }
    var cursor = cursor
    for _ in 0..<10 {
        let page = try await api.broker.jobs(queue: queue, state: state, cursor: cursor, limit: limit)
        let matching = page.jobs.filter { $0.task == task }
        cursor = page.nextCursor
        if !matching.isEmpty || cursor == nil { return JobPage(jobs: matching, nextCursor: cursor) }
    }
    return JobPage(jobs: [], nextCursor: cursor)
}

/// The `limit` query parameter: `default` without it, else clamped to 1...`max`.
/// - Throws: 400 `invalid_limit` for a value that is not an integer.
private func pageSize(_ request: Request, default: Int, max largest: Int) throws -> Int {
    guard let text = request.uri.queryParameters.get("limit") else { return `default` }
    guard let requested = Int(text) else { throw Problem(.badRequest, "invalid_limit", "limit must be an integer") }
    return min(max(requested, 1), largest)
}

/// The stats of at most `limit` queues whose names sort after `after` (from the first without it),
/// in name order, read at once rather than one round trip after another; and whether more follow.
func queueStats(_ api: APIContext, after: String? = nil, limit: Int) async throws -> (stats: [QueueStats], more: Bool) {
    let all = try await api.broker.queues()
    let names = after.map { after in all.filter { $0.rawValue > after } } ?? all
    let page = Array(names.prefix(limit))
    let stats = try await withThrowingTaskGroup(of: QueueStats.self) { group in
        for name in page { group.addTask { try await api.broker.stats(name) } }
        return try await group.reduce(into: [QueueName: QueueStats]()) { $0[$1.queue] = $1 }
    }
    return (page.compactMap { stats[$0] }, names.count > limit)
}

/// A queue that has been used; pausing a misspelt name must not create a queue (or any key).
private func knownQueue(_ context: APIRequestContext, _ api: APIContext) async throws -> QueueName {
    let queue = try queueName(context)
    let known = try await broker { try await api.broker.queues() }
    guard known.contains(queue) else {
        throw Problem(.notFound, "not_found", "no queue is named '\(queue.rawValue)': a queue exists once a job was enqueued to it")
    }
    return queue
}

private func queueObject(_ stats: QueueStats, limits: [QueueLimit]) -> [String: Any] {
    [
        "queue": stats.queue.rawValue, "pending": stats.pending, "scheduled": stats.scheduled, "running": stats.running,
        "succeeded": stats.succeeded, "failed": stats.failed, "cancelled": stats.cancelled, "expired": stats.expired, "waiting": stats.waiting,
        "throttled": stats.throttled,
        "paused": stats.paused, "oldest_pending_ms": stats.oldestPendingMilliseconds,
        "lost_leases": stats.lostLeases, "stale_writes": stats.staleWrites, "limits": limits.map(LimitView.object),
    ]
}


private func taskObject(_ entry: TaskRegistry.Entry) -> [String: Any] {
    let options = entry.options
    return [
        "name": entry.name, "queue": options.queue.rawValue, "priority": options.priority,
        "max_attempts": options.maxAttempts,
        "soft_time_limit_ms": JSONResponse.orNull(options.softTimeLimit.map(milliseconds)),
        "hard_time_limit_ms": JSONResponse.orNull(options.effectiveHardTimeLimit.map(milliseconds)),
        "isolated": options.isolated,
        "result_retention_ms": milliseconds(options.resultRetention),
        "failed_retention_ms": JSONResponse.orNull(options.failedRetention.map(milliseconds)),
        "expires_after_ms": JSONResponse.orNull(options.expiresAfter.map(milliseconds)),
        "limit": options.limit.map { limit -> Any in
            var object = LimitView.limit(limit) as? [String: Any] ?? [:]
            object["key_fields"] = limit.keyFields
            return object
        } ?? NSNull(),
        "unique": options.unique.map { policy -> Any in
            var object: [String: Any] = ["mode": policy.mode.name, "key_fields": policy.keyFields]
            if let window = policy.mode.windowMilliseconds { object["window_ms"] = window }
            return object
        } ?? NSNull(),
        "input_schema": entry.inputSchema.foundationObject, "output_schema": entry.outputSchema.foundationObject,
    ]
}

private func milliseconds(_ duration: Duration) -> Int64 { duration.nanoseconds / 1_000_000 }

extension JSONValue {
    /// The value as `JSONSerialization` objects, for ``JSONResponse``.
    var foundationObject: Any {
        switch self {
        case .null: NSNull()
        case .bool(let value): value
        case .number(let value): value == value.rounded() && abs(value) < 9e15 ? Int64(value) as Any : value as Any
        case .string(let value): value
        case .array(let values): values.map(\.foundationObject)
        case .object(let fields): fields.mapValues(\.foundationObject)
        }
    }
}
