import Broker
import Synchronization
import TernCore

/// Wakes the requests that wait for a job (`?wait=`, event streams) when Redis publishes a change
/// of it, instead of having them read the job again and again.
///
/// The Functions publish each final state, retry and progress on the queue's events channel; one
/// ``RedisSubscriber`` per API process follows every queue's channel, started by the first waiter.
/// A waiter arms a ticket before it reads the job, so a change published between the read and the
/// wait still wakes it. While the subscription is down (and for a broker without one, such as the
/// memory broker) ``arm(_:)`` answers `nil` and the waiter polls, as before; when the subscription
/// comes back, or breaks, every waiter is woken to read again, so no change is missed.
final class JobNotifier: Sendable {
    /// A waiter's claim on the next change of one job.
    struct Ticket: Sendable {
        let id: JobID
        let number: UInt64
    }

    private enum Slot {
        case armed
        case fired
        case waiting(CheckedContinuation<Void, Never>)
    }

    private struct State {
        var live = false
        var next: UInt64 = 0
        var slots: [JobID: [UInt64: Slot]] = [:]
        var subscriber: RedisSubscriber?
        /// Counts every change heard (and every start or loss of the subscription), for the
        /// dashboard's live streams.
        var generation: UInt64 = 0
        /// Live streams waiting for the next change, by number.
        var watchers: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())
    private let start: (@Sendable (JobNotifier) -> RedisSubscriber)?
    /// The events channel of a queue, on a broker that publishes changes.
    private let channel: (@Sendable (QueueName) -> String)?
    /// The live streams of queues' changes (`GET /v1/queues/{queue}/events`).
    let queueFeeds = QueueFeeds()

    /// A notifier for `broker`'s jobs; pushes only from a ``RedisJobBroker``.
    init(broker: any JobBroker) {
        guard let redis = broker as? RedisJobBroker else {
            start = nil
            channel = nil
            return
        }
        let configuration = redis.client.configuration, pattern = redis.keys.eventsPattern, keys = redis.keys
        channel = { keys.events($0) }
        start = { notifier in
            RedisSubscriber(configuration: configuration, patterns: [pattern]) { [weak notifier] event in notifier?.handle(event) }
        }
    }

    deinit { state.withLock { $0.subscriber }?.close() }

    /// Whether changes are being pushed now.
    var isLive: Bool { state.withLock { $0.live } }

    /// A ticket that the next published change of `id` fires; `nil` while changes are not pushed
    /// (the caller polls instead). Starts the subscription on first use.
    func arm(_ id: JobID) -> Ticket? {
        guard start != nil else { return nil }
        let (ticket, starting) = state.withLock { state -> (Ticket?, Bool) in
            let starting = state.subscriber == nil
            guard state.live else { return (nil, starting) }
            state.next += 1
            state.slots[id, default: [:]][state.next] = .armed
            return (Ticket(id: id, number: state.next), false)
        }
        if starting { startSubscription() }
        return ticket
    }

    private func startSubscription() {
        guard let start else { return }
        let subscriber = start(self)
        let extra: RedisSubscriber? = state.withLock { state in
            if state.subscriber == nil {
                state.subscriber = subscriber
                return nil
            }
            return subscriber
        }
        extra?.close()
    }

    /// The number of changes heard so far, and whether changes are pushed now; starts the
    /// subscription on first use. A broker without pushes answers `(0, false)`.
    func generation() -> (UInt64, live: Bool) {
        guard start != nil else { return (0, false) }
        let (generation, live, starting) = state.withLock { ($0.generation, $0.live, $0.subscriber == nil) }
        if starting { startSubscription() }
        return (generation, live)
    }

    /// A feed of `queue`'s published changes, and whether changes are pushed now; `nil` for a broker
    /// that publishes none (the memory broker). Starts the subscription on first use.
    func follow(_ queue: QueueName) -> (feed: QueueFeeds.Feed, pushed: Bool)? {
        guard let channel else { return nil }
        let feed = queueFeeds.follow(channel(queue))
        return (feed, generation().live)
    }

    /// Waits until a change after `generation` is heard, the deadline passes, or the task is
    /// cancelled.
    func waitForChange(after generation: UInt64, until deadline: ContinuousClock.Instant) async {
        let number = state.withLock { state in
            state.next += 1
            return state.next
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let resume = self.state.withLock { state -> Bool in
                            // A cancellation already delivered finds nothing to resume: look first.
                            guard state.generation == generation, !Task.isCancelled else { return true }
                            state.watchers[number] = continuation
                            return false
                        }
                        if resume { continuation.resume() }
                    }
                } onCancel: {
                    self.state.withLock { $0.watchers.removeValue(forKey: number) }?.resume()
                }
            }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            await group.next()
            group.cancelAll()
        }
        state.withLock { $0.watchers.removeValue(forKey: number) }?.resume()
    }

    /// Counts a change and wakes every live stream.
    private func changed() {
        let watchers = state.withLock { state in
            state.generation &+= 1
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.resume() }
    }

    /// Waits until `ticket` fires (a change of its job, or the subscription came or went), the
    /// deadline passes, or the task is cancelled.
    func wait(_ ticket: Ticket, until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.park(ticket) }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            await group.next()
            group.cancelAll()
            fire(ticket)
        }
        state.withLock { state in
            state.slots[ticket.id]?[ticket.number] = nil
            if state.slots[ticket.id]?.isEmpty == true { state.slots[ticket.id] = nil }
        }
    }

    /// What the subscriber heard.
    func handle(_ event: RedisSubscriber.Event) {
        switch event {
        case .subscribed, .lost:
            let live = event == .subscribed
            let ids = state.withLock { state in
                state.live = live
                return Array(state.slots.keys)
            }
            for id in ids { fireAll(id) }
            changed()
            queueFeeds.pushed(live)
        case .message(let channel, let payload):
            changed()
            queueFeeds.publish(channel, payload)
            // `<what> <id> [<id> ...]`
            for word in payload.split(separator: UInt8(ascii: " ")).dropFirst() {
                if let id = JobID(String(decoding: word, as: UTF8.self)) { fireAll(id) }
            }
        }
    }

    private func park(_ ticket: Ticket) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resume = state.withLock { state -> Bool in
                    guard case .armed? = state.slots[ticket.id]?[ticket.number] else { return true }
                    state.slots[ticket.id]?[ticket.number] = .waiting(continuation)
                    return false
                }
                if resume { continuation.resume() }
            }
        } onCancel: {
            fire(ticket)
        }
    }

    private func fire(_ ticket: Ticket) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            switch state.slots[ticket.id]?[ticket.number] {
            case .armed?:
                state.slots[ticket.id]?[ticket.number] = .fired
                return nil
            case .waiting(let continuation)?:
                state.slots[ticket.id]?[ticket.number] = .fired
                return continuation
            case .fired?, nil:
                return nil
            }
        }
        continuation?.resume()
    }

    private func fireAll(_ id: JobID) {
        let continuations = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard let slots = state.slots[id] else { return [] }
            var woken: [CheckedContinuation<Void, Never>] = []
            for (number, slot) in slots {
                if case .waiting(let continuation) = slot { woken.append(continuation) }
                state.slots[id]?[number] = .fired
            }
            return woken
        }
        for continuation in continuations { continuation.resume() }
    }
}
