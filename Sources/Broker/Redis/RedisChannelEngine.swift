import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import TernCore

/// The event-loop side of a ``RedisConnection`` on the ``RedisConfiguration/Transport/eventLoop``
/// transport: a SwiftNIO channel (with TLS when configured) whose bytes hiredis's reader parses.
///
/// All state but the connected flag belongs to one event loop. A caller already on that loop (an
/// API handler) writes its command and gets its reply there, with no thread hop; callers elsewhere
/// hop onto the loop once. The behaviour is the dedicated-thread transport's: automatic pipelining
/// (commands submitted in one loop tick go out in one write), replies matched in order, one
/// deadline per request, reconnection with the configured backoff, and fail-fast while backing off.
final class RedisChannelEngine: RedisEngine, @unchecked Sendable {
    private enum Phase {
        /// A connect or its handshake is under way; submitted requests queue for it.
        case connecting
        /// Handshake commands sent on `channel`, `answered` of `steps` replies in.
        case handshaking(any Channel, steps: [[String]], answered: Int)
        case connected(any Channel)
        /// Backing off after a failed attempt; requests fail at once.
        case waiting(RedisError)
        case closed
    }

    private struct InFlight {
        let request: RedisRequest
        var replies: [RedisValue]
        let deadline: ContinuousClock.Instant
    }

    /// What a subscriber hears from the engine (see ``init(configuration:logger:eventLoop:events:)``).
    enum Event {
        /// Connected and ready, at the start or after a reconnect.
        case established
        /// A reply no request waits for: a pub/sub push.
        case push(RedisValue)
        /// The connection broke.
        case lost
    }

    let eventLoop: any EventLoop
    private let configuration: RedisConfiguration
    /// Set for a subscriber: replies nobody waits for go here instead of failing the connection.
    private let events: (@Sendable (RedisChannelEngine, Event) -> Void)?
    private let logger: Logger
    private let connectedFlag = Atomic<Bool>(false)
    /// While backing off or closed, the error new requests fail with: read by ``submit(_:)`` on any
    /// thread, so a caller fails fast without a hop to a loop that may be busy.
    private let refusal = Mutex<RedisError?>(nil)

    // Owned by `eventLoop`.
    private var phase = Phase.connecting
    private var queued: [RedisRequest] = []
    private var inFlight = CircularBuffer<InFlight>(initialCapacity: 64)
    private var generation = 0
    private var failedAttempts = 0
    private var everConnected = false
    private var answered = false
    /// The TLS context, built at the first connect and after a TLS failure.
    private var tlsContext: NIOSSLContext?
    /// A reply of the request being completed was `READONLY`.
    private var readOnly = false
    private var outage: (since: ContinuousClock.Instant, reason: String)?
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: ContinuousClock.Instant?

