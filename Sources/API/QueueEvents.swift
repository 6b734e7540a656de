import Foundation
import Hummingbird
import NIOCore
import TernCore

/// `GET /v1/queues/{queue}/events`: the changes of a queue's jobs as Server-Sent Events, as Redis
/// publishes them: each job's end (`succeeded`, `failed`, `cancelled`, `expired`), each retry
/// (`retrying`) and each progress report (`progress`), with `{"ids": [...]}` (one event may name
/// many jobs). Enqueues and starts are not published (that would cost every job), so they are not
/// here: follow `GET /v1/queues/{queue}` for counts.
///
/// The stream starts with `hello` (`{"pushed": true|false}`), and says `hello` again when the
/// subscription to Redis breaks or comes back (changes in between are lost). A reader more than
/// ``QueueFeeds/buffered`` events behind loses the oldest, and the next event is preceded by
/// `lost` (`{"events": n}`). A comment is sent every 15 s; the stream ends after
/// ``APIConfiguration/maxEventStreamSeconds`` and takes one of the API's waiter slots. With a broker
/// that publishes nothing (the memory broker) it says `{"pushed": false}` and carries no changes.
enum QueueEvents {
    static let keepAlive = Duration.seconds(15)

    static func response(for queue: QueueName, request: Request, api: APIContext) throws -> Response {
        let slot = try api.waiters.acquire(cap: api.configuration.maxWaiters)
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: .init { writer in
            withExtendedLifetime(slot) {}
            let followed = api.notifier.follow(queue)
            defer { followed?.feed.finish() }
            try await request.body.consumeWithCancellationOnInboundClose { _ in
                try await stream(followed, api: api, writer: &writer)
            }
            try await writer.finish(nil)
        })
    }

    private static func stream(
        _ followed: (feed: QueueFeeds.Feed, pushed: Bool)?, api: APIContext, writer: inout any ResponseBodyWriter
    ) async throws {
        let end = ContinuousClock.now + .seconds(api.configuration.maxEventStreamSeconds)
        try await send("hello", ["pushed": followed?.pushed ?? false], &writer)
        guard let feed = followed?.feed else {
            while ContinuousClock.now < end {
                try await Task.sleep(until: min(end, .now + keepAlive), clock: .continuous)
                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
            }
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: keepAlive)
                    feed.send(.keepAlive)
                }
            }
            group.addTask {
                try await Task.sleep(until: end, clock: .continuous)
                feed.finish()
            }
            for await item in feed.items {
                let dropped = feed.takeDropped()
                if dropped > 0 { try await send("lost", ["events": dropped], &writer) }
                switch item {
                case .change(let kind, let ids): try await send(kind, ["ids": ids], &writer)
                case .pushed(let live): try await send("hello", ["pushed": live], &writer)
                case .keepAlive: try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                }
            }
            group.cancelAll()
        }
    }

    private static func send(_ event: String, _ object: [String: Any], _ writer: inout any ResponseBodyWriter) async throws {
        var buffer = ByteBuffer(string: "event: \(event)\ndata: ")
        buffer.writeBytes(try JSONWriter.bytes(object))
        buffer.writeString("\n\n")
        try await writer.write(buffer)
    }
}
