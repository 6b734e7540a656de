/// The paths of the OpenAPI document: every endpoint with its parameters, body, answers and the
/// permission it needs.
enum OpenAPIPaths {
    static func all(requiresToken: Bool) -> [String: Any] {
        let id = parameter("id", in: "path", ["type": "string"], "The job's id.")
        let queue = parameter("queue", in: "path", OpenAPISchemas.queueName, "The queue's name.")
        let workerID = parameter("id", in: "path", ["type": "string"], "The worker's id, as GET /v1/workers lists it.")
        let streamTicket = parameter(
            "ticket", in: "query", ["type": "string"], "A ticket from POST /v1/stream-tickets, instead of the Authorization header (for EventSource).")
        let scheduleName = parameter("name", in: "path", ["type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"], "The schedule's name.")
        let paths: [String: Any] = [
            "/healthz": ["get": operation("service", "The process is alive.", nil, ["200": json("Status", "Alive.")])],
            "/readyz": ["get": operation("service", "Redis is reachable.", nil, ["200": json("Status", "Ready."), "503": problem("Redis is unreachable.")])],
            "/openapi.json": ["get": operation("service", "This document.", nil, ["200": ["description": "The OpenAPI document.", "content": ["application/json": ["schema": ["type": "object"]]]]])],
            "/docs": ["get": operation("service", "This document, rendered for a browser.", nil, ["200": ["description": "An HTML page.", "content": ["text/html": ["schema": ["type": "string"]]]]])],
            "/metrics": ["get": operation("service", "Prometheus metrics.", .read, ["200": ["description": "The text exposition format.", "content": ["text/plain": ["schema": ["type": "string"]]]]])],
            "/v1/jobs": ["post": operation(
                "jobs", "Enqueue a job.", .enqueue,
                [
                    "201": json("EnqueueReceipt", "Enqueued.", headers: ["Location": ["schema": ["type": "string"], "description": "The job's URL."]]),
                    "200": json("EnqueueReceipt", "A job with this Idempotency-Key exists: its id.", headers: ["Location": ["schema": ["type": "string"], "description": "The job's URL."]]),
                    "400": problem("Malformed JSON, or an empty or unreadable body."),
                    "413": problem("The body is too large."),
                    "408": problem("The body did not arrive in time (body_timeout)."),
                    "415": problem("The body is not application/json."),
                    "422": problem("The request or the task's input is invalid; `errors` has one entry per problem."),
                ],
                parameters: [parameter("Idempotency-Key", in: "header", ["type": "string", "minLength": 1, "maxLength": 255], "Repeats with the same key within 24 hours return the first job.")],
                body: "EnqueueRequest")],
            "/v1/jobs/batch": ["post": operation(
                "jobs", "Enqueue up to 1,000 jobs; each is validated on its own.", .enqueue,
                [
                    "200": json("BatchResult", "One result per job, in order: its id, or its error."),
                    "400": problem("Malformed JSON, or an empty or unreadable body."),
                    "413": problem("The body is too large."),
                    "408": problem("The body did not arrive in time (body_timeout)."),
                    "415": problem("The body is not application/json."),
                    "422": problem("The body is not {\"jobs\": [...]} with 1 to 1,000 jobs."),
                ],
                body: "BatchRequest")],
            "/v1/jobs/{id}": ["get": operation(
                "jobs", "A job: state, attempts, times, progress, result or error.", .read,
                ["200": json("Job", "The job."), "400": problem("An invalid wait."), "404": problem("No job has this id.")],
                parameters: [id, parameter("wait", in: "query", ["type": "number", "minimum": 0], "Hold the answer up to this many seconds (at most the server's cap, 30 by default) until the job finishes.")]),
                "delete": operation(
                    "jobs", "Delete a finished job (succeeded, failed, cancelled or expired) before its retention ends.", .operate,
                    ["204": ["description": "Deleted."], "404": problem("No job has this id."), "409": problem("The job has not finished (not_finished): cancel it first.")],
                    parameters: [id]),
            ],
            "/v1/jobs/{id}/events": ["get": operation(
                "jobs", "The job's state changes, progress and final state, as Server-Sent Events.", .read,
                [
                    "200": ["description": "Events `state`, `progress`, then `job` (the whole job) when it finishes; `gone` or `error` end it early.", "content": ["text/event-stream": ["schema": [
                        "type": "object", "required": ["event", "data"],
                        "properties": [
                            "event": ["type": "string", "enum": ["state", "progress", "job", "gone", "error"]],
                            "data": ["type": "string", "contentMediaType": "application/json"],
                        ],
                    ]]]],
                    "404": problem("No job has this id."),
                ],
                parameters: [id, streamTicket])],
            "/v1/jobs/{id}/cancel": ["post": operation(
                "jobs", "Cancel a job: queued and scheduled at once, running through its worker within a second.", .operate,
                ["200": json("JobState", "The state after the call (`running` until the worker stops it)."), "404": problem("No job has this id.")],
                parameters: [id])],
            "/v1/jobs/{id}/retry": ["post": operation(
                "jobs", "Run a failed, cancelled or expired job again, from attempt 1.", .operate,
                ["200": json("JobState", "Queued again."), "404": problem("No job has this id."), "409": problem("The job is not failed, cancelled or expired.")],
                parameters: [id])],
            "/v1/jobs/{id}/run": ["post": operation(
                "jobs", "Run a scheduled or retrying job now instead of at its due time: it is queued at once.", .operate,
                ["200": json("JobState", "Queued."), "404": problem("No job has this id."), "409": problem("The job is not scheduled or retrying.")],
                parameters: [id])],
            "/v1/workflows": ["post": operation(
                "workflows", "Submit a chain, group, chord or batch of jobs (docs/workflows.md).", .enqueue,
                [
                    "201": json("WorkflowReceipt", "Submitted.", headers: ["Location": ["schema": ["type": "string"], "description": "The workflow's URL."]]),
                    "200": json("WorkflowReceipt", "A workflow with this Idempotency-Key exists.", headers: ["Location": ["schema": ["type": "string"], "description": "The workflow's URL."]]),
                    "400": problem("Malformed JSON, or an empty or unreadable body."),
                    "409": problem("The Idempotency-Key names a workflow made only in part (workflow_incomplete)."),
                    "413": problem("The body is too large."),
                    "408": problem("The body did not arrive in time (body_timeout)."),
                    "415": problem("The body is not application/json."),
                    "422": problem("A job, or a link between jobs, is invalid; `errors` has one entry per problem."),
                    "429": problem("A first job's queue is at its cap."),
                ],
                parameters: [parameter("Idempotency-Key", in: "header", ["type": "string", "minLength": 1, "maxLength": 255], "Repeats with the same key while it lives return the first workflow.")],
                body: "WorkflowRequest")],
            "/v1/workflows/{id}": ["get": operation(
                "workflows", "A workflow (named by its final job's id): its state, its current jobs, its result, and a page of its jobs.", .read,
                ["200": json("Workflow", "The workflow."), "404": problem("No job has this id.")],
                parameters: [
                    id, parameter("limit", in: "query", ["type": "integer"], "Jobs per page; clamped to 1...1000 (default 100)."),
                    parameter("cursor", in: "query", ["type": "string"], "The next_cursor of the previous page."),
                ])],
            "/v1/workflows/{id}/cancel": ["post": operation(
                "workflows", "Cancel every job of the workflow that has not finished, the later ones first.", .operate,
                ["200": json("WorkflowCancelled", "How many jobs were asked to stop."), "404": problem("No job has this id.")],
                parameters: [id])],
            "/v1/queues": ["get": operation(
                "queues", "A page of the queues, by name, with their counts, oldest waiting job and paused flag.", .read,
                ["200": json("QueueList", "The queues, and the cursor of the next page (null at the end)."), "400": problem("An invalid limit.")],
                parameters: [
                    parameter("limit", in: "query", ["type": "integer"], "Page size; clamped to 1...1000 (default 1000)."),
                    parameter("cursor", in: "query", ["type": "string"], "The next_cursor of the previous page."),
                ])],
            "/v1/queues/{queue}": ["get": operation(
                "queues", "One queue's counts.", .read,
                ["200": json("Queue", "The queue."), "404": problem("No job was ever enqueued to this queue."), "422": problem("An invalid queue name.")],
                parameters: [queue])],
            "/v1/queues/{queue}/events": ["get": operation(
                "queues", "The changes Redis publishes for the queue's jobs (ends, retries, progress), as Server-Sent Events.", .read,
                [
                    "200": ["description": "`hello` (`{\"pushed\": bool}`), then `succeeded`, `failed`, `cancelled`, `expired`, `retrying` or `progress` with `{\"ids\": [...]}`; `lost` (`{\"events\": n}`) after events a slow reader lost.", "content": ["text/event-stream": ["schema": [
                        "type": "object", "required": ["event", "data"],
                        "properties": [
                            "event": ["type": "string", "enum": ["hello", "succeeded", "failed", "cancelled", "expired", "retrying", "progress", "lost"]],
                            "data": ["type": "string", "contentMediaType": "application/json"],
                        ],
                    ]]]],
                    "404": problem("No job was ever enqueued to this queue."), "422": problem("An invalid queue name."),
                    "503": problem("The API has as many waits and streams open as it allows (too_many_waiters)."),
                ],
                parameters: [queue, streamTicket])],
            "/v1/queues/{queue}/jobs": ["get": operation(
                "queues", "A page of the queue's jobs in one state.", .read,
                ["200": json("JobPage", "The jobs, and the cursor of the next page (null at the end)."), "400": problem("An invalid state or limit."), "422": problem("An invalid queue name.")],
                parameters: [
                    queue,
                    parameter("state", in: "query", ["type": "string", "enum": OpenAPISchemas.states], "The state to list (default queued)."),
                    parameter("limit", in: "query", ["type": "integer"], "Page size; clamped to 1...100 (default 20)."),
                    parameter("cursor", in: "query", ["type": "string"], "The next_cursor of the previous page."),
                    parameter("task", in: "query", ["type": "string"], "Only this task's jobs; a page may then hold fewer than limit (follow next_cursor)."),
                ])],
            "/v1/queues/{queue}/throughput": ["get": operation(
                "queues", "Jobs of the queue that succeeded or failed for good, per minute, oldest first (the current minute last).", .read,
                ["200": json("Throughput", "One entry per minute."), "400": problem("An invalid minutes."), "422": problem("An invalid queue name.")],
                parameters: [queue, parameter("minutes", in: "query", ["type": "integer"], "How many minutes; clamped to 1...120 (default 60).")])],
            "/v1/queues/{queue}/purge": ["post": operation(
                "queues", "Delete the queue's jobs in one state (not running: cancel those), up to 100,000 per call.", .operate,
                ["200": json("Purged", "How many were deleted; more is true when some may remain."), "400": problem("An invalid state."),
                 "404": problem("No job was ever enqueued to this queue."), "422": problem("An invalid queue name.")],
                parameters: [queue, parameter("state", in: "query", ["type": "string", "enum": OpenAPISchemas.states.filter { $0 != "running" }], "The state to purge.")])],
            "/v1/queues/{queue}/limits": [
                "get": operation(
                    "queues", "The queue's rate and concurrency limits: declared by workers, set by operators, and in force.", .read,
                    ["200": json("Limits", "The limits."), "422": problem("An invalid queue name.")], parameters: [queue]),
                "put": operation(
                    "queues", "Set an operator's limit on one scope (the queue, a task, or each key of a task); it wins over the declared one.", .operate,
                    ["200": json("Limits", "The queue's limits now."), "400": problem("Malformed JSON."), "415": problem("The body is not application/json."),
                     "422": problem("An invalid queue name or limit.")],
                    parameters: [queue], body: "LimitRequest"),
                "delete": operation(
                    "queues", "Remove an operator's limit, so the declared one applies again (with declared=true, that one too).", .operate,
                    ["200": json("Limits", "The queue's limits now."), "422": problem("An invalid queue name or scope.")],
                    parameters: [
                        queue,
                        parameter("scope", in: "query", ["type": "string", "enum": ["queue", "task", "key"]], "The scope."),
                        parameter("task", in: "query", ["type": "string"], "The task, for scopes task and key."),
                        parameter("declared", in: "query", ["type": "string", "enum": ["true", "false"]], "Also remove the declared limit (workers declare theirs again when they start)."),
                    ]),
            ],
            "/v1/queues/{queue}/pause": ["post": queueAction("Stop handing out the queue's jobs (running ones finish).", "Paused", queue)],
            "/v1/queues/{queue}/resume": ["post": queueAction("Hand out the queue's jobs again.", "Paused", queue)],
            "/v1/queues/{queue}/retry-failed": ["post": queueAction("Run every failed job of the queue again, oldest first.", "Retried", queue)],
            "/v1/schedules": ["get": operation("schedules", "Every schedule, with its source (config or api) and its next 5 runs.", .read, ["200": json("ScheduleList", "The schedules.")])],
            "/v1/schedules/{name}": [
                "get": operation("schedules", "One schedule.", .read, ["200": json("Schedule", "The schedule."), "404": problem("No schedule has this name."), "422": problem("An invalid name.")], parameters: [scheduleName]),
                "put": operation(
                    "schedules", "Create or replace a schedule; schedulers follow it within a poll interval.", .operate,
                    [
                        "201": json("Schedule", "Created."), "200": json("Schedule", "Replaced."),
                        "400": problem("Malformed JSON, or an empty or unreadable body."), "408": problem("The body did not arrive in time."),
                        "409": problem("The schedule is defined in the config file."), "413": problem("The body is too large."),
                        "415": problem("The body is not application/json."), "422": problem("The schedule is invalid (cron, time zone, task, input, ...)."),
                    ],
                    parameters: [scheduleName], body: "ScheduleDefinition"),
                "delete": operation(
                    "schedules", "Delete a schedule.", .operate,
                    ["204": ["description": "Deleted."], "404": problem("No schedule has this name."), "409": problem("The schedule is defined in the config file."), "422": problem("An invalid name.")],
                    parameters: [scheduleName]),
            ],
            "/v1/schedules/{name}/pause": ["post": scheduleAction("Stop emitting a schedule's ticks.", scheduleName)],
            "/v1/schedules/{name}/resume": ["post": scheduleAction("Emit a schedule's ticks again.", scheduleName)],
            "/v1/schedules/{name}/run": ["post": operation(
                "schedules", "Run a schedule now, paused or not: enqueue its job, which becomes its last run; its ticks go on as before.", .operate,
                [
                    "201": json("EnqueueReceipt", "Enqueued.", headers: ["Location": ["schema": ["type": "string"], "description": "The job's URL."]]),
                    "404": problem("No schedule has this name."),
                    "409": problem("The schedule has overlap `skip` and its last job, named in `job`, has not finished."),
                    "422": problem("An invalid name, or a schedule that no longer fits its task."),
                ],
                parameters: [scheduleName])],
            "/v1/workers": ["get": operation("workers", "The live worker processes.", .read, ["200": json("WorkerList", "The workers.")])],
            "/v1/workers/{id}/quiet": ["post": workerAction("Ask a worker (or a supervisor and all its processes) to claim no more jobs; running jobs go on.", workerID)],
            "/v1/workers/{id}/resume": ["post": workerAction("Withdraw a quiet order: the worker claims jobs again.", workerID)],
            "/v1/workers/{id}/stop": ["post": workerAction(
                "Ask a worker or a supervisor to stop as on SIGTERM: it finishes its running jobs within its grace period and exits.",
                workerID, conflict: "The worker runs under a supervisor (supervised_worker): stop the supervisor instead.")],
            "/v1/stream-tickets": ["post": operation(
                "service", "A ticket for the event streams, given as ?ticket= by browser clients whose EventSource cannot send the token; good for 60 s, on GET of the /events routes only.", .read,
                ["201": json("StreamTicket", "The ticket and when it ends.")])],
            "/v1/tasks": ["get": operation("tasks", "The registered tasks with their options and input and output schemas.", .read, ["200": json("TaskList", "The tasks.")])],
        ]
        return requiresToken ? paths : withoutAuthAnswers(paths)
    }

