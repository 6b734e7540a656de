import CHiredis
import Foundation
import Logging
import Synchronization
import TernCore

/// A connection in subscriber mode: it follows the channels that match `patterns`
/// (`PSUBSCRIBE`) on a thread of its own and hands every message to `handler`.
///
/// Pub/sub delivers at most once: messages published while the connection is down are lost. The
/// handler hears ``Event/lost`` when the connection breaks and ``Event/subscribed`` each time the
/// subscription is in place again, so a user of the messages can look again at what it waits for
/// (the API's job waiters do) and poll while it is down. It reconnects with the configuration's
/// backoff until ``close()``.
public final class RedisSubscriber: Sendable {
    /// What the subscriber tells its handler.
    public enum Event: Sendable, Equatable {
        /// Subscribed to every pattern, at the start or after a reconnect: earlier messages may be lost.
        case subscribed
        /// A message published on `channel`.
        case message(channel: String, payload: [UInt8])
        /// The connection broke: messages are lost until the next ``subscribed``.
        case lost
    }

    private let closed = ClosedFlag()
    /// The subscriber's channel on the event-loop transport (TLS); `nil` on a thread of its own.
    private let engine: RedisChannelEngine?

    /// Starts following `patterns` (glob patterns, as `PSUBSCRIBE` takes them).
    public init(
        configuration: RedisConfiguration, patterns: [String], logger: Logger = Logger(label: "tern.redis.subscriber"),
        handler: @escaping @Sendable (Event) -> Void
    ) {
        let closed = self.closed
        if configuration.effectiveTransport == .eventLoop {
            engine = RedisChannelSubscription.start(
                configuration: configuration, patterns: patterns, logger: logger, handler: handler)
            return
        }
        engine = nil
        let thread = Thread {
            var pipe = sigset_t()
            sigemptyset(&pipe)
            sigaddset(&pipe, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipe, nil)
            RedisSubscriberLoop(
                configuration: configuration, patterns: patterns, logger: logger, handler: handler, closed: closed
            ).run()
        }
        thread.name = "tern-redis-subscriber"
        thread.start()
    }

    /// Stops following; the thread ends within 100 ms. Idempotent.
    public func close() {
        closed.value.store(true, ordering: .sequentiallyConsistent)
        engine?.close()
    }

    deinit { close() }
}

/// The subscriber's thread: connect, subscribe, read messages; on any error, reconnect.
private struct RedisSubscriberLoop {
    let configuration: RedisConfiguration
    let patterns: [String]
    let logger: Logger
    let handler: @Sendable (RedisSubscriber.Event) -> Void
    let closed: ClosedFlag

    private var isClosed: Bool { closed.value.load(ordering: .sequentiallyConsistent) }

    func run() {
        var failures = 0
        while !isClosed {
            switch RedisHandshake.open(configuration, attempt: failures) {
            case .success(let context):
                let subscribed = follow(context)
                redisFree(context)
                if subscribed {
                    failures = 0
                    if !isClosed { handler(.lost) }
                }
            case .failure(let error):
                logger.debug("subscriber cannot connect", metadata: ["error": "\(error)"])
            }
            failures += 1
            pause(configuration.reconnectBackoff.delay(attempt: failures))
        }
    }

    /// Subscribes and hands on messages until the connection fails or the subscriber closes.
    /// Returns whether the subscription was ever in place.
    private func follow(_ context: UnsafeMutablePointer<redisContext>) -> Bool {
        var payload: [UInt8] = []
        RedisCommand("PSUBSCRIBE", arguments: patterns).encode(into: &payload)
        let appended = payload.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        guard appended == REDIS_OK else { return false }
        var confirmations = 0
        while !isClosed {
            var descriptor = pollfd(
                fd: context.pointee.fd,
                events: Int16(POLLIN) | (tern_redis_has_pending_output(context) != 0 ? Int16(POLLOUT) : 0), revents: 0)
            let ready = poll(&descriptor, 1, 100)
            if ready < 0 && errno != EINTR { break }
            if descriptor.revents & Int16(POLLOUT) != 0 {
                var done: Int32 = 0
                guard redisBufferWrite(context, &done) == REDIS_OK else { break }
            }
            guard descriptor.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
            guard redisBufferRead(context) == REDIS_OK else { break }
            while true {
                var raw: UnsafeMutableRawPointer?
                guard redisGetReplyFromReader(context, &raw) == REDIS_OK else {
                    logger.warning("subscriber: unreadable reply", metadata: ["error": "\(RedisHandshake.errorText(context))"])
                    return confirmations >= patterns.count
                }
                guard let raw else { break }
                let value = RedisReply.value(of: raw.assumingMemoryBound(to: redisReply.self))
                freeReplyObject(raw)
                switch RedisPush(value) {
                case .confirmation:
                    confirmations += 1
                    if confirmations == patterns.count { handler(.subscribed) }
                case .message(let channel, let payload): handler(.message(channel: channel, payload: payload))
                case .other: break
                case .unexpected:
                    logger.warning("subscriber: unexpected reply", metadata: ["reply": "\(value)"])
                    return confirmations >= patterns.count
                }
            }
        }
        return confirmations >= patterns.count
    }

    /// Sleeps for `delay` in steps of 100 ms, ending early once closed.
    private func pause(_ delay: Duration) {
        let end = ContinuousClock.now + delay
        while !isClosed && ContinuousClock.now < end {
            usleep(UInt32(min(100_000, max(1_000, (end - ContinuousClock.now).nanoseconds / 1_000))))
        }
    }
}

/// Set once the subscriber is closed; shared with its thread.
final class ClosedFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// What a subscribed connection received.
enum RedisPush {
    /// A `psubscribe` confirmation of one pattern.
    case confirmation
    /// A `pmessage` on `channel`.
    case message(channel: String, payload: [UInt8])
    /// Another push, ignored.
    case other
    /// Not a push at all: the connection is out of step.
    case unexpected

    init(_ value: RedisValue) {
        guard case .array(let parts) = value, let kind = parts.first?.string else {
            self = .unexpected
            return
        }
        switch kind {
        case "psubscribe": self = .confirmation
        case "pmessage" where parts.count == 4:
            if let channel = parts[2].string, let bytes = parts[3].bytes {
                self = .message(channel: channel, payload: bytes)
            } else {
                self = .other
            }
        default: self = .other
        }
    }
}
