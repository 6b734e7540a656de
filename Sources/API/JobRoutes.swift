import Broker
import Foundation
import Hummingbird
import TernCore

/// `/v1/jobs`: enqueue one or many, read (and wait for) a job, stream its events, cancel, retry,
/// delete.
func addJobRoutes(_ router: Router<APIRequestContext>, _ api: APIContext) {
    let jobs = router.group("v1/jobs")
    jobs.post { request, context in try await enqueue(request, context, api) }
    jobs.post("batch") { request, context in try await enqueueBatch(request, context, api) }
    jobs.get(":id") { request, context in
        try context.require(.read)
        let id = try jobID(context)
        let wait = try waitSeconds(request, api)
        guard wait > 0 else {
            guard let record = try await broker({ try await api.broker.job(id) }) else { throw notFound(id) }
            return try JSONResponse.make(JobView.object(record))
        }
        return try await api.waiters.run(cap: api.configuration.maxWaiters) {
            let deadline = ContinuousClock.now + .milliseconds(Int(wait * 1000))
            var watch = JobWatch(id: id, api: api)
            while true {
                let record = try await watch.next()
                if record.state.isTerminal || ContinuousClock.now >= deadline {
                    return try JSONResponse.make(JobView.object(record))
                }
                try await watch.pause(until: deadline)
            }
        }
    }
    jobs.delete(":id") { _, context in
        try context.require(.operate)
        let id = try jobID(context)
        switch try await broker({ try await api.broker.delete(id) }) {
        case nil: throw notFound(id)
        case .notFinished(let state)?:
            throw Problem(.conflict, "not_finished", "the job is \(state.rawValue); only a finished job (succeeded, failed, cancelled or expired) can be deleted: cancel it first")
        case .deleted?:
            return Response(status: .noContent)
        }
    }
    jobs.get(":id/events") { request, context in
        try context.require(.read)
        return try await JobEvents.response(for: try jobID(context), request: request, api: api)
    }
    jobs.post(":id/cancel") { _, context in
        try context.require(.operate)
        let id = try jobID(context)
        guard let state = try await broker({ try await api.broker.cancel(id) }) else { throw notFound(id) }
        return try JSONResponse.make(["id": id.rawValue, "state": state.rawValue])
    }
    jobs.post(":id/run") { _, context in
        try context.require(.operate)
        let id = try jobID(context)
        switch try await broker({ try await api.broker.promote(id) }) {
        case nil: throw notFound(id)
        case .notDelayed(let state)?:
            throw Problem(.conflict, "not_scheduled", "the job is \(state.rawValue); only a scheduled or retrying job can be run now")
        case .promoted?:
            return try JSONResponse.make(["id": id.rawValue, "state": JobState.queued.rawValue])
        }
    }
    jobs.post(":id/retry") { _, context in
        try context.require(.operate)
        let id = try jobID(context)
        // Read first: the broker answers `queued` both for a job it retried and one already queued.
        guard let current = try await broker({ try await api.broker.job(id) }) else { throw notFound(id) }
        guard [.failed, .cancelled, .expired].contains(current.state) else {
            throw Problem(.conflict, "not_retryable", "the job is \(current.state.rawValue); only failed, cancelled and expired jobs can be retried")
        }
        guard let state = try await broker({ try await api.broker.retry(id) }) else { throw notFound(id) }
        guard state == .queued || state == .waiting else {
            if state == .cancelled, let error = current.error, error.hasPrefix("dependency ") {
                throw Problem(.conflict, "not_retryable", "the job was cancelled because a job it depends on did not succeed (\(error)): retry that job, and this one follows")
            }
            throw Problem(.conflict, "not_retryable", "the job is \(state.rawValue); only failed, cancelled and expired jobs can be retried")
        }
        return try JSONResponse.make(["id": id.rawValue, "state": state.rawValue])
    }
}

/// `?wait=<seconds>`, cut to the configured cap; 0 when absent.
private func waitSeconds(_ request: Request, _ api: APIContext) throws -> Double {
    guard let text = request.uri.queryParameters.get("wait") else { return 0 }
    guard let seconds = Double(text), seconds.isFinite, seconds >= 0 else {
        throw Problem(.badRequest, "invalid_wait", "wait must be a number of seconds from 0 to \(api.configuration.maxWaitSeconds)")
    }
    return min(seconds, Double(api.configuration.maxWaitSeconds))
}

