import CHiredis
import Foundation
import Logging
import Synchronization
import TernCore

/// The thread side of a ``RedisConnection``: the only code that touches its `redisContext`.
///
/// One loop per connection: take queued requests, append them to hiredis's output buffer, and `poll`
/// the socket (for replies and for room to write) together with the wake-up eventfd. Replies are
/// matched to requests in order. Any error discards the context, fails the requests that were
/// written (their outcome is unknown) and reconnects; requests not yet written wait for the new
/// connection.
final class RedisConnectionLoop: @unchecked Sendable {
    private struct InFlight {
        let request: RedisRequest
        var replies: [RedisValue]
        let sentAt: ContinuousClock.Instant
        let deadline: ContinuousClock.Instant
    }

    private let core: RedisConnectionCore
    private var context: UnsafeMutablePointer<redisContext>?
    private var inFlight: [InFlight] = []
    private var head = 0
    /// Consecutive failed connect attempts.
    private var failedAttempts = 0
    private var everConnected = false
    /// Whether the current connection has answered a command; until it has, a break counts as a
    /// failed attempt, so a server that accepts and drops connections is not hammered.
    private var answered = false
    /// A reply of the request being completed was `READONLY` (a replica answered): once that request
    /// has all its replies, the connection is reopened after a backoff, to find the primary again.
    private var readOnly = false
    private var outage: (since: ContinuousClock.Instant, reason: String)?
    /// When the last request completed; the loop spins briefly after it (see ``spinForWork()``).
    private var lastCompletion: ContinuousClock.Instant?
    private var busyPoll: RedisBusyPoll
    /// In-flight requests whose timeout differs from the configured one; while there are any,
    /// every deadline is checked, not only the oldest request's.
    private var customTimeouts = 0

    init(core: RedisConnectionCore) {
        self.core = core
        self.busyPoll = RedisBusyPoll(cap: core.configuration.busyPoll)
    }

    func run() {
        // hiredis writes with write(2): a peer that closed a unix socket would raise SIGPIPE and kill
        // the process. Blocked on this thread, the write fails with EPIPE and the context is discarded.
        var pipe = sigset_t()
        sigemptyset(&pipe)
        sigaddset(&pipe, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipe, nil)
        while true {
            if context == nil {
                guard connectOnce() else { break }
            } else {
                guard serviceOnce() else { break }
            }
        }
        shutDown()
    }

    // MARK: Connecting

    /// Makes one connect attempt, then waits out the backoff if it failed. `false` once closed.
    private func connectOnce() -> Bool {
        if isClosed || core.wakeDescriptor < 0 { return false }
        switch RedisHandshake.open(core.configuration, attempt: failedAttempts) {
        case .success(let newContext):
            let closed = core.inbox.withLock { inbox -> Bool in
                if case .closed = inbox.phase { return true }
                inbox.phase = .connected
                return false
            }
            context = newContext
            answered = false
            expireQueued()
            if let outage {
                let seconds = Double((ContinuousClock.now - outage.since).nanoseconds) / 1e9
                core.logger.notice(
                    "Redis connection restored",
                    metadata: ["down_seconds": "\(String(format: "%.3f", seconds))"])
            } else if !everConnected {
                core.logger.debug("Redis connected")
            }
            everConnected = true
            outage = nil
            return !closed
        case .failure(let error):
            failedAttempts += 1
            if outage == nil {
                outage = (ContinuousClock.now, error.description)
                core.logger.warning("Redis unavailable", metadata: ["error": "\(error)"])
            } else {
                core.logger.debug("Redis connect attempt failed", metadata: ["error": "\(error)"])
            }
            guard backOff(error, failingQueuedWith: error) else { return false }
            return core.inbox.withLock { inbox in
                if case .closed = inbox.phase { return false }
                inbox.phase = .connecting
                return true
            }
        }
    }

    /// Waits out the backoff for the current failed attempt with the phase `waiting(cause)`, so that
    /// new commands fail fast; queued ones fail with `queuedError` (they were never sent).
    /// `false` once the connection is closed.
    private func backOff(_ cause: RedisError, failingQueuedWith queuedError: RedisError) -> Bool {
        let waiting: [RedisRequest]? = core.inbox.withLock { inbox in
            if case .closed = inbox.phase { return nil }
            inbox.phase = .waiting(cause)
            defer { inbox.queued.removeAll() }
            return inbox.queued
        }
        guard let waiting else { return false }
        for request in waiting { request.fail(queuedError) }
        sleepUnlessWoken(for: core.configuration.reconnectBackoff.delay(attempt: failedAttempts))
        return true
    }

