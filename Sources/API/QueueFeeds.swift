import Synchronization

/// The live streams of `GET /v1/queues/{queue}/events`, by their queue's events channel, fed by the
/// ``JobNotifier``'s subscription: every change the Functions publish on that queue, whether
/// changes are pushed now, and the stream's own ticks.
final class QueueFeeds: Sendable {
    /// What a stream writes next.
    enum Item: Sendable, Equatable {
        /// A published change: `<kind> <id> [<id> ...]` (a final state, `retrying` or `progress`).
        case change(kind: String, ids: [String])
        /// Whether changes are pushed now (the subscription is up).
        case pushed(Bool)
        /// Nothing happened for a while: write a comment so that proxies keep the connection.
        case keepAlive
    }

    /// One stream's feed: its items, and how many were dropped because it fell behind.
    final class Feed: Sendable {
        let items: AsyncStream<Item>
        fileprivate let continuation: AsyncStream<Item>.Continuation
        private let dropped = Atomic<Int>(0)

        fileprivate init() {
            (items, continuation) = AsyncStream.makeStream(of: Item.self, bufferingPolicy: .bufferingNewest(QueueFeeds.buffered))
        }

        /// Adds an item; counts it as dropped if the stream is `buffered` items behind.
        func send(_ item: Item) {
            if case .dropped = continuation.yield(item) { dropped.add(1, ordering: .relaxed) }
        }

        /// The items dropped since the last call.
        func takeDropped() -> Int { dropped.exchange(0, ordering: .relaxed) }

        /// Ends the stream.
        func finish() { continuation.finish() }
    }

    /// The most items a stream holds for a slow reader; older ones are dropped (and reported).
    static let buffered = 1_000

    private let feeds = Mutex<(next: UInt64, byChannel: [String: [UInt64: Feed]])>((0, [:]))

    /// A new feed of `channel`'s changes; it stops being fed once its stream ends.
    func follow(_ channel: String) -> Feed {
        let feed = Feed()
        let number = feeds.withLock { state -> UInt64 in
            state.next += 1
            state.byChannel[channel, default: [:]][state.next] = feed
            return state.next
        }
        feed.continuation.onTermination = { [weak self] _ in
            self?.feeds.withLock { state in
                state.byChannel[channel]?[number] = nil
                if state.byChannel[channel]?.isEmpty == true { state.byChannel[channel] = nil }
            }
        }
        return feed
    }

    /// Passes a message published on `channel` to its feeds.
    func publish(_ channel: String, _ payload: [UInt8]) {
        guard let targets = feeds.withLock({ $0.byChannel[channel].map { Array($0.values) } }), !targets.isEmpty else { return }
        let words = payload.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        guard let kind = words.first, words.count > 1 else { return }
        let item = Item.change(kind: kind, ids: Array(words.dropFirst()))
        for feed in targets { feed.send(item) }
    }

    /// Tells every feed whether changes are pushed now.
    func pushed(_ live: Bool) {
        let all = feeds.withLock { $0.byChannel.values.flatMap(\.values) }
        for feed in all { feed.send(.pushed(live)) }
    }
}
