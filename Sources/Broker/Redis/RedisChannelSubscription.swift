import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A ``RedisSubscriber`` on the event-loop transport (TLS): a channel engine whose pushes are the
/// subscription's messages. It subscribes on every connect and reports losses, as the thread does.
enum RedisChannelSubscription {
    static func start(
        configuration: RedisConfiguration, patterns: [String], logger: Logger,
        handler: @escaping @Sendable (RedisSubscriber.Event) -> Void
    ) -> RedisChannelEngine {
        let state = Confirmations()
        return RedisChannelEngine(
            configuration: configuration, logger: logger, eventLoop: MultiThreadedEventLoopGroup.singleton.next()
        ) { engine, event in
            switch event {
            case .established:
                state.count.store(0, ordering: .relaxed)
                var payload: [UInt8] = []
                RedisCommand("PSUBSCRIBE", arguments: patterns).encode(into: &payload)
                engine.sendUnanswered(payload)
            case .lost:
                if state.count.load(ordering: .relaxed) >= patterns.count { handler(.lost) }
                state.count.store(0, ordering: .relaxed)
            case .push(let value):
                switch RedisPush(value) {
                case .confirmation:
                    let confirmed = state.count.add(1, ordering: .relaxed).newValue
                    if confirmed == patterns.count { handler(.subscribed) }
                case .message(let channel, let payload): handler(.message(channel: channel, payload: payload))
                case .other: break
                case .unexpected:
                    logger.warning("subscriber: unexpected reply", metadata: ["reply": "\(value)"])
                    engine.reopen(.protocolError("unexpected reply on a subscribed connection: \(value)"))
                }
            }
        }
    }

    /// How many patterns the current connection has confirmed.
    private final class Confirmations: Sendable {
        let count = Atomic<Int>(0)
    }
}
