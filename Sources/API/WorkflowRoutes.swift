import Broker
import Foundation
import Hummingbird
import TernCore

/// `/v1/workflows`: submit a chain, group, chord or batch; read one by its id (its final job's);
/// cancel every job of one that has not finished.
func addWorkflowRoutes(_ router: Router<APIRequestContext>, _ api: APIContext) {
    let workflows = router.group("v1/workflows")
    workflows.post { request, context in
        let grant = try await refusingEarly(request, context, api) { try context.require(.enqueue) }
        let bytes = try await readJSONBody(request, context, api)
        var (plan, pointers) = try await WorkflowBody.parse(bytes, tasks: api.tasks)
        for (step, pointer) in zip(plan.steps, pointers) where !step.join {
            try checkGrant(grant, step.request, pointer: pointer)
        }
        // The enqueue middleware runs here, where a refusal can name the job; the submission then
        // runs none again.
        for (index, pointer) in zip(plan.steps.indices, pointers) where !plan.steps[index].join {
            try await prepare(&plan.steps[index].request, api, pointer: pointer)
        }
        if let key = request.headers[.init("Idempotency-Key")!] {
            guard (1...255).contains(key.utf8.count) else {
                throw Problem(.unprocessableContent, "invalid_request", "the Idempotency-Key header must be 1-255 bytes",
                    errors: [.init(pointer: "", message: "the Idempotency-Key header must be 1-255 bytes")])
            }
            plan.steps[0].request.idempotencyKey = key
        }
        let submission = try await broker { try await TernClient(broker: api.broker).submit(plan) }
        if submission.created {
            for step in plan.steps where !step.join { api.metrics.enqueued(task: step.request.task) }
        }
        let id = submission.final.rawValue
        var response = try JSONResponse.make([
            "id": id, "kind": plan.kind.rawValue, "created": submission.created, "jobs": submission.jobs.map(\.rawValue),
            "links": ["self": "/v1/workflows/\(id)"],
        ])
        response.status = submission.created ? .created : .ok
        response.headers[.location] = "/v1/workflows/\(id)"
        return response
    }
    workflows.get(":id") { request, context in
        try context.require(.read)
        let id = try jobID(context)
        guard let status = try await broker({ try await WorkflowStatus.load(id, broker: api.broker) }) else { throw notFound(id) }
        let limit = min(max(request.uri.queryParameters.get("limit").flatMap(Int.init) ?? 100, 1), 1000)
        let offset = request.uri.queryParameters.get("cursor").flatMap(Int.init).map { max(0, $0) } ?? 0
        return try JSONResponse.make(workflowObject(status, offset: offset, limit: limit))
    }
    workflows.post(":id/cancel") { _, context in
        try context.require(.operate)
        let id = try jobID(context)
        guard let status = try await broker({ try await WorkflowStatus.load(id, broker: api.broker) }) else { throw notFound(id) }
        let count = try await broker { try await WorkflowHandle<JSONValue>.cancel(status, broker: api.broker) }
        return try JSONResponse.make(["id": id.rawValue, "cancelled": count])
    }
}

/// A workflow as the API shows it, its jobs a page at a time (each after those it depends on).
private func workflowObject(_ status: WorkflowStatus, offset: Int, limit: Int) -> [String: Any] {
    let page = status.jobs.dropFirst(offset).prefix(limit)
    let final = status.final
    return [
        "id": status.id.rawValue, "kind": status.kind, "state": status.state.rawValue,
        "jobs_total": status.jobs.count, "jobs_finished": status.finishedCount,
        "current": status.current.map(\.id.rawValue),
        "result": final.state == .succeeded ? (final.result.flatMap { try? JSONSerialization.jsonObject(with: $0, options: [.fragmentsAllowed]) } ?? NSNull()) : NSNull(),
        "error": status.state == .failed || status.state == .cancelled
            ? JSONResponse.orNull(status.jobs.first { $0.state == .failed || $0.state == .expired }?.error ?? final.error) : NSNull(),
        "jobs": page.map { job -> [String: Any] in
            [
                "id": job.id.rawValue, "task": job.task, "state": job.state.rawValue,
                "depends_on": job.dependsOn.map(\.rawValue), "error": JSONResponse.orNull(job.error),
            ]
        },
        "next_cursor": offset + page.count < status.jobs.count ? String(offset + page.count) as Any : NSNull(),
        "links": ["self": "/v1/workflows/\(status.id.rawValue)"],
    ]
}

extension Problem {
    /// The answer to a job or workflow the client refused.
    init(workflowError error: TernClientError) {
        switch error {
        case .queueFull(let queue): self = Problem.queueFull(queue)
        case .idempotencyKeyReused(let key, let job): self = Problem.idempotencyKeyReused(key, job: job, pointer: "/idempotency_key")
        case .workflowIncomplete(let job):
            self = Problem(.conflict, "workflow_incomplete", error.description)
            self.job = job
        default: self = Problem(.unprocessableContent, "invalid_request", error.description)
        }
    }
}