    /// With authentication off, no operation answers 401 or 403.
    private static func withoutAuthAnswers(_ paths: [String: Any]) -> [String: Any] {
        paths.mapValues { item in
            (item as? [String: Any] ?? [:]).mapValues { operation -> Any in
                guard var operation = operation as? [String: Any], var responses = operation["responses"] as? [String: Any] else { return operation }
                responses["401"] = nil
                responses["403"] = nil
                operation["responses"] = responses
                operation["security"] = [[String: Any]]()
                return operation
            }
        }
    }

    private static func scheduleAction(_ summary: String, _ name: [String: Any]) -> [String: Any] {
        operation(
            "schedules", summary, .operate,
            ["200": json("Schedule", "Done."), "404": problem("No schedule has this name."), "409": problem("The schedule is defined in the config file."), "422": problem("An invalid name.")],
            parameters: [name])
    }

    private static func workerAction(_ summary: String, _ id: [String: Any], conflict: String? = nil) -> [String: Any] {
        var responses: [String: Any] = [
            "202": json("WorkerOrder", "Given: the worker follows it at its next report, about a heartbeat interval (1 s by default) later; a supervisor's processes about two."),
            "404": problem("No live worker has this id."),
        ]
        if let conflict { responses["409"] = problem(conflict) }
        return operation("workers", summary, .operate, responses, parameters: [id])
    }