/// Follows a job for `?wait=` and event streams: reads it, then waits for Redis to publish a change
/// of it (see ``JobNotifier``), at most ``JobWatch/safetyPause`` before reading again anyway. When
/// changes are not pushed, it polls with a growing pause (5 ms to 250 ms) instead.
struct JobWatch {
    /// The longest wait for a pushed change before the job is read again: covers the changes that
    /// are not published (a claim) and any message lost in between.
    static let safetyPause = Duration.seconds(1)

    let id: JobID
    let broker: any JobBroker
    let notifier: JobNotifier
    private var pauseLength = Duration.milliseconds(5)
    private var ticket: JobNotifier.Ticket?

    init(id: JobID, api: APIContext) {
        self.id = id
        self.broker = api.broker
        self.notifier = api.notifier
    }

    /// The job now, `nil` once it is gone. A change published from now on ends the next ``pause(until:)``.
    mutating func read() async throws -> JobRecord? {
        ticket = notifier.arm(id)
        return try await broker.job(id)
    }

    /// The job now; 404 once it is gone.
    mutating func next() async throws -> JobRecord {
        let broker = self.broker
        ticket = notifier.arm(id)
        guard let record = try await API.broker({ try await broker.job(id) }) else { throw notFound(id) }
        return record
    }

    /// Waits for the next change (or the next poll), but not past `deadline`.
    mutating func pause(until deadline: ContinuousClock.Instant = .now + .seconds(3600)) async throws {
        if let ticket {
            self.ticket = nil
            await notifier.wait(ticket, until: min(deadline, .now + Self.safetyPause))
            try Task.checkCancellation()
            return
        }
        try await Task.sleep(for: max(.zero, min(pauseLength, deadline - .now)))
        pauseLength = min(pauseLength * 2, .milliseconds(250))
    }

    /// Starts the polling pauses again from the shortest, after a change.
    mutating func changed() { pauseLength = .milliseconds(5) }
}

private func enqueue(_ request: Request, _ context: APIRequestContext, _ api: APIContext) async throws -> Response {
    let grant = try await refusingEarly(request, context, api) { try context.require(.enqueue) }
    let bytes = try await readJSONBody(request, context, api)
    var enqueueRequest = try await EnqueueBody.parse(
        bytes, tasks: api.tasks, idempotencyKey: request.headers[.init("Idempotency-Key")!])
    try checkGrant(grant, enqueueRequest)
    try await prepare(&enqueueRequest, api)
    let receipt = try await broker { try await api.broker.enqueue([enqueueRequest])[0] }
    if receipt.refused { throw Problem.queueFull(enqueueRequest.queue) }
    if receipt.keyReused, let key = enqueueRequest.idempotencyKey {
        throw Problem.idempotencyKeyReused(key, job: receipt.id, pointer: "/idempotency_key")
    }
    if receipt.created { api.metrics.enqueued(task: enqueueRequest.task) }
    // Written by hand: this is the hot path, and ids and states need no escaping.
    let id = receipt.id.rawValue
    let state = receipt.state.map { "\"\($0.rawValue)\"" } ?? "null"
    let unique = receipt.duplicate ? #","unique":"duplicate""# : receipt.debounced ? #","unique":"debounced""# : ""
    let json = #"{"created":\#(receipt.created),"id":"\#(id)","links":{"self":"/v1/jobs/\#(id)"},"state":\#(state)\#(unique)}"#
    return Response(
        status: receipt.created ? .created : .ok,
        headers: [.contentType: "application/json", .location: "/v1/jobs/\(id)"],
        body: .init(byteBuffer: ByteBuffer(string: json)))
}

/// 403 unless the caller's grant covers the job's task and queue.
func checkGrant(_ grant: TokenGrant, _ request: EnqueueRequest, pointer: String = "") throws(Problem) {
    guard grant.mayEnqueue(task: request.task, queue: request.queue) else {
        let field = grant.tasks?.contains(request.task) == false ? "/task" : "/queue"
        throw Problem(.forbidden, "forbidden", "this token may not enqueue task '\(request.task)' to queue '\(request.queue.rawValue)'",
            errors: [.init(pointer: pointer + field, message: "not allowed for this token")])
    }
}

