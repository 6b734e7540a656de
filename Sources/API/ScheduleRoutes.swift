import Broker
import Foundation
import Hummingbird
import Scheduler
import Tracing
import TernCore

/// `/v1/schedules`: list, read, create or replace, delete, pause and resume schedules. Schedules
/// of the config file are listed (`source: config`) but changed only in the file.
func addScheduleRoutes(_ router: Router<APIRequestContext>, _ api: APIContext) {
    let schedules = router.group("v1/schedules")
    schedules.get { _, context in
        try context.require(.read)
        let stored = try await broker { try await api.scheduleStore.all() }
        let configured = Set(api.configuredSchedules.map(\.name))
        let all = api.configuredSchedules.map { ($0, "config") } + stored.filter { !configured.contains($0.name) }.map { ($0, "api") }
        var objects: [[String: Any]] = []
        for (definition, source) in all { objects.append(try await scheduleObject(definition, source: source, api)) }
        return try JSONResponse.make(["schedules": objects])
    }
    schedules.get(":name") { _, context in
        try context.require(.read)
        let (definition, source) = try await find(try scheduleName(context), api)
        return try await JSONResponse.make(scheduleObject(definition, source: source, api))
    }
    schedules.put(":name") { request, context in
        let name = try await refusingEarly(request, context, api) {
            try context.require(.operate)
            return try await changeable(try scheduleName(context), api)
        }
        let definition = try parseDefinition(try await readJSONBody(request, context, api), name: name)
        try await check(definition, api)
        let created = try await broker { try await api.scheduleStore.put(definition) }
        return try await JSONResponse.make(scheduleObject(definition, source: "api", api), status: created ? .created : .ok)
    }
    schedules.delete(":name") { _, context in
        try context.require(.operate)
        let name = try await changeable(try scheduleName(context), api)
        guard try await broker({ try await api.scheduleStore.delete(name) }) else { throw noSchedule(name) }
        return Response(status: .noContent)
    }
    schedules.post(":name/run") { _, context in
        try context.require(.operate)
        let (definition, _) = try await find(try scheduleName(context), api)
        return try await runNow(definition, api)
    }
    for (action, enabled) in [("pause", false), ("resume", true)] {
        schedules.post(":name/\(action)") { _, context in
            try context.require(.operate)
            let name = try await changeable(try scheduleName(context), api)
            guard let definition = try await broker({ try await api.scheduleStore.update(name) { $0.enabled = enabled } }) else {
                throw noSchedule(name)
            }
            return try await JSONResponse.make(scheduleObject(definition, source: "api", api))
        }
    }
}

/// `POST /v1/schedules/{name}/run`: enqueues the schedule's job now, paused or not, with no jitter.
/// On Redis the job is the schedule's (its `schedule` and, as its tick, the time it was run) and
/// becomes its last run; the schedule's own ticks go on as before. With overlap `skip`, a schedule
/// whose last job has not finished is a 409 naming that job. 201 with the job, as `POST /v1/jobs`.
private func runNow(_ definition: ScheduleDefinition, _ api: APIContext) async throws -> Response {
    let (schedule, registry) = try await check(definition, api)
    guard var request = schedule.request(registry: registry, jittered: false) else {
        throw Problem(.unprocessableContent, "invalid_schedule", "unknown task '\(schedule.task)'")
    }
    // The job's runs join the request's trace, as for POST /v1/jobs.
    if let context = ServiceContext.current { request.headers = JobTracing.headers(request.headers, tracing: context) }
    let id: JobID
    var state = JobState.queued  // due now, with no jitter
    if let redis = api.broker as? RedisJobBroker {
        switch try await broker({ try await redis.runSchedule(schedule.name, skipIfRunning: schedule.skipIfRunning, request: request) }) {
        case .emitted(let emitted):
            id = emitted
        case .overlapped(let last), .duplicate(let last):
            var problem = Problem(.conflict, "schedule_overlap",
                "schedule '\(schedule.name)' has overlap 'skip' and its last job \(last?.rawValue ?? "") has not finished")
            problem.job = last
            throw problem
        }
    } else {
        // A broker without schedules (the memory broker): a plain job.
        let receipt = try await broker { try await api.broker.enqueue([request])[0] }
        if receipt.refused { throw Problem.queueFull(request.queue) }
        id = receipt.id
        state = receipt.state ?? .queued
    }
    api.metrics.enqueued(task: request.task)
    return try JSONResponse.make(
        ["created": true, "id": id.rawValue, "links": ["self": "/v1/jobs/\(id)"], "state": state.rawValue],
        status: .created, headers: [.location: "/v1/jobs/\(id)"])
}

private func scheduleName(_ context: APIRequestContext) throws -> String {
    let name = context.parameters.get("name") ?? ""
    guard TaskRegistry.isValidName(name) else {
        throw Problem(.unprocessableContent, "invalid_schedule", "schedule names are 1-128 characters of a-z A-Z 0-9 . _ -")
    }
    return name
}

private func noSchedule(_ name: String) -> Problem {
    Problem(.notFound, "not_found", "no schedule is named '\(name)'")
}