    /// Starts connecting on `eventLoop`. With `events`, the engine serves a subscriber: it hears
    /// each connect and loss, and every reply no request waits for. `events` runs on the loop.
    init(
        configuration: RedisConfiguration, logger: Logger, eventLoop: any EventLoop,
        events: (@Sendable (RedisChannelEngine, Event) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.events = events
        var logger = logger
        logger[metadataKey: "redis"] = "\(configuration.endpointDescription)"
        self.logger = logger
        self.eventLoop = eventLoop
        eventLoop.execute { self.connect() }
    }

    var isConnected: Bool { connectedFlag.load(ordering: .relaxed) }

    func submit(_ request: RedisRequest) {
        if let error = refusal.withLock({ $0 }) { return request.fail(error) }
        if eventLoop.inEventLoop {
            enqueue(request)
        } else {
            eventLoop.execute { self.enqueue(request) }
        }
    }

    func close() {
        eventLoop.execute { self.shutDown() }
    }

    // MARK: Requests

    private func enqueue(_ request: RedisRequest) {
        switch phase {
        case .closed: request.fail(.closed)
        case .waiting(let error): request.fail(RedisConnectionCore.refusal(for: error))
        case .connecting, .handshaking: queued.append(request)
        case .connected(let channel): write(request, on: channel)
        }
    }

    private func write(_ request: RedisRequest, on channel: any Channel) {
        var buffer = channel.allocator.buffer(capacity: request.payload.count)
        buffer.writeBytes(request.payload)
        channel.write(buffer, promise: nil)
        let deadline = request.submitted + request.timeout
        inFlight.append(InFlight(request: request, replies: [], deadline: deadline))
        armTimer(for: deadline)
        guard !flushScheduled else { return }
        flushScheduled = true
        // Commands submitted in this tick join the same write.
        eventLoop.execute {
            self.flushScheduled = false
            if case .connected(let current) = self.phase, current === channel { channel.flush() }
        }
    }

    /// A reply from the channel of `generation`.
    func received(_ value: RedisValue, generation: Int) {
        guard generation == self.generation else { return }
        switch phase {
        case .handshaking(let channel, let steps, let count):
            if let error = RedisHandshake.check(steps[count], value) {
                connectFailed(error)  // first: it retires this channel's generation
                return channel.close(promise: nil)
            }
            if count + 1 == steps.count {
                established(channel)
            } else {
                phase = .handshaking(channel, steps: steps, answered: count + 1)
            }
        case .connected:
            deliver(value)
        case .connecting, .waiting, .closed:
            break
        }
    }

    /// Drops the connection (a subscriber out of step) and reconnects after a backoff. Loop only.
    func reopen(_ reason: RedisError) {
        answered = false
        discard(reason)
    }

    /// Writes commands whose replies nobody waits for; they reach `events` as pushes. Loop only.
    func sendUnanswered(_ payload: [UInt8]) {
        guard case .connected(let channel) = phase else { return }
        var buffer = channel.allocator.buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        channel.writeAndFlush(buffer, promise: nil)
    }

    private func deliver(_ value: RedisValue) {
        if !answered {
            answered = true
            failedAttempts = 0
        }
        if inFlight.isEmpty, let events { return events(self, .push(value)) }
        guard !inFlight.isEmpty else {
            return discard(.protocolError("a reply arrived that no command was waiting for"))
        }
        if value.isReadOnlyError { readOnly = true }
        let request = inFlight[inFlight.startIndex].request
        if request.replyCount == 1 {
            inFlight.removeFirst()
            request.succeed(single: value)
        } else {
            inFlight[inFlight.startIndex].replies.append(value)
            guard inFlight[inFlight.startIndex].replies.count == request.replyCount else { return }
            let values = inFlight.removeFirst().replies
            request.succeed(batch: values)
        }
        // A replica answered: once the request that got READONLY has its replies, reopen after a
        // backoff (counted as a failed attempt, so a replica at a fixed address is not hammered).
        if readOnly {
            readOnly = false
            answered = false
            discard(.connectionLost(RedisValue.readOnlyReason))
        }
    }

    /// The channel of `generation` closed; `cause` is what closed it, if known.
    func closed(generation: Int, cause: (any Error)?) {
        guard generation == self.generation else { return }
        if let cause, Self.isTLSError(cause) { tlsContext = nil }
        let text = cause.map { Self.describe($0) } ?? "the server closed the connection"
        switch phase {
        case .connecting, .handshaking: connectFailed(.connectFailed("\(configuration.endpointDescription): \(text)"))
        case .connected: discard(.connectionLost(text))
        case .waiting, .closed: break
        }
    }

    /// The channel of `generation` sent bytes hiredis cannot parse.
    func unreadable(_ error: RedisError, generation: Int) {
        guard generation == self.generation else { return }
        if case .connected = phase { discard(error) } else { connectFailed(error) }
    }

    // MARK: Connecting

    private func connect() {
        guard case .connecting = phase else { return }
        generation += 1
        let generation = self.generation
        guard let sentinel = configuration.sentinel else {
            return open(configuration.endpoint(attempt: failedAttempts), generation: generation)
        }
        // Sentinel's answer comes from blocking calls: off the loop, on NIO's thread pool.
        let timeout = configuration.connectTimeout
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) { try sentinel.resolve(timeout: timeout).get() }
            .whenComplete { result in
                guard generation == self.generation, case .connecting = self.phase else { return }
                switch result {
                case .success(let primary): self.open(primary, generation: generation)
                case .failure(let error): self.connectFailed(error as? RedisError ?? .connectFailed("\(error)"))
                }
            }
    }

