import Broker
import Foundation
import Hummingbird
import NIOCore
import TernCore

/// `GET /v1/jobs/{id}/events`: a job's life as Server-Sent Events, until it finishes.
///
/// Events: `state` (`{"id","state","attempts"}`) on each change of state or attempt, `progress`
/// (`{"value","message"}`) on each new progress, and a last `job` event holding the whole job
/// (with its `result` or `error`) once it is finished, after which the stream ends. A comment line
/// is sent every 15 s so that proxies keep the connection. If the job disappears (its retention
/// ended) a `gone` event ends the stream; if the store fails, an `error` event holding a problem.
/// The job is read again when Redis publishes a change of it (a final state, a retry, progress),
/// and at least every second; without pushes, every 5 to 250 ms. A stream ends after
/// ``APIConfiguration/maxEventStreamSeconds``; the client then reconnects and gets the state again.
enum JobEvents {
    static let keepAlive = Duration.seconds(15)

    static func response(for id: JobID, request: Request, api: APIContext) async throws -> Response {
        // The first read answers 404/503 as a normal response, before the stream starts.
        guard let first = try await broker({ try await api.broker.job(id) }) else { throw notFound(id) }
        let slot = try api.waiters.acquire(cap: api.configuration.maxWaiters)
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: .init { writer in
            withExtendedLifetime(slot) {}
            try await request.body.consumeWithCancellationOnInboundClose { _ in
                try await stream(first, id: id, api: api, writer: &writer)
            }
            try await writer.finish(nil)
        })
    }

    private static func stream(
        _ first: JobRecord, id: JobID, api: APIContext, writer: inout any ResponseBodyWriter
    ) async throws {
        var watch = JobWatch(id: id, api: api)
        var last: JobRecord?
        var record = first
        var lastWrite = ContinuousClock.now
        let end = ContinuousClock.now + .seconds(api.configuration.maxEventStreamSeconds)
        while ContinuousClock.now < end {
            var changed = false
            if last?.state != record.state || last?.attempts != record.attempts {
                try await send("state", ["id": id.rawValue, "state": record.state.rawValue, "attempts": record.attempts], &writer)
                changed = true
            }
            if let progress = record.progress, progress.isFinite,
                last?.progress != progress || last?.progressMessage != record.progressMessage
            {
                try await send("progress", ["value": progress, "message": JSONResponse.orNull(record.progressMessage)], &writer)
                changed = true
            }
            if record.state.isTerminal {
                try await send("job", JobView.object(record), &writer)
                return
            }
            if changed {
                watch.changed()
                lastWrite = .now
            } else if ContinuousClock.now - lastWrite >= keepAlive {
                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                lastWrite = .now
            }
            last = record
            try await watch.pause(until: end)
            do {
                guard let next = try await watch.read() else {
                    try await send("gone", ["id": id.rawValue], &writer)
                    return
                }
                record = next
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                let problem = Problem.unavailable(error)
                try await send("error", ["status": Int(problem.status.code), "code": problem.code, "detail": problem.detail], &writer)
                return
            }
        }
    }

    private static func send(_ event: String, _ object: [String: Any], _ writer: inout any ResponseBodyWriter) async throws {
        let data = try JSONWriter.bytes(object)
        var buffer = ByteBuffer(string: "event: \(event)\ndata: ")
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
        try await writer.write(buffer)
    }
}
