import Broker
import Foundation
import TernCore

/// The JSON shape of a job in answers (`GET /v1/jobs/{id}` and listings).
enum JobView {
    static func object(_ record: JobRecord) -> [String: Any] {
        var object: [String: Any] = [
            "id": record.id.rawValue, "task": record.task, "queue": record.queue.rawValue,
            "state": record.state.rawValue, "priority": record.priority, "attempts": record.attempts,
            "max_attempts": record.maxAttempts, "created_at": timestamp(record.createdMilliseconds),
            "input": JSONResponse.embed(record.input),
        ]
        object["due_at"] = JSONResponse.orNull(record.dueMilliseconds.map(timestamp))
        object["started_at"] = JSONResponse.orNull(record.startedMilliseconds.map(timestamp))
        object["finished_at"] = JSONResponse.orNull(record.finishedMilliseconds.map(timestamp))
        object["worker"] = JSONResponse.orNull(record.worker)
        object["result"] = record.state == .succeeded ? JSONResponse.embed(record.result) : NSNull()
        object["error"] = JSONResponse.orNull(record.error)
        object["errors"] = record.errors.map { ["attempt": $0.attempt, "message": $0.message, "at": timestamp($0.atMilliseconds)] }
        if let progress = record.progress, progress.isFinite {
            object["progress"] = ["value": progress, "message": JSONResponse.orNull(record.progressMessage)]
        } else {
            object["progress"] = NSNull()
        }
        object["cancel_requested"] = record.cancelRequested
        object["crashes"] = record.crashes
        object["suspect"] = record.suspect
        if let schedule = record.schedule, let tick = record.tickMilliseconds {
            object["schedule"] = ["name": schedule, "tick_at": timestamp(tick)]
        } else {
            object["schedule"] = NSNull()
        }
        object["depends_on"] = record.dependsOn.map(\.rawValue)
        object["dependents"] = record.dependents.map(\.rawValue)
        object["workflow"] = JSONResponse.orNull(record.workflow)
        if let key = record.uniqueKey, let mode = record.uniqueMode {
            object["unique"] = ["key": key, "mode": mode]
        } else {
            object["unique"] = NSNull()
        }
        object["headers"] = record.headers
        object["limit_key"] = JSONResponse.orNull(record.limitKey)
        object["throttled"] = record.throttled
        return object
    }

    /// Milliseconds since 1970 as an ISO 8601 UTC timestamp with milliseconds.
    static func timestamp(_ milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(milliseconds % 1000))
    }
}
