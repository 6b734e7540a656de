import Foundation
import Hummingbird
import NIOCore

/// `GET /ui/live`: tells an open dashboard when to read again, as Server-Sent Events.
///
/// It is fed by the push path of `?wait=` (``JobNotifier``: the Functions publish every final
/// state, retry and progress). The stream starts with `hello` (`{"pushed": true|false}`: whether
/// changes are pushed now; with the memory broker, or while the subscription to Redis is down, they
/// are not and the page keeps polling every second), then sends `change` at most once a second
/// while jobs change, and a comment every 15 s. Each stream holds no more than a counter, takes one
/// of the API's waiter slots (``APIConfiguration/maxWaiters``) and ends after
/// ``APIConfiguration/maxEventStreamSeconds``; the browser then reconnects on its own.
///
/// Server-Sent Events rather than a WebSocket: the page only listens, an `EventSource` reconnects by
/// itself, the cookie and CSRF rules stay those of plain requests, and proxies that pass the job
/// event streams pass this one.
enum DashboardLive {
    static let keepAlive = Duration.seconds(15)
    /// The least time between two `change` events of one stream.
    static let minimumGap = Duration.seconds(1)

    static func response(request: Request, api: APIContext) throws -> Response {
        let slot = try api.waiters.acquire(cap: api.configuration.maxWaiters)
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: .init { writer in
            withExtendedLifetime(slot) {}
            try await request.body.consumeWithCancellationOnInboundClose { _ in
                try await stream(api: api, writer: &writer)
            }
            try await writer.finish(nil)
        })
    }

    private static func stream(api: APIContext, writer: inout any ResponseBodyWriter) async throws {
        var (seen, live) = api.notifier.generation()
        try await writer.write(ByteBuffer(string: "event: hello\ndata: {\"pushed\":\(live)}\n\n"))
        var lastWrite = ContinuousClock.now
        let end = ContinuousClock.now + .seconds(api.configuration.maxEventStreamSeconds)
        while ContinuousClock.now < end && !Task.isCancelled {
            await api.notifier.waitForChange(after: seen, until: min(end, lastWrite + keepAlive))
            let (now, liveNow) = api.notifier.generation()
            if liveNow != live {
                live = liveNow
                try await writer.write(ByteBuffer(string: "event: hello\ndata: {\"pushed\":\(live)}\n\n"))
                lastWrite = .now
            }
            if now != seen {
                seen = now
                try await writer.write(ByteBuffer(string: "event: change\ndata: {}\n\n"))
                lastWrite = .now
                try await Task.sleep(for: minimumGap)
            } else if ContinuousClock.now - lastWrite >= keepAlive {
                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                lastWrite = .now
            }
        }
    }
}