    /// Connects to `endpoint` (the configured one, or the primary Sentinel named).
    private func open(_ endpoint: RedisConfiguration.Endpoint, generation: Int) {
        var sslContext: NIOSSLContext?
        if let tls = configuration.tls {
            if configuration.sentinel != nil && tls.serverName == nil {
                // Sentinel is asked in plain text: the name to check must not come from its answer.
                return connectFailed(.invalidConfiguration("TLS through Sentinel needs the server name to check (RedisTLS.serverName)"))
            }
            // Built once (it reads the files); again only after a TLS failure, which may be a renewed certificate.
            if tlsContext == nil {
                do throws(RedisError) {
                    tlsContext = try tls.makeContext()
                } catch {
                    return connectFailed(error)
                }
            }
            sslContext = tlsContext
        }
        let serverName = configuration.tls.flatMap { $0.serverName ?? Self.hostName(endpoint) }
        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(configuration.connectTimeout.nanoseconds))
            .channelInitializer { [self] channel in
                do {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        RedisReplyChannelHandler(engine: self, generation: generation))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let connecting: EventLoopFuture<any Channel>
        switch endpoint {
        case .tcp(let host, let port):
            bootstrap = bootstrap
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
            // An address needs no resolver (which runs getaddrinfo off the loop): connect at once.
            if let address = try? SocketAddress(ipAddress: host, port: port) {
                connecting = bootstrap.connect(to: address)
            } else {
                connecting = bootstrap.connect(host: host, port: port)
            }
        case .unix(let path):
            connecting = bootstrap.connect(unixDomainSocketPath: path)
        }
        connecting.whenComplete { result in
            guard generation == self.generation, case .connecting = self.phase else {
                if case .success(let channel) = result { channel.close(promise: nil) }
                return
            }
            switch result {
            case .failure(let error):
                self.connectFailed(.connectFailed("\(endpoint): \(Self.describe(error))"))
            case .success(let channel):
                self.handshake(channel)
            }
        }
    }

    private func handshake(_ channel: any Channel) {
        let steps = RedisHandshake.steps(configuration)
        guard !steps.isEmpty else { return established(channel) }
        phase = .handshaking(channel, steps: steps, answered: 0)
        var buffer = channel.allocator.buffer(capacity: 128)
        var payload: [UInt8] = []
        for step in steps { RedisCommand(step[0], arguments: Array(step.dropFirst())).encode(into: &payload) }
        buffer.writeBytes(payload)
        channel.writeAndFlush(buffer, promise: nil)
        let generation = self.generation
        eventLoop.scheduleTask(in: .nanoseconds(configuration.connectTimeout.nanoseconds)) {
            guard generation == self.generation, case .handshaking(let channel, _, _) = self.phase else { return }
            self.connectFailed(.connectFailed(
                "\(self.configuration.endpointDescription): no handshake reply within \(self.configuration.connectTimeout)"))
            channel.close(promise: nil)
        }
    }

    private func established(_ channel: any Channel) {
        phase = .connected(channel)
        readOnly = false
        connectedFlag.store(true, ordering: .relaxed)
        answered = false
        if let outage {
            let seconds = Double((ContinuousClock.now - outage.since).nanoseconds) / 1e9
            logger.notice("Redis connection restored", metadata: ["down_seconds": "\(String(format: "%.3f", seconds))"])
        } else if !everConnected {
            logger.debug("Redis connected")
        }
        everConnected = true
        outage = nil
        let now = ContinuousClock.now
        let waiting = queued
        queued.removeAll()
        for request in waiting {
            if request.submitted + request.timeout <= now {
                request.fail(.notConnected("no connection to Redis within the command timeout of \(request.timeout)"))
            } else {
                write(request, on: channel)
            }
        }
        events?(self, .established)
    }

    private func connectFailed(_ error: RedisError) {
        guard !isShutDown else { return }
        generation += 1
        failedAttempts += 1
        if outage == nil {
            outage = (ContinuousClock.now, error.description)
            logger.warning("Redis unavailable", metadata: ["error": "\(error)"])
        } else {
            logger.debug("Redis connect attempt failed", metadata: ["error": "\(error)"])
        }
        backOff(error, failingQueuedWith: error)
    }

    /// Fails queued requests with `queuedError` and fails new ones fast until the next attempt.
    private func backOff(_ cause: RedisError, failingQueuedWith queuedError: RedisError) {
        phase = .waiting(cause)
        refusal.withLock { $0 = RedisConnectionCore.refusal(for: cause) }
        connectedFlag.store(false, ordering: .relaxed)
        let waiting = queued
        queued.removeAll()
        for request in waiting { request.fail(queuedError) }
        eventLoop.scheduleTask(in: .nanoseconds(configuration.reconnectBackoff.delay(attempt: failedAttempts).nanoseconds)) {
            guard case .waiting = self.phase else { return }
            self.phase = .connecting
            self.refusal.withLock { $0 = nil }
            self.connect()
        }
    }

