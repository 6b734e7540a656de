import Foundation
import TernCore

/// The OpenAPI 3.1 document `/openapi.json` serves, generated at start-up from the registered
/// tasks: each task's input and output schema comes from its Swift types (``JSONSchema``), and the
/// body of `POST /v1/jobs` is one variant per task, told apart by `task`.
enum OpenAPIDocument {
    static func json(_ api: APIContext, registry: TaskRegistry) -> [UInt8] {
        let data = try? JSONSerialization.data(withJSONObject: make(api, registry: registry), options: [.sortedKeys, .withoutEscapingSlashes])
        return Array(data ?? Data("{}".utf8))
    }

    static func make(_ api: APIContext, registry: TaskRegistry) -> [String: Any] {
        var schemas = OpenAPISchemas.common(api.configuration)
        schemas["ScheduleDefinition"] = OpenAPIScheduleSchema.definition(registry)
        var single: [[String: Any]] = [], batch: [[String: Any]] = [], mapping: [String: String] = [:]
        for name in registry.names {
            guard let entry = registry[name] else { continue }
            schemas["\(name).Input"] = entry.inputSchema.foundationObject
            schemas["\(name).Output"] = entry.outputSchema.foundationObject
            schemas["\(name).Job"] = OpenAPISchemas.enqueueVariant(entry, batch: false)
            schemas["\(name).BatchJob"] = OpenAPISchemas.enqueueVariant(entry, batch: true)
            single.append(ref("\(name).Job"))
            batch.append(ref("\(name).BatchJob"))
            mapping[name] = "#/components/schemas/\(name).Job"
        }
        // With no task registered, no body is valid (`oneOf` may not be empty).
        schemas["EnqueueRequest"] = single.isEmpty ? ["not": [String: Any]()] : ["oneOf": single, "discriminator": ["propertyName": "task", "mapping": mapping]]
        schemas["BatchRequest"] = [
            "type": "object", "required": ["jobs"], "additionalProperties": false,
            "properties": ["jobs": ["type": "array", "minItems": 1, "maxItems": 1000, "items": ["oneOf": batch]]],
        ]
        var document: [String: Any] = [
            "openapi": "3.1.0",
            "info": [
                "title": "Tern", "version": "1",
                "description": """
                    Submit typed background jobs, read their state and results, and operate queues. \
                    Every error is application/problem+json with a stable `code`. \
                    Each task's input is validated against its Swift type; its schema is `<task>.Input`.
                    """,
            ],
            "paths": OpenAPIPaths.all(requiresToken: api.access.requiresToken),
            "components": [
                "schemas": schemas,
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer", "description": "A token from api.tokens in config/tern.yaml."]],
            ],
            "tags": [
                ["name": "jobs"], ["name": "queues"], ["name": "schedules"], ["name": "workers"], ["name": "tasks"], ["name": "service"],
            ],
        ]
        if api.access.requiresToken { document["security"] = [["bearer": [String]()]] }
        return document
    }

    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }
}

/// The schemas every document has, and the per-task enqueue variants.
enum OpenAPISchemas {
    static var timestamp: [String: Any] { ["type": "string", "format": "date-time"] }
    static var nullableTimestamp: [String: Any] { ["type": ["string", "null"], "format": "date-time"] }
    static var queueName: [String: Any] { ["type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"] }
    static let states = JobState.allCases.map(\.rawValue)

