import Broker
import Foundation
import Hummingbird
import TernCore

/// `/v1/workers`: the live workers, and an operator's orders to one of them (quiet, resume, stop),
/// which it reads at its next report, about a heartbeat interval later (a supervisor's processes:
/// about two).
func addWorkerRoutes(_ router: Router<APIRequestContext>, _ api: APIContext) {
    router.get("v1/workers") { _, context in
        try context.require(.read)
        guard let registry = api.broker as? any WorkerRegistry else { return try JSONResponse.make(["workers": [Any]()]) }
        let workers = try await broker { try await registry.workers() }
        return try JSONResponse.make(["workers": workers.map(workerObject)])
    }
    for (action, order) in [("quiet", WorkerOrder.quiet), ("resume", nil), ("stop", .stop)] {
        router.post("v1/workers/:id/\(action)") { _, context in
            try context.require(.operate)
            // Ids hold `:`, which clients may send percent-encoded.
            let raw = context.parameters.get("id") ?? ""
            let id = raw.removingPercentEncoding ?? raw
            guard let registry = api.broker as? any WorkerRegistry,
                let worker = try await broker({ try await registry.workers() }).first(where: { $0.id == id })
            else {
                throw Problem(.notFound, "not_found", "no live worker is named '\(id.prefix(200))'")
            }
            if order == .stop, let supervisor = worker.supervisorPID {
                throw Problem(.conflict, "supervised_worker",
                    "worker '\(id)' runs under the supervisor with pid \(supervisor), which would start another process in its place: stop the supervisor instead")
            }
            try await broker { try await registry.give(order, to: id) }
            return try JSONResponse.make(["worker": id, "order": order?.rawValue ?? NSNull()], status: .accepted)
        }
    }
}

/// A worker as `GET /v1/workers` shows it.
func workerObject(_ worker: WorkerInfo) -> [String: Any] {
    [
        "id": worker.id, "host": worker.host, "pid": Int(worker.pid), "queues": worker.queues,
        "concurrency": worker.concurrency, "busy": worker.busy, "processed": worker.processed,
        "started_at": JobView.timestamp(worker.startedMilliseconds), "last_seen_at": JobView.timestamp(worker.lastSeenMilliseconds),
        "state": worker.mode?.rawValue ?? "running",
        "supervisor_pid": worker.supervisorPID.map { Int($0) as Any } ?? NSNull(),
        "processes": worker.processes.map { $0 as Any } ?? NSNull(),
        "process_exits": worker.processes == nil ? NSNull() : ["crashed", "killed", "recycled"].reduce(into: [String: Int]()) {
            $0[$1] = worker.processExits?[$1] ?? 0
        },
    ]
}