    /// Fails queued requests whose timeout ran out while no connection was up; they were never sent.
    private func expireQueued() {
        let now = ContinuousClock.now
        let expired: [RedisRequest] = core.inbox.withLock { inbox in
            let (late, onTime) = inbox.queued.reduce(into: ([RedisRequest](), [RedisRequest]())) { split, request in
                if request.submitted + request.timeout <= now { split.0.append(request) } else { split.1.append(request) }
            }
            inbox.queued = onTime
            return late
        }
        for request in expired {
            request.fail(.notConnected("no connection to Redis within the command timeout of \(request.timeout)"))
        }
    }

    /// Sleeps for `delay`, or less if ``RedisConnection/close()`` wakes the thread.
    private func sleepUnlessWoken(for delay: Duration) {
        let end = ContinuousClock.now + delay
        while !isClosed {
            let remaining = end - ContinuousClock.now
            guard remaining > .zero else { return }
            var descriptor = pollfd(fd: core.wakeDescriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, Self.milliseconds(remaining))
            drainWakeups()
        }
    }

    private var isClosed: Bool {
        core.inbox.withLock { if case .closed = $0.phase { true } else { false } }
    }

    // MARK: Serving

    /// One round: write what was queued, wait for the socket or a wake-up, read replies.
    private func serviceOnce() -> Bool {
        guard let context else { return true }
        if head == inFlight.count { spinForWork() }
        let taken: [RedisRequest]? = core.inbox.withLock { inbox in
            if case .closed = inbox.phase { return nil }
            inbox.threadParked = true
            var taken: [RedisRequest] = []
            swap(&taken, &inbox.queued)
            return taken
        }
        guard let taken else { return false }
        if !taken.isEmpty {
            let now = ContinuousClock.now
            for (index, request) in taken.enumerated() {
                let status = request.payload.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) {
                        redisAppendFormattedCommand(context, $0.baseAddress, $0.count)
                    }
                }
                guard status == REDIS_OK else {
                    // Not written: these callers learn the command was never sent.
                    let text = RedisHandshake.errorText(context)
                    for unsent in taken[index...] { unsent.fail(.notConnected(text)) }
                    return discard(.connectionLost(text))
                }
                inFlight.append(
                    InFlight(request: request, replies: [], sentAt: now, deadline: request.submitted + request.timeout))
                if request.timeout != core.configuration.commandTimeout { customTimeouts += 1 }
            }
            var done: Int32 = 0
            if redisBufferWrite(context, &done) != REDIS_OK {
                return discard(.connectionLost(RedisHandshake.errorText(context)))
            }
        }
        var descriptors = [
            pollfd(
                fd: context.pointee.fd,
                events: Int16(POLLIN) | (tern_redis_has_pending_output(context) != 0 ? Int16(POLLOUT) : 0),
                revents: 0),
            pollfd(fd: core.wakeDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        let deadline = earliestDeadline()
        let timeout = deadline.map { Self.milliseconds($0 - .now) } ?? -1
        var ready = Int32(0)
        let window = busyPoll.replyWindow
        if window > .zero && inFlight.count > head {
            let end = ContinuousClock.now + window
            repeat {
                ready = poll(&descriptors, 2, 0)
            } while ready == 0 && ContinuousClock.now < end
        }
        if ready == 0 { ready = poll(&descriptors, 2, timeout) }
        if ready < 0 && errno != EINTR {
            return discard(.connectionLost("poll failed: \(String(cString: strerror(errno)))"))
        }
        if descriptors[1].revents != 0 { drainWakeups() }
        let socketEvents = descriptors[0].revents
        if socketEvents & Int16(POLLOUT) != 0 {
            var done: Int32 = 0
            if redisBufferWrite(context, &done) != REDIS_OK {
                return discard(.connectionLost(RedisHandshake.errorText(context)))
            }
        }
        if socketEvents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            if redisBufferRead(context) != REDIS_OK {
                return discard(.connectionLost(RedisHandshake.errorText(context)))
            }
            if let error = deliverReplies(context) { return discard(error) }
        }
        if let deadline = earliestDeadline(), ContinuousClock.now >= deadline {
            return discardAfterTimeout()
        }
        return true
    }

    /// The earliest deadline among in-flight requests. With one timeout for all, that is the oldest
    /// request's; requests with their own timeouts make it a scan.
    private func earliestDeadline() -> ContinuousClock.Instant? {
        guard head < inFlight.count else { return nil }
        guard customTimeouts > 0 else { return inFlight[head].deadline }
        return inFlight[head...].lazy.map(\.deadline).min()
    }

    /// Discards the connection because a request waited past its deadline: requests whose deadline
    /// passed fail with `timeout`; the others in flight lose their connection with it.
    private func discardAfterTimeout() -> Bool {
        let now = ContinuousClock.now
        let expired = Set(inFlight[head...].filter { $0.deadline <= now }.map { ObjectIdentifier($0.request) })
        let firstExpired = inFlight[head...].first { $0.deadline <= now } ?? inFlight[head]
        let reason = RedisError.timeout(firstExpired.request.timeout)
        return discard(reason) { request in
            expired.contains(ObjectIdentifier(request))
                ? .timeout(request.timeout)
                : .connectionLost("the connection was reset because another command on it timed out")
        }
    }

    /// Looks for queued requests without parking for a short while after the last completion (see
    /// ``RedisBusyPoll``), so that a caller that sends its next command right after a reply needs
    /// no wake-up.
    private func spinForWork() {
        guard let lastCompletion else { return }
        let end = lastCompletion + busyPoll.idleWindow
        while ContinuousClock.now < end {
            let ready = core.inbox.withLock { inbox in
                if case .closed = inbox.phase { return true }
                return !inbox.queued.isEmpty
            }
            if ready { break }
        }
        self.lastCompletion = nil
    }

    /// Hands every complete reply in hiredis's buffer to its request. Returns an error that must
    /// discard the connection.
    private func deliverReplies(_ context: UnsafeMutablePointer<redisContext>) -> RedisError? {
        while true {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(context, &raw) == REDIS_OK else {
                return .protocolError(RedisHandshake.errorText(context))
            }
            guard let raw else { return nil }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            let value = RedisReply.value(of: reply)
            freeReplyObject(raw)
            guard head < inFlight.count else {
                return .protocolError("a reply arrived that no command was waiting for")
            }
            let request = inFlight[head].request
            if value.isReadOnlyError { readOnly = true }
            if request.replyCount == 1 {
                complete()
                request.succeed(single: value)
                if readOnly { return readOnlyReopen() }
            } else {
                if inFlight[head].replies.isEmpty { inFlight[head].replies.reserveCapacity(request.replyCount) }
                inFlight[head].replies.append(value)
                if inFlight[head].replies.count == request.replyCount {
                    let values = inFlight[head].replies
                    inFlight[head].replies = []
                    complete()
                    request.succeed(batch: values)
                    if readOnly { return readOnlyReopen() }
                }
            }
        }
    }

    /// The error that reopens the connection after a READONLY reply, through the backoff.
    private func readOnlyReopen() -> RedisError {
        readOnly = false
        answered = false
        return .connectionLost(RedisValue.readOnlyReason)
    }

    /// Retires the oldest in-flight request.
    private func complete() {
        let now = ContinuousClock.now
        if !answered {
            answered = true
            failedAttempts = 0
        }
        lastCompletion = now
        busyPoll.record(replyTime: now - inFlight[head].sentAt)
        if inFlight[head].request.timeout != core.configuration.commandTimeout { customTimeouts -= 1 }
        head += 1
        if head == inFlight.count {
            inFlight.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= inFlight.count {
            inFlight.removeFirst(head)
            head = 0
        }
    }

    /// Discards the context after an error: requests already written fail with `error` (their
    /// outcome is unknown); queued ones wait for the reconnect, which starts at once.
    private func discard(_ error: RedisError, errorFor: ((RedisRequest) -> RedisError)? = nil) -> Bool {
        if let context { redisFree(context) }
        context = nil
        readOnly = false
        let failed = inFlight[head...].map(\.request)
        inFlight.removeAll()
        head = 0
        customTimeouts = 0
        if outage == nil {
            outage = (ContinuousClock.now, error.description)
            core.logger.warning("Redis connection lost", metadata: ["error": "\(error)"])
        }
        for request in failed { request.fail(errorFor?(request) ?? error) }
        if !answered {
            // The connection broke before answering anything: back off before the next attempt,
            // failing new commands fast meanwhile, instead of reconnecting in a hot loop.
            failedAttempts += 1
            guard backOff(error, failingQueuedWith: .notConnected(error.description)) else { return false }
        }
        return core.inbox.withLock { inbox in
            if case .closed = inbox.phase { return false }
            inbox.phase = .connecting
            return true
        }
    }

    private func shutDown() {
        if let context { redisFree(context) }
        context = nil
        let queued = core.inbox.withLock { inbox in
            defer { inbox.queued.removeAll() }
            return inbox.queued
        }
        // Written but unanswered: they may have run.
        for entry in inFlight[head...] {
            entry.request.fail(.connectionLost("the connection was closed before the reply arrived"))
        }
        inFlight.removeAll()
        for request in queued { request.fail(.closed) }
    }

    private func drainWakeups() {
        var value: UInt64 = 0
        _ = read(core.wakeDescriptor, &value, 8)
    }

    /// A poll timeout in whole milliseconds, rounded up, at least 0.
    static func milliseconds(_ duration: Duration) -> Int32 {
        let nanos = duration.nanoseconds
        guard nanos > 0 else { return 0 }
        return Int32(clamping: (nanos + 999_999) / 1_000_000)
    }
}
