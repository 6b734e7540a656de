import Broker
import Foundation
import Hummingbird
import TernCore

/// `/v1/queues/{queue}/limits`: a queue's rate and concurrency limits (docs/limits.md). `GET`
/// lists them; `PUT` sets an operator's limit on one scope (it wins over what workers declared);
/// `DELETE` removes an operator's setting, so the declared limit applies again.
func addLimitRoutes(_ router: Router<APIRequestContext>, _ api: APIContext) {
    let limits = router.group("v1/queues/:queue/limits")
    limits.get { _, context in
        try context.require(.read)
        let queue = try queueName(context)
        return try JSONResponse.make(["queue": queue.rawValue, "limits": try await broker { try await api.broker.limits(queue) }.map(LimitView.object)])
    }
    limits.put { request, context in
        // A refused request's body is read and dropped first, as on every route with a body.
        let queue = try await refusingEarly(request, context, api) {
            try context.require(.operate)
            return try queueName(context)
        }
        let bytes = try await readJSONBody(request, context, api)
        let (scope, limit) = try LimitView.parse(try EnqueueBody.parseObject(bytes).object)
        try await broker { try await api.broker.setLimit(.some(limit), scope: scope, queue: queue, declared: false) }
        return try JSONResponse.make(["queue": queue.rawValue, "limits": try await broker { try await api.broker.limits(queue) }.map(LimitView.object)])
    }
    limits.delete { request, context in
        try context.require(.operate)
        let queue = try queueName(context)
        let scope = try LimitView.scope(request.uri.queryParameters.get("scope"), task: request.uri.queryParameters.get("task"))
        try await broker { try await api.broker.setLimit(nil, scope: scope, queue: queue, declared: false) }
        if request.uri.queryParameters.get("declared") == "true" {
            try await broker { try await api.broker.setLimit(nil, scope: scope, queue: queue, declared: true) }
        }
        return try JSONResponse.make(["queue": queue.rawValue, "limits": try await broker { try await api.broker.limits(queue) }.map(LimitView.object)])
    }
}

/// The JSON of limits: `{"rate": {"count", "per_ms"} | null, "burst", "concurrency" | null}`,
/// and of a queue's scope: `{"scope": "queue" | "task" | "key", "task", "declared", "set",
/// "effective"}` (`set` is `"none"` when an operator lifted the limit).
enum LimitView {
    static func limit(_ limit: JobLimit?) -> Any {
        guard let limit else { return NSNull() }
        var object: [String: Any] = ["burst": limit.burst, "concurrency": JSONResponse.orNull(limit.concurrency)]
        object["rate"] = limit.rate.map { ["count": $0.count, "per_ms": $0.period.nanoseconds / 1_000_000] as [String: Any] } ?? NSNull()
        return object
    }

    static func object(_ entry: QueueLimit) -> [String: Any] {
        let kind = switch entry.scope {
        case .queue: "queue"
        case .task: "task"
        case .perKey: "key"
        }
        var object: [String: Any] = ["scope": kind, "task": JSONResponse.orNull(entry.scope.task)]
        object["declared"] = limit(entry.declared)
        object["set"] = entry.set.map { $0.map { limit($0) } ?? "none" } ?? NSNull()
        object["effective"] = limit(entry.effective)
        return object
    }

    /// The scope of `scope` (`queue`, `task`, `key`) and `task`.
    static func scope(_ scope: String?, task: String?) throws(Problem) -> LimitScope {
        func refuse(_ pointer: String, _ message: String) -> Problem {
            Problem(.unprocessableContent, "invalid_limit", "the limit request has 1 problem(s)", errors: [.init(pointer: pointer, message: message)])
        }
        switch (scope, task) {
        case ("queue"?, nil): return .queue
        case ("task"?, let name?) where TaskRegistry.isValidName(name): return .task(name)
        case ("key"?, let name?) where TaskRegistry.isValidName(name): return .perKey(name)
        case ("task"?, _), ("key"?, _): throw refuse("/task", "a task's name is required with scope task or key")
        case ("queue"?, _?): throw refuse("/task", "scope queue takes no task")
        default: throw refuse("/scope", "must be queue, task or key")
        }
    }

    /// `{"scope", "task", "rate": {"count", "per_ms"}, "burst", "concurrency"}` or, to lift the
    /// limit, `{"scope", "task", "none": true}`.
    static func parse(_ object: [String: JSONValue]) throws(Problem) -> (LimitScope, JobLimit?) {
        var errors: [Problem.FieldError] = []
        for key in object.keys.sorted() where !["scope", "task", "rate", "burst", "concurrency", "none"].contains(key) {
            errors.append(.init(pointer: "/\(key)", message: "unknown field"))
        }
        func text(_ key: String) -> String? { if case .string(let value)? = object[key] { value } else { nil } }
        func whole(_ value: JSONValue?) -> Int? {
            guard case .number(let number)? = value, number.rounded() == number, abs(number) < 9e15 else { return nil }
            return Int(number)
        }
        let scope: LimitScope?
        do throws(Problem) { scope = try Self.scope(text("scope"), task: text("task")) } catch { errors += error.errors; scope = nil }
        if object["none"] == .bool(true) {
            if object["rate"] != nil || object["concurrency"] != nil || object["burst"] != nil {
                errors.append(.init(pointer: "/none", message: "none lifts the limit: give no rate, burst or concurrency with it"))
            }
            guard errors.isEmpty, let scope else { throw invalid(errors) }
            return (scope, nil)
        }
        var limit = JobLimit()
        if let rate = object["rate"] {
            if case .object(let members) = rate, let count = whole(members["count"]), let per = whole(members["per_ms"]), count > 0, per > 0,
                members.keys.allSatisfy({ $0 == "count" || $0 == "per_ms" })
            {
                limit.rate = .init(count: count, period: .milliseconds(per))
            } else {
                errors.append(.init(pointer: "/rate", message: "must be {\"count\": jobs, \"per_ms\": milliseconds}, both whole numbers above 0"))
            }
        }
        if let burst = object["burst"] {
            if let value = whole(burst) { limit.burst = value } else { errors.append(.init(pointer: "/burst", message: "must be a whole number")) }
        }
        if let concurrency = object["concurrency"] {
            if let value = whole(concurrency) { limit.concurrency = value } else {
                errors.append(.init(pointer: "/concurrency", message: "must be a whole number"))
            }
        }
        if errors.isEmpty, let problem = limit.problem { errors.append(.init(pointer: "", message: problem)) }
        guard errors.isEmpty, let scope else { throw invalid(errors) }
        return (scope, limit)
    }

    private static func invalid(_ errors: [Problem.FieldError]) -> Problem {
        Problem(.unprocessableContent, "invalid_limit", "the limit request has \(errors.count) problem(s)", errors: errors)
    }
}