    private static func queueAction(_ summary: String, _ schema: String, _ queue: [String: Any]) -> [String: Any] {
        operation(
            "queues", summary, .operate,
            ["200": json(schema, "Done."), "404": problem("No job was ever enqueued to this queue."), "422": problem("An invalid queue name.")],
            parameters: [queue])
    }

    private static func operation(
        _ tag: String, _ summary: String, _ permission: Permission?, _ responses: [String: Any],
        parameters: [[String: Any]] = [], body: String? = nil
    ) -> [String: Any] {
        var responses = responses
        var operation: [String: Any] = ["tags": [tag], "summary": summary]
        if let permission {
            operation["description"] = "Needs a token whose role may \(permission.rawValue) (\(permission.minimumRoles))."
            responses["401"] = problem("No token, or an invalid one.")
            if permission != .read { responses["403"] = problem("The token's role does not allow this.") }
            responses["503"] = problem("The job store is unavailable, or (waits and event streams) too many requests are waiting; retry after Retry-After seconds.")
        } else {
            operation["security"] = [[String: Any]]()
        }
        responses["default"] = problem("An unexpected error.")
        operation["responses"] = responses
        if !parameters.isEmpty { operation["parameters"] = parameters }
        if let body {
            operation["requestBody"] = [
                "required": true, "content": ["application/json": ["schema": OpenAPIDocument.ref(body)]],
            ]
        }
        return operation
    }

    private static func parameter(_ name: String, in location: String, _ schema: [String: Any], _ description: String) -> [String: Any] {
        ["name": name, "in": location, "required": location == "path", "schema": schema, "description": description]
    }

    private static func json(_ schema: String, _ description: String, headers: [String: Any]? = nil) -> [String: Any] {
        var response: [String: Any] = ["description": description, "content": ["application/json": ["schema": OpenAPIDocument.ref(schema)]]]
        if let headers { response["headers"] = headers }
        return response
    }

    private static func problem(_ description: String) -> [String: Any] {
        ["description": description, "content": ["application/problem+json": ["schema": OpenAPIDocument.ref("Problem")]]]
    }
}