    /// The fields of an enqueue request besides `task` and `input`.
    static var options: [String: Any] {
        [
        "queue": queueName,
        "priority": ["type": "integer", "minimum": 0, "maximum": 9, "description": "Higher runs first."],
        "max_attempts": ["type": "integer", "minimum": 1, "maximum": 100],
        "delay_ms": ["type": "integer", "minimum": 0, "maximum": 31_536_000_000, "description": "Run after this delay. Not with run_at_ms."],
        "run_at_ms": ["type": "integer", "minimum": 0, "maximum": EnqueueBody.maxRunAtMilliseconds, "description": "Run at this time, in milliseconds since 1970. Not with delay_ms."],
        "expires_after_ms": ["type": "integer", "minimum": 0, "maximum": EnqueueBody.maxExpiresAfterMilliseconds, "description": "Expire if not started this long after it is due."],
        "unique": uniquePolicy.merging(["description": "Overrides the task's unique policy for this job."]) { $1 },
        "depends_on": [
            "type": "array", "minItems": 1, "maxItems": 10_000, "items": ["type": "string"],
            "description": "Jobs that must finish first: this one waits, then runs with its own input once they succeeded (docs/workflows.md).",
        ],
        "on_dependency_failure": [
            "type": "string", "enum": ["cancel", "run"],
            "description": "With depends_on: cancel this job when one of them fails (the default), or run it anyway.",
        ],
        "limit_key": [
            "type": "string", "minLength": 1, "maxLength": JobLimit.maxKeyBytes,
            "description": "The job's limit key, instead of the one the task's limit builds from the input (docs/limits.md).",
        ],
        "headers": [
            "type": "object", "maxProperties": JobHeaders.maxCount,
            "propertyNames": ["pattern": "^[a-z0-9._-]{1,\(JobHeaders.maxNameBytes)}$"],
            "additionalProperties": ["type": "string", "maxLength": JobHeaders.maxValueBytes],
            "description": "String metadata that travels with the job (at most \(JobHeaders.maxTotalBytes) bytes in all; docs/tasks.md#headers-and-middleware).",
        ],
        "unique_key": [
            "type": "string", "minLength": 1, "maxLength": 255,
            "description": "The job's unique key, under the task's unique policy (else while_active): a held key answers its job instead.",
        ],
        ]
    }

    /// The body of `PUT /v1/queues/{queue}/limits`: a scope (`queue`, or `task` and `key` with a
    /// task), and a rate, a concurrency or both, or `none`.
    static var limitRequest: [String: Any] {
        func whole(_ low: Int, _ high: Int) -> [String: Any] { ["type": "integer", "minimum": low, "maximum": high] }
        let rate: [String: Any] = [
            "type": "object", "additionalProperties": false, "required": ["count", "per_ms"],
            "properties": ["count": whole(1, JobLimit.maxCount), "per_ms": whole(1, Int(JobLimit.maxPeriod.components.seconds) * 1000)],
        ]
        let scopes: [[String: Any]] = [
            ["properties": ["scope": ["const": "queue"]], "not": ["required": ["task"]]],
            ["properties": ["scope": ["enum": ["task", "key"]], "task": ["type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"]], "required": ["task"]],
        ]
        let kinds: [[String: Any]] = [
            [
                "properties": ["none": ["const": true]], "required": ["none"],
                "not": ["anyOf": [["required": ["rate"]], ["required": ["burst"]], ["required": ["concurrency"]]]],
            ],
            [
                "not": ["required": ["none"]], "anyOf": [["required": ["rate"]], ["required": ["concurrency"]]],
                "dependentRequired": ["burst": ["rate"]],
            ],
        ]
        return [
            "type": "object", "additionalProperties": false, "required": ["scope"],
            "properties": [
                "scope": ["type": "string", "enum": ["queue", "task", "key"]], "task": ["type": "string"], "rate": rate,
                "burst": whole(1, JobLimit.maxCount), "concurrency": whole(1, JobLimit.maxConcurrency),
                "none": ["type": "boolean", "description": "true: no limit in this scope, whatever workers declared."],
            ],
            "allOf": [["oneOf": scopes], ["oneOf": kinds]],
        ]
    }

    /// The body of `POST /v1/workflows` (each job is checked against its task when submitted).
    static var workflowRequest: [String: Any] {
        let job: [String: Any] = [
            "type": "object", "required": ["task"],
            "properties": ["task": ["type": "string"], "input": ["description": "The task's input; not on steps whose input is made."]],
        ]
        let jobs: [String: Any] = ["type": "array", "minItems": 1, "maxItems": 10_000, "items": job]
        func one(_ name: String, _ schema: [String: Any]) -> [String: Any] {
            ["type": "object", "additionalProperties": false, "required": [name], "properties": [name: schema]]
        }
        return ["oneOf": [
            one("chain", ["type": "array", "minItems": 1, "maxItems": 100, "items": job]),
            one("group", jobs),
            one("chord", ["type": "object", "additionalProperties": false, "required": ["group", "callback"],
                "properties": ["group": jobs, "callback": job, "allow_failures": ["type": "boolean"]]]),
            one("batch", ["type": "object", "additionalProperties": false, "required": ["jobs"],
                "properties": ["jobs": jobs, "on_complete": job, "on_success": job]]),
        ]]
    }

