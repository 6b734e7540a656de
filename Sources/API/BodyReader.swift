import Foundation
import Hummingbird
import NIOCore
import TernCore

/// Reads a request body up to the limit, and discards a body the API refuses.
///
/// Many clients (Python's `urllib` and `requests`, most raw-socket code) send the whole body
/// before they read anything. A server that answers early and stops reading leaves such a client
/// blocked in its write, never seeing the answer. So a refused body is read and dropped after the
/// answer is decided, up to ``discardBytes`` or ``discardTime``; a body larger or slower than that
/// gets the answer and then the connection is closed (the client sees the answer or a reset). A
/// request with `Expect: 100-continue` has not sent its body yet: nothing is read, the answer goes
/// out at once and the connection is closed.
struct BodyReader {
    /// The most bytes discarded from a refused body before the connection is closed instead.
    static let discardBytes = 64 << 20
    /// The longest a refused body is discarded before the connection is closed instead.
    static let discardTime = Duration.seconds(1)
    /// How long after a refusal the connection is closed, when it is: time for the answer to go out.
    static let closeDelay = TimeAmount.milliseconds(200)

    let request: Request
    let context: APIRequestContext
    let configuration: APIConfiguration

    /// The body, at most `maxBodyBytes`, within `bodyTimeout`.
    /// - Throws: 413 `body_too_large` (the rest discarded), 408 `body_timeout` (the connection is
    ///   closed), 400 `unreadable_body`.
    func read() async throws -> Data {
        let limit = configuration.maxBodyBytes
        if let length = declaredLength, length > limit, expectsContinue {
            closeSoon()
            throw tooLarge
        }
        let outcome: Outcome
        do {
            // A body that trickles in is cut at the deadline: a slow client cannot hold a request open.
            let eventLoop = context.channel.eventLoop
            outcome = try await withThrowingTaskGroup(of: Outcome?.self) { group in
                group.addTask { try await collect(upTo: limit) }
                group.addTask {
                    try await Self.sleep(on: eventLoop, for: configuration.bodyTimeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let outcome = first else { throw BodyTimeout() }
                return outcome
            }
        } catch is BodyTimeout {
            closeSoon()
            var problem = Problem(.requestTimeout, "body_timeout", "the body did not arrive within \(configuration.bodyTimeout)")
            problem.headers[.connection] = "close"
            throw problem
        } catch {
            throw Problem(.badRequest, "unreadable_body", "the request body could not be read")
        }
        switch outcome {
        case .body(let data): return data
        case .tooLarge(let drained):
            if !drained { closeSoon() }
            throw tooLarge
        }
    }

    /// Reads and drops the body of a refused request (bounded; see the type's description).
    func discard() async {
        guard hasBody else { return }
        if expectsContinue {
            closeSoon()
            return
        }
        if !(await drain()) { closeSoon() }
    }

    /// Sleeps on the connection's event loop: a timer there costs a heap entry, where
    /// `Task.sleep` armed a dispatch timer and woke dispatch's manager thread on every request.
    static func sleep(on eventLoop: any EventLoop, for duration: Duration) async throws {
        let timer = eventLoop.scheduleTask(in: .nanoseconds(duration.nanoseconds)) {}
        try await withTaskCancellationHandler {
            try await timer.futureResult.get()
        } onCancel: {
            timer.cancel()
        }
    }

    private enum Outcome: Sendable {
        case body(Data)
        /// Over the limit; whether the rest was read to its end.
        case tooLarge(drained: Bool)
    }

    private struct BodyTimeout: Error {}

    private var tooLarge: Problem {
        var problem = Problem(.contentTooLarge, "body_too_large", "the body exceeds \(configuration.maxBodyBytes) bytes")
        problem.headers[.connection] = "close"
        return problem
    }

    /// Reads the body; past `limit` it drops the rest (bounded) instead of keeping it.
    private func collect(upTo limit: Int) async throws -> Outcome {
        var data = Data()
        var iterator = request.body.makeAsyncIterator()
        while let chunk = try await iterator.next() {
            guard data.count + chunk.readableBytes <= limit else {
                return .tooLarge(drained: await drain(&iterator))
            }
            data.append(contentsOf: chunk.readableBytesView)
        }
        return .body(data)
    }

    /// Reads the whole body and drops it; false if it went on past the budget.
    private func drain() async -> Bool {
        var iterator = request.body.makeAsyncIterator()
        return await drain(&iterator)
    }

    private func drain(_ iterator: inout RequestBody.AsyncIterator) async -> Bool {
        let deadline = ContinuousClock.now + Self.discardTime
        var dropped = 0
        do {
            while let chunk = try await iterator.next() {
                dropped += chunk.readableBytes
                if dropped > Self.discardBytes || ContinuousClock.now > deadline { return false }
            }
            return true
        } catch {
            return false
        }
    }

    /// Closes the connection shortly, after the answer went out.
    private func closeSoon() {
        let channel = context.channel
        channel.eventLoop.scheduleTask(in: Self.closeDelay) { channel.close(promise: nil) }
    }

    private var declaredLength: Int? { request.headers[.contentLength].flatMap { Int($0) } }
    private var expectsContinue: Bool { request.headers[.expect]?.lowercased() == "100-continue" }
    private var hasBody: Bool { (declaredLength ?? 0) > 0 || request.headers[.transferEncoding] != nil }
}