    // MARK: Failures

    /// Drops the channel after an error: requests written on it fail with `error` (their outcome is
    /// unknown); queued ones wait for the reconnect, which starts at once unless the channel never
    /// answered anything.
    private func discard(_ error: RedisError, errorFor: ((RedisRequest) -> RedisError)? = nil) {
        guard case .connected(let channel) = phase else { return }
        generation += 1
        channel.close(promise: nil)
        connectedFlag.store(false, ordering: .relaxed)
        let failed = inFlight.map(\.request)
        inFlight.removeAll()
        if outage == nil {
            outage = (ContinuousClock.now, error.description)
            logger.warning("Redis connection lost", metadata: ["error": "\(error)"])
        }
        for request in failed { request.fail(errorFor?(request) ?? error) }
        events?(self, .lost)
        if !answered {
            failedAttempts += 1
            return backOff(error, failingQueuedWith: .notConnected(error.description))
        }
        phase = .connecting
        connect()
    }

    private func armTimer(for deadline: ContinuousClock.Instant) {
        if let timerDeadline, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        let delay = deadline - .now
        timer = eventLoop.scheduleTask(in: .nanoseconds(max(0, delay.nanoseconds))) { self.timerFired() }
    }

    /// Checks deadlines: past ones discard the connection, else the timer moves to the earliest.
    private func timerFired() {
        timer = nil
        timerDeadline = nil
        guard let earliest = inFlight.lazy.map(\.deadline).min() else { return }
        let now = ContinuousClock.now
        guard earliest <= now else { return armTimer(for: earliest) }
        let expired = Set(inFlight.filter { $0.deadline <= now }.map { ObjectIdentifier($0.request) })
        let first = inFlight.first { $0.deadline <= now }!.request
        discard(.timeout(first.timeout)) { request in
            expired.contains(ObjectIdentifier(request))
                ? .timeout(request.timeout)
                : .connectionLost("the connection was reset because another command on it timed out")
        }
    }

    private var isShutDown: Bool { if case .closed = phase { true } else { false } }

    private func shutDown() {
        guard !isShutDown else { return }
        let open: (any Channel)? =
            switch phase {
            case .connected(let channel), .handshaking(let channel, _, _): channel
            default: nil
            }
        phase = .closed
        refusal.withLock { $0 = .closed }
        generation += 1
        open?.close(promise: nil)
        connectedFlag.store(false, ordering: .relaxed)
        timer?.cancel()
        for entry in inFlight {
            entry.request.fail(.connectionLost("the connection was closed before the reply arrived"))
        }
        inFlight.removeAll()
        for request in queued { request.fail(.closed) }
        queued.removeAll()
    }

    private static func hostName(_ endpoint: RedisConfiguration.Endpoint) -> String? {
        guard case .tcp(let host, _) = endpoint, !host.isIPAddress else { return nil }
        return host
    }

    private static func isTLSError(_ error: any Error) -> Bool {
        error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as NIOSSLError: "TLS: \(error)"
        case let error as BoringSSLError: "TLS: \(error)"
        case let error as NIOSSLExtraError: "TLS: \(error)"
        case let error as IOError: error.description
        default: "\(error)"
        }
    }
}

extension String {
    /// Whether this is an IPv4 or IPv6 literal (TLS then checks the certificate's IP names, not SNI).
    var isIPAddress: Bool {
        (try? SocketAddress(ipAddress: self, port: 0)) != nil
    }
}

/// Feeds a channel's bytes to hiredis's reader and hands each reply to the engine.
final class RedisReplyChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let engine: RedisChannelEngine
    private let generation: Int
    private let reader = RedisReplyReader()
    private var cause: (any Error)?

    init(engine: RedisChannelEngine, generation: Int) {
        self.engine = engine
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            try buffer.withUnsafeReadableBytes { bytes throws(RedisError) in try reader.feed(bytes) }
            while let value = try reader.next() { engine.received(value, generation: generation) }
        } catch {
            engine.unreadable(error, generation: generation)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if cause == nil { cause = error }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        engine.closed(generation: generation, cause: cause)
        context.fireChannelInactive()
    }
}