    /// A task's or a job's unique policy (docs/tasks.md#unique-jobs).
    static var uniquePolicy: [String: Any] {
        [
            "type": "object", "additionalProperties": false, "required": ["mode"],
            "properties": [
                "mode": ["type": "string", "enum": ["while_active", "until", "debounce"]],
                "window_ms": ["type": "integer", "minimum": 1, "maximum": Int(UniquePolicy.maxWindow.components.seconds * 1000)],
                "key_fields": ["type": "array", "maxItems": UniquePolicy.maxKeyFields, "items": ["type": "string", "minLength": 1]],
            ],
        ]
    }

    /// The fields of a schedule definition (`ScheduleDefinition`).
    static var scheduleFields: [String: Any] {
        [
            "name": ["type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"], "task": ["type": "string"],
            "input": ["description": "The task's input, checked against its Swift type."],
            "cron": ["type": ["string", "null"], "description": "5 or 6 fields, or @hourly/@daily/@weekly/@monthly/@yearly."],
            "timezone": ["type": ["string", "null"]], "every_seconds": ["type": ["number", "null"], "minimum": 1, "maximum": 31_622_400],
            "queue": ["type": ["string", "null"]], "priority": ["type": ["integer", "null"], "minimum": 0, "maximum": 9],
            "jitter_seconds": ["type": ["number", "null"], "minimum": 0, "maximum": 86_400], "enabled": ["type": ["boolean", "null"]],
            "catch_up": ["type": ["string", "null"], "enum": ["skip", "once", "all", NSNull()]],
            "catch_up_limit": ["type": ["integer", "null"], "minimum": 1, "maximum": 10_000],
            "overlap": ["type": ["string", "null"], "enum": ["allow", "skip", NSNull()]],
        ]
    }

    static func enqueueVariant(_ entry: TaskRegistry.Entry, batch: Bool) -> [String: Any] {
        var properties = options
        properties["task"] = ["const": entry.name]
        properties["input"] = OpenAPIDocument.ref("\(entry.name).Input")
        if batch { properties["idempotency_key"] = ["type": "string", "minLength": 1, "maxLength": 255] }
        return [
            "type": "object", "title": entry.name, "required": ["task", "input"], "additionalProperties": false,
            "properties": properties, "not": ["required": ["delay_ms", "run_at_ms"]],
        ]
    }

    static func object(_ properties: [String: Any], required: [String]? = nil) -> [String: Any] {
        ["type": "object", "properties": properties, "required": required ?? properties.keys.sorted()]
    }