/// `POST /v1/jobs/batch`: `{"jobs": [job, ...]}` with 1 to 1,000 jobs, each shaped like the body
/// of `POST /v1/jobs` plus an optional `idempotency_key`. Each job is validated on its own; the
/// valid ones are enqueued together. The answer is 200 with one result per job, in order: its
/// `id`, `state` and `created`, or its `error` (a problem document without the HTTP envelope).
private func enqueueBatch(_ request: Request, _ context: APIRequestContext, _ api: APIContext) async throws -> Response {
    let grant = try await refusingEarly(request, context, api) { try context.require(.enqueue) }
    let bytes = try await readJSONBody(request, context, api)
    let body = try EnqueueBody.parseObject(bytes)
    let object = body.object
    guard object.keys.allSatisfy({ $0 == "jobs" }), case .array(let items)? = object["jobs"],
        let itemRanges = body.members["jobs"].flatMap({ JSONSlices.elements(body.bytes, in: $0) }),
        itemRanges.count == items.count, (1...1000).contains(items.count)
    else {
        throw Problem(.unprocessableContent, "invalid_request", "the body must be {\"jobs\": [...]} with 1 to 1000 jobs",
            errors: [.init(pointer: "/jobs", message: "expected an array of 1 to 1000 job objects")])
    }
    let names = items.compactMap { item -> String? in
        guard case .object(let fields) = item, case .string(let name)? = fields["task"] else { return nil }
        return name
    }
    let registry = try await api.tasks.registry(for: names)
    var outcomes: [Result<EnqueueRequest, Problem>] = []
    for (index, (item, itemRange)) in zip(items, itemRanges).enumerated() {
        guard case .object(let fields) = item, let members = JSONSlices.members(body.bytes, in: itemRange) else {
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
            let parsed = try EnqueueBody.parse(
                object: fields, input: body.slice(members["input"]), registry: registry, idempotencyKey: key, pointerPrefix: "/jobs/\(index)",
                extraFields: ["idempotency_key"])
            try checkGrant(grant, parsed, pointer: "/jobs/\(index)")
            return parsed
        })
    }
    for index in outcomes.indices {
        guard case .success(var parsed) = outcomes[index] else { continue }
        do throws(Problem) {
            try await prepare(&parsed, api, pointer: "/jobs/\(index)")
            outcomes[index] = .success(parsed)
        } catch {
            outcomes[index] = .failure(error)
        }
    }
    let valid = outcomes.compactMap { try? $0.get() }
    let receipts = try await broker { try await api.broker.enqueue(valid) }
    guard receipts.count == valid.count else {
        throw Problem.unavailable(RedisError.protocolError("the store returned \(receipts.count) receipts for \(valid.count) jobs"))
    }
    for (request, receipt) in zip(valid, receipts) where receipt.created { api.metrics.enqueued(task: request.task) }
    var next = receipts.makeIterator()
    let results: [[String: Any]] = outcomes.enumerated().map { index, outcome in
        switch outcome {
        case .success(let request):
            guard let receipt = next.next() else { return ["index": index] }
            if receipt.refused { return ["index": index, "error": problemObject(Problem.queueFull(request.queue))] }
            if receipt.keyReused, let key = request.idempotencyKey {
                let problem = Problem.idempotencyKeyReused(key, job: receipt.id, pointer: "/jobs/\(index)/idempotency_key")
                return ["index": index, "error": problemObject(problem)]
            }
            var result: [String: Any] = [
                "index": index, "id": receipt.id.rawValue, "state": JSONResponse.orNull(receipt.state?.rawValue),
                "created": receipt.created,
            ]
            if receipt.duplicate { result["unique"] = "duplicate" }
            if receipt.debounced { result["unique"] = "debounced" }
            return result
        case .failure(let problem):
            return ["index": index, "error": problemObject(problem)]
        }
    }
    let refused = receipts.filter(\.refused).count
    let enqueued = valid.count - refused - receipts.filter(\.keyReused).count
    var response = try JSONResponse.make(["results": results, "enqueued": enqueued, "rejected": outcomes.count - enqueued])
    if refused > 0 { response.headers[.retryAfter] = String(Problem.queueFullRetryAfter) }
    return response
}

/// A job's error in a batch answer: a problem document without the HTTP envelope.
private func problemObject(_ problem: Problem) -> [String: Any] {
    var object: [String: Any] = [
        "status": Int(problem.status.code), "code": problem.code, "detail": problem.detail,
        "errors": problem.errors.map { ["pointer": $0.pointer, "message": $0.message] },
    ]
    if let job = problem.job { object["job"] = job.rawValue }
    return object
}
