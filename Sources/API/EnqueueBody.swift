import Broker
import Foundation
import Hummingbird
import TernCore

/// The body of `POST /v1/jobs`, checked field by field so every problem is reported with its
/// JSON pointer:
///
/// ```json
/// {"task": "resize", "input": {"url": "…", "width": 100}, "queue": "images", "priority": 7,
///  "max_attempts": 5, "delay_ms": 1000, "expires_after_ms": 60000,
///  "unique": {"mode": "until", "window_ms": 60000}, "unique_key": "customer-42"}
/// ```
/// `delay_ms` and `run_at_ms` (milliseconds since 1970) exclude each other. The
/// `Idempotency-Key` header maps repeats to one job for 24 hours. `unique` overrides the task's
/// ``UniquePolicy`` (`key_fields` too); `unique_key` gives the key itself (under the task's rule,
/// else `while_active`). `headers` is an object of strings that travels with the job
/// (``JobHeaders``).
struct EnqueueBody {
    /// The latest `run_at_ms`: 9999-12-31T23:59:59.999Z, the last time ISO 8601 timestamps can show.
    static let maxRunAtMilliseconds = 253_402_300_799_999
    /// The longest `expires_after_ms`: 100 years.
    static let maxExpiresAfterMilliseconds = 3_155_760_000_000

    static let fields: Set<String> = [
        "task", "input", "queue", "priority", "max_attempts", "delay_ms", "run_at_ms", "expires_after_ms", "unique",
        "unique_key", "depends_on", "on_dependency_failure", "headers", "limit_key",
    ]

    /// Parses and validates a request body into a broker request, against the tasks of `tasks`.
    static func parse(_ bytes: Data, tasks: TaskDirectory, idempotencyKey: String?) async throws(Problem) -> EnqueueRequest {
        let body = try parseObject(bytes)
        var task: String?
        if case .string(let name)? = body.object["task"] { task = name }
        let registry = try await tasks.registry(for: task)
        return try parse(
            object: body.object, input: body.slice(body.members["input"]), registry: registry, idempotencyKey: idempotencyKey,
            pointerPrefix: "")
    }

    /// A parsed body: a typed view of its envelope (JSONValue keeps Booleans and numbers apart;
    /// `input` values are left out as `null`), and where each member's bytes are, so that inputs are
    /// stored exactly as sent.
    struct Body {
        let bytes: [UInt8]
        let object: [String: JSONValue]
        let members: [String: Range<Int>]

        /// The bytes of `range`, if any.
        func slice(_ range: Range<Int>?) -> Data? { range.map { Data(bytes[$0]) } }
    }