    static func common(_ configuration: APIConfiguration) -> [String: Any] {
        let string: [String: Any] = ["type": "string"]
        let integer: [String: Any] = ["type": "integer"]
        let limitSchema: [String: Any] = [
            "oneOf": [
                ["type": "null"],
                object([
                    "rate": ["oneOf": [["type": "null"], object(["count": integer, "per_ms": integer])]], "burst": integer,
                    "concurrency": ["type": ["integer", "null"]],
                ]),
            ],
        ]
        let problemDetail = object([
            "status": integer, "code": string, "detail": string,
            "errors": ["type": "array", "items": object(["pointer": string, "message": string])],
        ])
        return [
            "Problem": object(
                [
                    "type": string, "title": string, "status": integer, "code": string, "detail": string,
                    "errors": ["type": "array", "items": object(["pointer": string, "message": string])],
                ], required: ["type", "title", "status", "code", "detail"]),
            "Job": object([
                "id": string, "task": string, "queue": string, "state": ["type": "string", "enum": states],
                "priority": integer, "attempts": integer, "max_attempts": integer, "created_at": timestamp,
                "due_at": nullableTimestamp, "started_at": nullableTimestamp, "finished_at": nullableTimestamp,
                "worker": ["type": ["string", "null"]],
                "input": ["description": "The job's input, as given."],
                "result": ["description": "The task's output (`<task>.Output`) once succeeded, else null."],
                "error": ["type": ["string", "null"], "description": "The last attempt's error."],
                "errors": ["type": "array", "items": object(["attempt": integer, "message": string, "at": timestamp])],
                "progress": ["oneOf": [["type": "null"], object(["value": ["type": "number"], "message": ["type": ["string", "null"]]])]],
                "cancel_requested": ["type": "boolean"],
                "crashes": ["type": "integer", "description": "How many worker processes died while running the job alone (the crashes charged to it)."],
                "suspect": [
                    "type": "boolean",
                    "description": "A process died while running the job with others: not charged, but the job now runs alone in a process of its own.",
                ],
                "schedule": ["oneOf": [["type": "null"], object(["name": string, "tick_at": timestamp])], "description": "The schedule and tick that emitted the job."],
                "depends_on": ["type": "array", "items": string, "description": "The jobs this one waits for (docs/workflows.md)."],
                "dependents": ["type": "array", "items": string, "description": "The jobs that wait for this one."],
                "workflow": ["type": ["string", "null"], "description": "The kind of workflow this job ends (chain, group, chord, batch); its id is this job's."],
                "unique": [
                    "oneOf": [["type": "null"], object(["key": string, "mode": ["type": "string", "enum": ["while_active", "until", "debounce"]]])],
                    "description": "The unique key the job was enqueued with (32 hex digits) and its rule.",
                ],
                "headers": ["type": "object", "additionalProperties": string, "description": "The job's headers, as enqueued."],
                "limit_key": ["type": ["string", "null"], "description": "The job's limit key (docs/limits.md)."],
                "throttled": ["type": "boolean", "description": "A queued job held back by a limit."],
            ]),
            "JobState": object(["id": string, "state": ["type": "string", "enum": states]]),
            "WorkflowRequest": workflowRequest,
            "WorkflowReceipt": object([
                "id": string, "kind": ["type": "string", "enum": ["chain", "group", "chord", "batch"]], "created": ["type": "boolean"],
                "jobs": ["type": "array", "items": string], "links": object(["self": string]),
            ]),
            "Workflow": object([
                "id": string, "kind": string, "state": ["type": "string", "enum": ["running", "succeeded", "failed", "cancelled"]],
                "jobs_total": integer, "jobs_finished": integer, "current": ["type": "array", "items": string],
                "result": ["description": "The final job's output once it succeeded, else null."],
                "error": ["type": ["string", "null"], "description": "Why the workflow failed or was cancelled."],
                "jobs": ["type": "array", "items": object([
                    "id": string, "task": string, "state": ["type": "string", "enum": states], "depends_on": ["type": "array", "items": string],
                    "error": ["type": ["string", "null"]],
                ])],
                "next_cursor": ["type": ["string", "null"]], "links": object(["self": string]),
            ]),
            "WorkflowCancelled": object(["id": string, "cancelled": integer]),
            "EnqueueReceipt": object([
                "id": string, "state": ["type": ["string", "null"], "enum": states.map { $0 as Any } + [NSNull()]], "created": ["type": "boolean"],
                "links": object(["self": string]),
                "unique": [
                    "type": "string", "enum": ["duplicate", "debounced"],
                    "description": "Present when nothing was created because the unique key is held: duplicate (id is the holder) or debounced (the holder got this input and a new due time).",
                ],
            ], required: ["id", "state", "created", "links"]),
            "BatchResult": object([
                "enqueued": integer, "rejected": integer,
                "results": ["type": "array", "items": object([
                    "index": integer, "id": string, "state": ["type": ["string", "null"]], "created": ["type": "boolean"],
                    "error": problemDetail, "unique": ["type": "string", "enum": ["duplicate", "debounced"]],
                ], required: ["index"])],
            ]),
            "JobPage": object(["jobs": ["type": "array", "items": OpenAPIDocument.ref("Job")], "next_cursor": ["type": ["string", "null"]]]),
            "Queue": object([
                "queue": string, "pending": integer, "scheduled": integer, "running": integer, "succeeded": integer,
                "failed": integer, "cancelled": integer, "expired": integer, "paused": ["type": "boolean"],
                "waiting": ["type": "integer", "description": "Jobs waiting for the jobs they depend on."],
                "oldest_pending_ms": ["type": "integer", "description": "How long the oldest queued job has waited."],
                "lost_leases": integer, "stale_writes": integer,
                "throttled": ["type": "integer", "description": "Queued jobs held back by a limit (docs/limits.md)."],
                "limits": ["type": "array", "items": OpenAPIDocument.ref("QueueLimit")],
            ]),
            "QueueLimit": object([
                "scope": ["type": "string", "enum": ["queue", "task", "key"]], "task": ["type": ["string", "null"]],
                "declared": limitSchema, "set": ["oneOf": [limitSchema, ["type": "string", "enum": ["none"]]]], "effective": limitSchema,
            ]),
            "Limits": object(["queue": string, "limits": ["type": "array", "items": OpenAPIDocument.ref("QueueLimit")]]),
            "LimitRequest": limitRequest,
            "Throughput": object([
                "queue": string,
                "minutes": ["type": "array", "items": object(["at": timestamp, "succeeded": integer, "failed": integer])],
                "latency": object([
                    "jobs": integer,
                    "p50_ms": ["type": ["integer", "null"], "description": "The median wait from due to first start is at most this; null when no job started or above 300000."],
                    "p99_ms": ["type": ["integer", "null"], "description": "The 99th percentile, likewise."],
                ]),
            ]),
            "StreamTicket": object(["ticket": string, "expires_at": timestamp, "expires_in_seconds": integer]),
            "QueueList": object(["queues": ["type": "array", "items": OpenAPIDocument.ref("Queue")], "next_cursor": ["type": ["string", "null"]]]),
            "Paused": object(["queue": string, "paused": ["type": "boolean"]]),
            "Retried": object(["queue": string, "retried": integer]),
            "Purged": object(["queue": string, "state": string, "purged": integer, "more": ["type": "boolean"]]),
            "Worker": object([
                "id": string, "host": string, "pid": integer, "queues": ["type": "array", "items": string],
                "concurrency": integer, "busy": integer, "processed": integer, "started_at": timestamp, "last_seen_at": timestamp,
                "state": [
                    "type": "string", "enum": ["running", "quiet", "stopping"],
                    "description": "quiet: claims no jobs, after an operator's quiet order; stopping: finishing its jobs before it exits.",
                ],
                "supervisor_pid": ["type": ["integer", "null"], "description": "The supervisor running this worker process, if one does."],
                "processes": ["type": ["integer", "null"], "description": "Set on a supervisor: its worker processes. Its concurrency and busy are their totals."],
                "process_exits": [
                    "oneOf": [["type": "null"], object(["crashed": integer, "killed": integer, "recycled": integer])],
                    "description": "Set on a supervisor: its processes that ended and were replaced since it started, by reason.",
                ],
            ]),
            "WorkerOrder": object([
                "worker": string,
                "order": ["type": ["string", "null"], "enum": ["quiet", "stop", NSNull()], "description": "The order given; null: withdrawn (resume)."],
            ]),
            "WorkerList": object(["workers": ["type": "array", "items": OpenAPIDocument.ref("Worker")]]),
            "Task": object(
                [
                    "name": string, "queue": string, "priority": integer, "max_attempts": integer,
                    "soft_time_limit_ms": ["type": ["integer", "null"]],
                    "hard_time_limit_ms": ["type": ["integer", "null"], "description": "Run time after which a supervised process running the job is killed (plus the worker's kill grace)."],
                    "isolated": ["type": "boolean", "description": "Each job runs alone in a process of its own."],
                    "result_retention_ms": integer,
                    "failed_retention_ms": [
                        "type": ["integer", "null"],
                        "description": "How long a failed job is kept; null: the deployment's default (queues.failed_retention_seconds, 7 days).",
                    ],
                    "expires_after_ms": ["type": ["integer", "null"]], "input_schema": ["type": "object"], "output_schema": ["type": "object"],
                    "unique": ["oneOf": [["type": "null"], OpenAPISchemas.uniquePolicy], "description": "The task's unique policy, if any."],
                    "source": [
                        "type": "string", "enum": ["compiled", "published"],
                        "description": "compiled: this API process has the task's Swift type; published: a worker published it.",
                    ],
                    "workers": ["type": "array", "items": string, "description": "The live workers whose published catalogue lists the task."],
                ]),
            "TaskList": object(["tasks": ["type": "array", "items": OpenAPIDocument.ref("Task")]]),
            "Status": object(["status": string]),
            "Schedule": object(scheduleFields.merging([
                "source": ["type": "string", "enum": ["config", "api"]],
                "next_runs": ["type": "array", "items": timestamp],
                "last_run": ["oneOf": [["type": "null"], object(["tick_at": timestamp, "job": string])], "description": "The last tick emitted, or run now, and its job."],
                "mark_at": [
                    "oneOf": [["type": "null"], timestamp],
                    "description": "The schedule's mark: its ticks up to this time are done (emitted, skipped for overlap, or missed). Null before its first tick.",
                ],
            ]) { $1 }),
            "ScheduleList": object(["schedules": ["type": "array", "items": OpenAPIDocument.ref("Schedule")]]),
        ]
    }
}
