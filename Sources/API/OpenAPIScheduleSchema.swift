import Foundation
import TernCore

/// The body of `PUT /v1/schedules/{name}` as the route checks it, so that a client (or a fuzzer)
/// that follows the schema sends what the route accepts: one variant per compiled task (its input
/// is that task's `Input`, with integers within ±2^53, which a stored schedule keeps exactly), cron
/// or `every_seconds` but not both, the time zones this server knows, and cron fields within their
/// ranges.
///
/// The cron pattern is a subset of what the route accepts: values, `*`, steps (`*/5`, `10/15`),
/// lists, `?` for the day fields, a seconds field first and the macros, all in lower case. The route
/// also takes ascending ranges (`1-5`) and names (`mon`, `jan`), which a pattern cannot check for
/// order; and it refuses an expression that never matches (`0 0 30 2 *`), which no pattern sees.
enum OpenAPIScheduleSchema {
    static func definition(_ registry: TaskRegistry) -> [String: Any] {
        var properties: [String: Any] = [
            "input": ["description": "The task's input, checked against its Swift type (`<task>.Input`)."],
            "cron": ["type": ["string", "null"], "pattern": cronPattern, "description": "5 or 6 fields, or @hourly/@daily/@weekly/@monthly/@yearly. Not with every_seconds."],
            "timezone": [
                "type": ["string", "null"], "enum": timeZones + [NSNull()],
                "description": "An IANA time zone for cron (default UTC). Not with every_seconds.",
            ],
            "every_seconds": ["type": ["number", "null"], "minimum": 1, "maximum": 31_622_400, "description": "Not with cron."],
            "queue": ["type": ["string", "null"], "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"],
            "priority": ["type": ["integer", "null"], "minimum": 0, "maximum": 9],
            "jitter_seconds": ["type": ["number", "null"], "minimum": 0, "maximum": 86_400],
            "enabled": ["type": ["boolean", "null"]],
            "catch_up": ["type": ["string", "null"], "enum": ["skip", "once", "all", NSNull()]],
            "catch_up_limit": ["type": ["integer", "null"], "minimum": 1, "maximum": 10_000],
            "overlap": ["type": ["string", "null"], "enum": ["allow", "skip", NSNull()]],
            "max_attempts": ["type": ["integer", "null"], "minimum": 1, "maximum": 100, "description": "Attempts of each job (default: the task's)."],
            "expires_after_seconds": [
                "type": ["number", "null"], "minimum": 0, "maximum": 3_155_760_000,
                "description": "Each job expires if it has not started this long after it was due (default: the task's expiresAfter, else never).",
            ],
            "headers": [
                "type": ["object", "null"], "maxProperties": JobHeaders.maxCount,
                "propertyNames": ["pattern": "^[a-z0-9._-]{1,\(JobHeaders.maxNameBytes)}$"],
                "additionalProperties": ["type": "string", "maxLength": JobHeaders.maxValueBytes],
                "description": "Headers of each job (at most \(JobHeaders.maxTotalBytes) bytes in all; docs/tasks.md#headers-and-middleware).",
            ],
        ]
        let names = registry.names
        properties["task"] = names.isEmpty ? ["type": "string"] : ["type": "string", "enum": names]
        let triggers: [[String: Any]] = [
            [
                "required": ["cron"],
                "properties": ["cron": ["type": "string"], "every_seconds": ["type": "null"]],
            ],
            [
                "required": ["every_seconds"],
                "properties": ["every_seconds": ["type": "number"], "cron": ["type": "null"], "timezone": ["type": "null"]],
            ],
        ]
        let tasks: [[String: Any]] = names.compactMap { name in
            guard let entry = registry[name] else { return nil }
            let input = Self.withinDoubles(entry.inputSchema).foundationObject
            return ["required": ["input"], "properties": ["task": ["const": name], "input": input]]
        }
        var schema: [String: Any] = [
            "type": "object", "required": ["task"], "additionalProperties": false, "properties": properties,
            "description": """
                Give cron (with an optional IANA timezone, default UTC) or every_seconds. The task must be \
                compiled into this API or published by a worker. The name comes from the path (a `name` in the \
                body must be the same).
                """,
        ]
        // With no task compiled in, no body is valid (`oneOf` may not be empty).
        schema["allOf"] = [["oneOf": triggers], tasks.isEmpty ? ["not": [String: Any]()] : ["oneOf": tasks]]
        return schema
    }

    /// The largest integer a schedule's input keeps exactly: a stored schedule holds its input's
    /// numbers as doubles.
    static let largestExactInteger = 9_007_199_254_740_991.0

    /// `schema` with every integer bounded to ±2^53 − 1, the integers a schedule's input keeps.
    static func withinDoubles(_ schema: JSONValue) -> JSONValue {
        switch schema {
        case .object(var object):
            for (key, value) in object { object[key] = withinDoubles(value) }
            let integer: Bool
            switch object["type"] {
            case .string("integer")?: integer = true
            case .array(let types)?: integer = types.contains(.string("integer"))
            default: integer = false
            }
            if integer {
                let limit = largestExactInteger
                if case .number(let minimum)? = object["minimum"], minimum >= -limit {} else { object["minimum"] = .number(-limit) }
                if case .number(let maximum)? = object["maximum"], maximum <= limit {} else { object["maximum"] = .number(limit) }
            }
            return .object(object)
        case .array(let items):
            return .array(items.map(withinDoubles))
        default:
            return schema
        }
    }

    /// The time zones `TimeZone(identifier:)` knows here, and `UTC`.
    static let timeZones: [String] = Array(Set(TimeZone.knownTimeZoneIdentifiers + ["UTC"])).sorted()

    /// A cron expression as a pattern (see the type's description for what it leaves out).
    static let cronPattern: String = {
        func field(_ value: String, step: String, question: Bool = false) -> String {
            let part = "(\\*|\(value))(/\(step))?"
            return "(\(part)(,\(part))*\(question ? "|\\?" : ""))"
        }
        let sixty = field("[1-5]?[0-9]", step: "([1-9]|[1-5][0-9])")
        let hour = field("(1?[0-9]|2[0-3])", step: "([1-9]|1[0-9]|2[0-3])")
        let day = field("([1-9]|[12][0-9]|3[01])", step: "([1-9]|[12][0-9]|3[01])", question: true)
        let month = field("([1-9]|1[0-2])", step: "([1-9]|1[0-2])")
        let weekday = field("[0-7]", step: "[1-7]", question: true)
        let macro = "@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
        return "^(\(macro)|(\(sixty) )?\(sixty) \(hour) \(day) \(month) \(weekday))$"
    }()
}