    /// Parses a body that must be a JSON object (400 for malformed JSON, 422 for another value).
    static func parseObject(_ data: Data) throws(Problem) -> Body {
        guard !data.isEmpty else { throw Problem(.badRequest, "empty_body", "the request body is empty") }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw Problem(.badRequest, "malformed_json", "the body is not valid JSON")
        }
        let bytes = [UInt8](data)
        guard let raw = parsed as? [String: Any], let members = JSONSlices.members(bytes, in: bytes.indices) else {
            throw Problem(.unprocessableContent, "invalid_request", "the body must be a JSON object",
                errors: [.init(pointer: "", message: "expected an object")])
        }
        return Body(bytes: bytes, object: envelope(raw), members: members)
    }

    /// A job object's members as typed values, with `input` (and each job's input in `jobs`) as a
    /// `null` placeholder: only its presence matters here, its bytes are validated by the task's type.
    static func envelope(_ raw: [String: Any]) -> [String: JSONValue] {
        var object: [String: JSONValue] = [:]
        for (key, value) in raw {
            switch (key, value) {
            case ("input", _): object[key] = .null
            case ("jobs", let items as [Any]):
                object[key] = .array(items.map { ($0 as? [String: Any]).map { .object(envelope($0)) } ?? JSONValue(foundation: $0) })
            default: object[key] = JSONValue(foundation: value)
            }
        }
        return object
    }

    /// Validates one job object; field pointers start with `pointerPrefix` (`/jobs/3` in a batch).
    static func parse(
        object: [String: JSONValue], input: Data?, registry: TaskRegistry, idempotencyKey: String?,
        pointerPrefix: String, extraFields: Set<String> = [], inputIsMade: Bool = false
    ) throws(Problem) -> EnqueueRequest {
        var errors: [Problem.FieldError] = []
        for key in object.keys.sorted() where !fields.contains(key) && !extraFields.contains(key) {
            errors.append(.init(pointer: "/\(escape(key))", message: "unknown field"))
        }
        var task: String?
        if case .string(let name)? = object["task"] { task = name }
        if task == nil { errors.append(.init(pointer: "/task", message: object["task"] == nil ? "missing" : "must be a string")) }
        if object["input"] == nil && !inputIsMade { errors.append(.init(pointer: "/input", message: "missing")) }
        let entry = task.flatMap { registry[$0] }
        if let task, entry == nil {
            errors.append(.init(pointer: "/task", message: "unknown task '\(task.prefix(128))'"))
        }
        var options = entry?.options ?? TaskOptions()
        if let queue = object["queue"] {
            if case .string(let text) = queue, let name = QueueName(text) {
                options.queue = name
            } else {
                errors.append(.init(pointer: "/queue", message: "must be 1-64 characters of a-z 0-9 _ -, starting with a letter or digit"))
            }
        }
        if let priority = object["priority"] {
            if let value = integer(priority), (0...9).contains(value) { options.priority = value } else {
                errors.append(.init(pointer: "/priority", message: "must be a whole number from 0 to 9"))
            }
        }
        if let attempts = object["max_attempts"] {
            if let value = integer(attempts), (1...100).contains(value) { options.maxAttempts = value } else {
                errors.append(.init(pointer: "/max_attempts", message: "must be a whole number from 1 to 100"))
            }
        }
        var timing = EnqueueRequest.Timing.now
        switch (object["delay_ms"], object["run_at_ms"]) {
        case (let delay?, nil):
            if let value = integer(delay), (0...31_536_000_000).contains(value) { timing = .after(.milliseconds(value)) } else {
                errors.append(.init(pointer: "/delay_ms", message: "must be a whole number of milliseconds from 0 to one year"))
            }
        case (nil, let runAt?):
            if let value = integer(runAt), (0...maxRunAtMilliseconds).contains(value) { timing = .at(milliseconds: Int64(value)) } else {
                errors.append(.init(pointer: "/run_at_ms", message: "must be milliseconds since 1970, up to the end of year 9999"))
            }
        case (_?, _?):
            errors.append(.init(pointer: "/run_at_ms", message: "give delay_ms or run_at_ms, not both"))
        case (nil, nil):
            break
        }
        if let expires = object["expires_after_ms"] {
            if let value = integer(expires), (0...maxExpiresAfterMilliseconds).contains(value) { options.expiresAfter = .milliseconds(value) } else {
                errors.append(.init(pointer: "/expires_after_ms", message: "must be a whole number of milliseconds from 0 to 100 years"))
            }
        }
        var uniqueKey: String?
        if let value = object["unique_key"] {
            if case .string(let text) = value, (1...255).contains(text.utf8.count) { uniqueKey = text } else {
                errors.append(.init(pointer: "/unique_key", message: "must be a string of 1 to 255 bytes"))
            }
        }
        if let value = object["unique"] {
            switch uniquePolicy(value) {
            case .policy(let policy): options.unique = policy
            case .problem(let error): errors.append(error)
            }
        }
        var dependencies: JobDependencies?
        if let value = object["depends_on"] {
            var parents: [JobID] = []
            if case .array(let items) = value, (1...JobDependencies.maxParents).contains(items.count) {
                for (index, item) in items.enumerated() {
                    if case .string(let text) = item, let id = JobID(text) { parents.append(id) } else {
                        errors.append(.init(pointer: "/depends_on/\(index)", message: "must be a job id"))
                    }
                }
            } else {
                errors.append(.init(pointer: "/depends_on", message: "must be an array of 1 to \(JobDependencies.maxParents) job ids"))
            }
            dependencies = JobDependencies(parents: parents)
        }
        if let value = object["on_dependency_failure"] {
            if case .string(let text) = value, let policy = JobDependencies.OnFailure(rawValue: text), dependencies != nil {
                dependencies?.onFailure = policy
            } else {
                errors.append(.init(pointer: "/on_dependency_failure", message: "must be cancel or run, with depends_on"))
            }
        }
        if dependencies != nil {
            let excluded = ["delay_ms", "run_at_ms", "expires_after_ms", "unique", "unique_key"].filter { object[$0] != nil }
            if !excluded.isEmpty || idempotencyKey != nil {
                errors.append(.init(pointer: "/depends_on",
                    message: "a job with depends_on takes no " + (excluded + (idempotencyKey != nil ? ["Idempotency-Key"] : [])).joined(separator: ", ")))
            }
        }
        var limitKey: String?
        if let value = object["limit_key"] {
            if case .string(let text) = value, JobLimit.isValidKey(text) { limitKey = text } else {
                errors.append(.init(pointer: "/limit_key", message: "must be a string of 1 to \(JobLimit.maxKeyBytes) bytes without control characters"))
            }
        }
        var headers: [String: String] = [:]
        if let value = object["headers"] {
            if case .object(let members) = value {
                for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                    if case .string(let text) = member { headers[name] = text } else {
                        errors.append(.init(pointer: "/headers/\(escape(name))", message: "must be a string"))
                    }
                }
                if let problem = JobHeaders.problem(headers) { errors.append(.init(pointer: "/headers", message: problem)) }
            } else {
                errors.append(.init(pointer: "/headers", message: "must be an object of strings"))
            }
        }
        var inputData = Data()
        if inputIsMade {
            inputData = Data("null".utf8)
        } else if let entry, let input {
            do {
                inputData = input
                try entry.validate(inputData)
            } catch let error as DecodingError {
                errors.append(Problem.FieldError(error, under: "/input"))
            } catch {
                errors.append(.init(pointer: "/input", message: "cannot be read"))
            }
        }
        if let idempotencyKey, idempotencyKey.isEmpty || idempotencyKey.utf8.count > 255 {
            errors.append(.init(pointer: "", message: "the Idempotency-Key header must be 1-255 bytes"))
        }
        guard errors.isEmpty, let task else {
            let located = errors.map { Problem.FieldError(pointer: pointerPrefix + $0.pointer, message: $0.message) }
            // A task nobody knows is its own code: a client retries it only after a deploy.
            let code = task != nil && entry == nil ? "unknown_task" : "invalid_request"
            throw Problem(.unprocessableContent, code, "the job request has \(errors.count) problem(s)", errors: located)
        }
        var request = EnqueueRequest(task: task, input: inputData, options: options, timing: timing, idempotencyKey: idempotencyKey)
        request.dependencies = dependencies
        request.headers = headers
        if let limitKey { request.limitKey = limitKey }
        if let uniqueKey {
            request.unique = UniqueLock(key: UniquePolicy.key(task: task, explicit: uniqueKey), mode: options.unique?.mode ?? .whileActive)
        }
        return request
    }

    /// A parsed `unique` member, or what is wrong with it.
    private enum UniqueField {
        case policy(UniquePolicy)
        case problem(Problem.FieldError)
    }

    /// `{"mode": "while_active" | "until" | "debounce", "window_ms": 1…30 days (until and debounce),
    /// "key_fields": ["member", …]}`.
    private static func uniquePolicy(_ value: JSONValue) -> UniqueField {
        guard case .object(let members) = value else { return .problem(.init(pointer: "/unique", message: "must be an object")) }
        if let extra = members.keys.sorted().first(where: { !["mode", "window_ms", "key_fields"].contains($0) }) {
            return .problem(.init(pointer: "/unique/\(escape(extra))", message: "unknown field"))
        }
        let maxWindow = Int(UniquePolicy.maxWindow.components.seconds * 1000)
        var window: Int64?
        if let raw = members["window_ms"] {
            guard let value = integer(raw), (1...maxWindow).contains(value) else {
                return .problem(.init(pointer: "/unique/window_ms", message: "must be a whole number of milliseconds from 1 to 30 days"))
            }
            window = Int64(value)
        }
        guard case .string(let name)? = members["mode"], let mode = UniquePolicy.Mode(name: name, windowMilliseconds: window) else {
            return .problem(.init(pointer: "/unique/mode",
                message: "must be while_active, or until or debounce with window_ms"))
        }
        var fields: [String] = []
        if let raw = members["key_fields"] {
            guard case .array(let items) = raw, items.count <= UniquePolicy.maxKeyFields else {
                return .problem(.init(pointer: "/unique/key_fields", message: "must be an array of at most \(UniquePolicy.maxKeyFields) member names"))
            }
            for (index, item) in items.enumerated() {
                guard case .string(let field) = item, !field.isEmpty else {
                    return .problem(.init(pointer: "/unique/key_fields/\(index)", message: "must be a member name"))
                }
                fields.append(field)
            }
        }
        return .policy(UniquePolicy(mode, keyFields: fields))
    }

    /// A whole number from a JSON number (not a Boolean, not a fraction).
    private static func integer(_ value: JSONValue) -> Int? {
        guard case .number(let double) = value, double.rounded() == double, abs(double) < 9e15 else { return nil }
        return Int(double)
    }

    private static func escape(_ key: String) -> String {
        String(key.prefix(64)).replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}

extension JSONValue {
    /// The value of a `JSONSerialization` object; Booleans are the numbers of type `c`.
    init(foundation value: Any) {
        switch value {
        case let number as NSNumber:
            self = String(cString: number.objCType) == "c" ? .bool(number.boolValue) : .number(number.doubleValue)
        case let text as String: self = .string(text)
        case let items as [Any]: self = .array(items.map(JSONValue.init(foundation:)))
        case let fields as [String: Any]: self = .object(fields.mapValues(JSONValue.init(foundation:)))
        default: self = .null
        }
    }
}