private func find(_ name: String, _ api: APIContext) async throws -> (ScheduleDefinition, String) {
    if let configured = api.configuredSchedules.first(where: { $0.name == name }) { return (configured, "config") }
    guard let stored = try await broker({ try await api.scheduleStore.get(name) }) else { throw noSchedule(name) }
    return (stored, "api")
}

/// `name`, unless the config file defines it (409: change it there).
private func changeable(_ name: String, _ api: APIContext) async throws -> String {
    guard !api.configuredSchedules.contains(where: { $0.name == name }) else {
        throw Problem(.conflict, "schedule_in_config", "schedule '\(name)' is defined in the config file; change it there")
    }
    return name
}

private let definitionFields: Set<String> = [
    "name", "task", "input", "cron", "timezone", "every_seconds", "queue", "priority", "jitter_seconds", "enabled",
    "catch_up", "catch_up_limit", "overlap", "max_attempts", "expires_after_seconds", "headers",
]

/// Decodes a definition, naming each problem by JSON pointer.
private func parseDefinition(_ bytes: Data, name: String) throws -> ScheduleDefinition {
    guard !bytes.isEmpty else { throw Problem(.badRequest, "empty_body", "the request body is empty") }
    let parsed: Any
    do {
        parsed = try JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed])
    } catch {
        throw Problem(.badRequest, "malformed_json", "the body is not valid JSON")
    }
    guard var object = parsed as? [String: Any] else {
        throw Problem(.unprocessableContent, "invalid_schedule", "the body must be a JSON object",
            errors: [.init(pointer: "", message: "expected an object")])
    }
    let unknown = object.keys.filter { !definitionFields.contains($0) }.sorted()
    guard unknown.isEmpty else {
        throw Problem(.unprocessableContent, "invalid_schedule", "the schedule has unknown fields",
            errors: unknown.prefix(20).map { .init(pointer: "/" + $0.prefix(64), message: "unknown field") })
    }
    if let given = object["name"], (given as? String) != name {
        throw Problem(.unprocessableContent, "invalid_schedule", "name must match the path",
            errors: [.init(pointer: "/name", message: "must be '\(name)' or absent")])
    }
    object["name"] = name
    do {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.fragmentsAllowed])
        return try JSONDecoder().decode(ScheduleDefinition.self, from: data)
    } catch let error as DecodingError {
        throw Problem(.unprocessableContent, "invalid_schedule", "the schedule is invalid", errors: [.init(error, under: "")])
    }
}

/// 422 unless the definition makes a schedule that fits a task compiled into this process or
/// published by a worker (schedulers read the catalogues too); 503 while the catalogues were never
/// read. Returns the schedule the definition makes and the tasks it was checked against.
@discardableResult
private func check(_ definition: ScheduleDefinition, _ api: APIContext) async throws -> (Schedule, TaskRegistry) {
    let registry = try await api.tasks.registry(for: definition.task)
    do {
        let schedule = try definition.schedule()
        try schedule.validate(against: registry)
        return (schedule, registry)
    } catch {
        throw Problem(.unprocessableContent, "invalid_schedule", String(error.description.prefix(500)))
    }
}

/// The queue a schedule's jobs go to, where its mark and last run are kept: its own, else its
/// task's. For a task known only from a catalogue no worker published in the last 15 minutes, the
/// queue of the last catalogue stored, as the schedulers read it.
private func scheduleQueue(_ definition: ScheduleDefinition, _ api: APIContext) async throws -> QueueName {
    if let queue = definition.queue.flatMap(QueueName.init) { return queue }
    if let entry = api.registry[definition.task] { return entry.options.queue }
    if let entry = await api.tasks.current().registry[definition.task] { return entry.options.queue }
    guard let store = api.broker as? any TaskCatalogueStore else { return .default }
    let seen = try await broker { try await store.catalogues(seenSince: 0) }
    return seen.lazy.flatMap(\.catalogue.tasks).first { $0.name == definition.task }?.queue ?? .default
}

private func scheduleObject(_ definition: ScheduleDefinition, source: String, _ api: APIContext) async throws -> [String: Any] {
    let data = (try? JSONEncoder().encode(definition)) ?? Data("{}".utf8)
    var object = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    for key in definitionFields where object[key] == nil { object[key] = NSNull() }
    object["enabled"] = definition.enabled ?? true
    object["source"] = source
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    let upcoming = (try? definition.schedule())?.upcoming(after: now, count: 5) ?? []
    object["next_runs"] = upcoming.map(JobView.timestamp)
    let queue = try await scheduleQueue(definition, api)
    let progress = try await broker { try await api.scheduleStore.progress(definition.name, queue: queue) }
    if let tick = progress.lastTick, let job = progress.lastJob {
        object["last_run"] = ["tick_at": JobView.timestamp(tick), "job": job]
    } else {
        object["last_run"] = NSNull()
    }
    object["mark_at"] = progress.markMilliseconds.map(JobView.timestamp) ?? NSNull()
    return object
}
