import Broker
import Foundation
import Hummingbird
import Logging
import NIOCore
import TernCore

/// What the routes need: the broker, the registered tasks, limits, and a readiness probe.
public struct APIContext: Sendable {
    public var broker: any JobBroker
    public var registry: TaskRegistry
    public var configuration: APIConfiguration
    /// Throws when the job store cannot serve requests (for `/readyz`).
    public var checkReady: @Sendable () async throws -> Void

    public init(
        broker: any JobBroker, registry: TaskRegistry, configuration: APIConfiguration,
        checkReady: @escaping @Sendable () async throws -> Void
    ) {
        self.broker = broker
        self.registry = registry
        self.configuration = configuration
        self.checkReady = checkReady
    }
}

/// Builds the router with every route of the HTTP API.
public func buildRouter(_ api: APIContext) -> Router<BasicRequestContext> {
    let router = Router()
    router.get("/healthz") { _, _ in try JSONResponse.make(["status": "ok"]) }
    router.get("/readyz") { _, _ in
        do {
            try await api.checkReady()
            return try JSONResponse.make(["status": "ready"])
        } catch {
            throw Problem.unavailable(error)
        }
    }
    let jobs = router.group("v1/jobs")
    jobs.post { request, _ in try await enqueue(request, api) }
    jobs.post("batch") { request, _ in try await enqueueBatch(request, api) }
    jobs.get(":id") { request, context in
        let id = try jobID(context)
        // ?wait=<seconds>: hold the answer until the job finishes or the wait (at most 30 s) ends.
        let waitText = request.uri.queryParameters.get("wait")
        let wait = try waitText.map { text -> Double in
            guard let seconds = Double(text), seconds.isFinite, seconds >= 0 else {
                throw Problem(.badRequest, "invalid_wait", "wait must be a number of seconds from 0 to \(api.configuration.maxWaitSeconds)")
            }
            return min(seconds, Double(api.configuration.maxWaitSeconds))
        } ?? 0
        let deadline = ContinuousClock.now + .milliseconds(Int(wait * 1000))
        var pause = Duration.milliseconds(5)
        while true {
            guard let record = try await broker({ try await api.broker.job(id) }) else { throw notFound(id) }
            if record.state.isTerminal || ContinuousClock.now >= deadline {
                return try JSONResponse.make(JobView.object(record))
            }
            try await Task.sleep(for: min(pause, deadline - ContinuousClock.now))
            pause = min(pause * 2, .milliseconds(250))
        }
    }
    jobs.post(":id/cancel") { _, context in
        let id = try jobID(context)
        guard let state = try await broker({ try await api.broker.cancel(id) }) else { throw notFound(id) }
        return try JSONResponse.make(["id": id.rawValue, "state": state.rawValue])
    }
    let queues = router.group("v1/queues")
    queues.get { _, _ in
        let names = try await broker { try await api.broker.queues() }
        // The stats of all queues at once rather than one round trip after another.
        let stats = try await broker {
            try await withThrowingTaskGroup(of: QueueStats.self) { group in
                for name in names { group.addTask { try await api.broker.stats(name) } }
                return try await group.reduce(into: [QueueName: QueueStats]()) { $0[$1.queue] = $1 }
            }
        }
        return try JSONResponse.make(["queues": names.compactMap { stats[$0].map(queueObject) }])
    }
    queues.get(":queue/jobs") { request, context in
        let queue = try queueName(context)
        let stateText = request.uri.queryParameters.get("state") ?? "queued"
        guard let state = JobState(rawValue: stateText) else {
            throw Problem(.badRequest, "invalid_state", "state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? api.configuration.defaultPageSize, 1), api.configuration.maxPageSize)
        let cursor = request.uri.queryParameters.get("cursor")
        let page = try await broker { try await api.broker.jobs(queue: queue, state: state, cursor: cursor, limit: limit) }
        return try JSONResponse.make(["jobs": page.jobs.map(JobView.object), "next_cursor": JSONResponse.orNull(page.nextCursor)])
    }
    queues.post(":queue/pause") { _, context in
        let queue = try await knownQueue(context, api)
        try await broker { try await api.broker.setPaused(queue, true) }
        return try JSONResponse.make(["queue": queue.rawValue, "paused": true])
    }
    queues.post(":queue/resume") { _, context in
        let queue = try await knownQueue(context, api)
        try await broker { try await api.broker.setPaused(queue, false) }
        return try JSONResponse.make(["queue": queue.rawValue, "paused": false])
    }
    router.get("v1/tasks") { _, _ in
        let tasks: [[String: Any]] = api.registry.names.compactMap { name in
            guard let entry = api.registry[name] else { return nil }
            return [
                "name": name, "queue": entry.options.queue.rawValue, "priority": entry.options.priority,
                "max_attempts": entry.options.maxAttempts,
            ]
        }
        return try JSONResponse.make(["tasks": tasks])
    }
    return router
}

private func enqueue(_ request: Request, _ api: APIContext) async throws -> Response {
    let bytes = try await readJSONBody(request, api)
    let enqueueRequest = try EnqueueBody.parse(
        bytes, registry: api.registry, idempotencyKey: request.headers[.init("Idempotency-Key")!])
    let receipt = try await broker { try await api.broker.enqueue([enqueueRequest])[0] }
    let object: [String: Any] = [
        "id": receipt.id.rawValue, "state": JSONResponse.orNull(receipt.state?.rawValue), "created": receipt.created,
        "links": ["self": "/v1/jobs/\(receipt.id.rawValue)"],
    ]
    return try JSONResponse.make(
        object, status: receipt.created ? .created : .ok, headers: [.location: "/v1/jobs/\(receipt.id.rawValue)"])
}

/// `POST /v1/jobs/batch`: `{"jobs": [job, ...]}` with 1 to 1,000 jobs, each shaped like the body
/// of `POST /v1/jobs` plus an optional `idempotency_key`. Each job is validated on its own; the
/// valid ones are enqueued together. The answer is 200 with one result per job, in order: its
/// `id`, `state` and `created`, or its `error` (a problem document without the HTTP envelope).
private func enqueueBatch(_ request: Request, _ api: APIContext) async throws -> Response {
    let bytes = try await readJSONBody(request, api)
    let (raw, object) = try EnqueueBody.parseObject(bytes)
    guard object.keys.allSatisfy({ $0 == "jobs" }), case .array(let items)? = object["jobs"],
        let rawItems = raw["jobs"] as? [Any], (1...1000).contains(items.count)
    else {
        throw Problem(.unprocessableContent, "invalid_request", "the body must be {\"jobs\": [...]} with 1 to 1000 jobs",
            errors: [.init(pointer: "/jobs", message: "expected an array of 1 to 1000 job objects")])
    }
    var outcomes: [Result<EnqueueRequest, Problem>] = []
    for (index, (item, rawItem)) in zip(items, rawItems).enumerated() {
        guard case .object(let fields) = item, let rawFields = rawItem as? [String: Any] else {
            outcomes.append(.failure(Problem(.unprocessableContent, "invalid_request", "a job must be an object",
                errors: [.init(pointer: "/jobs/\(index)", message: "expected an object")])))
            continue
        }
        var key: String?
        if case .string(let text)? = fields["idempotency_key"] { key = text }
        outcomes.append(Result { () throws(Problem) -> EnqueueRequest in
            if fields["idempotency_key"] != nil && (key == nil || key!.isEmpty || key!.utf8.count > 255) {
                throw Problem(.unprocessableContent, "invalid_request", "idempotency_key must be a string of 1-255 bytes",
                    errors: [.init(pointer: "/jobs/\(index)/idempotency_key", message: "must be a string of 1 to 255 bytes")])
            }
            return try EnqueueBody.parse(
                object: fields, raw: rawFields, registry: api.registry, idempotencyKey: key, pointerPrefix: "/jobs/\(index)",
                extraFields: ["idempotency_key"])
        })
    }
    let valid = outcomes.compactMap { try? $0.get() }
    let receipts = try await broker { try await api.broker.enqueue(valid) }
    guard receipts.count == valid.count else {
        throw Problem.unavailable(RedisError.protocolError("the store returned \(receipts.count) receipts for \(valid.count) jobs"))
    }
    var next = receipts.makeIterator()
    let results: [[String: Any]] = outcomes.enumerated().map { index, outcome in
        switch outcome {
        case .success:
            guard let receipt = next.next() else { return ["index": index] }
            return [
                "index": index, "id": receipt.id.rawValue, "state": JSONResponse.orNull(receipt.state?.rawValue),
                "created": receipt.created,
            ]
        case .failure(let problem):
            return [
                "index": index,
                "error": [
                    "code": problem.code, "detail": problem.detail,
                    "errors": problem.errors.map { ["pointer": $0.pointer, "message": $0.message] },
                ] as [String: Any],
            ]
        }
    }
    return try JSONResponse.make(["results": results, "enqueued": valid.count, "rejected": outcomes.count - valid.count])
}

/// Checks the content type and reads the body up to the limit.
private func readJSONBody(_ request: Request, _ api: APIContext) async throws -> Data {
    let contentType = request.headers[.contentType] ?? ""
    guard contentType.lowercased().hasPrefix("application/json") else {
        throw Problem(.unsupportedMediaType, "unsupported_media_type", "send the job as application/json")
    }
    do {
        let body = try await request.body.collect(upTo: api.configuration.maxBodyBytes)
        return Data(body.readableBytesView)
    } catch is NIOTooManyBytesError {
        throw Problem(.contentTooLarge, "body_too_large", "the body exceeds \(api.configuration.maxBodyBytes) bytes")
    } catch {
        throw Problem(.badRequest, "unreadable_body", "the request body could not be read")
    }
}

/// Runs a broker call; any store failure becomes a 503 with `Retry-After`.
private func broker<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let problem as Problem {
        throw problem
    } catch {
        throw Problem.unavailable(error)
    }
}

private func jobID(_ context: BasicRequestContext) throws -> JobID {
    let text = context.parameters.get("id") ?? ""
    guard let id = JobID(text) else { throw Problem(.notFound, "not_found", "no job has the id '\(text.prefix(100))'") }
    return id
}

private func notFound(_ id: JobID) -> Problem {
    Problem(.notFound, "not_found", "no job has the id '\(id.rawValue)'")
}

private func queueName(_ context: BasicRequestContext) throws -> QueueName {
    let text = context.parameters.get("queue") ?? ""
    guard let queue = QueueName(text) else {
        throw Problem(.unprocessableContent, "invalid_queue", "queue names have 1-64 characters of a-z 0-9 _ -")
    }
    return queue
}

/// A queue that has been used; pausing a misspelt name must not create a queue (or any key).
private func knownQueue(_ context: BasicRequestContext, _ api: APIContext) async throws -> QueueName {
    let queue = try queueName(context)
    let known = try await broker { try await api.broker.queues() }
    guard known.contains(queue) else {
        throw Problem(.notFound, "not_found", "no queue is named '\(queue.rawValue)': a queue exists once a job was enqueued to it")
    }
    return queue
}

private func queueObject(_ stats: QueueStats) -> [String: Any] {
    [
        "queue": stats.queue.rawValue, "pending": stats.pending, "scheduled": stats.scheduled, "running": stats.running,
        "succeeded": stats.succeeded, "failed": stats.failed, "cancelled": stats.cancelled, "expired": stats.expired,
        "paused": stats.paused, "oldest_pending_ms": stats.oldestPendingMilliseconds,
    ]
}
