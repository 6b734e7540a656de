import TernCore
import CHiredis
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One connection to Redis, multiplexed among any number of concurrent callers.
///
/// Each connection owns a thread that does all of hiredis's blocking work, so the cooperative thread
/// pool never blocks. Commands from concurrent callers are written together as they arrive and their
/// replies matched in order (automatic pipelining); ``pipeline(_:timeout:)`` sends many commands in one go.
///
/// The connection connects in the background as soon as it is created and reconnects by itself when
/// it breaks: the first attempt at once, then with capped, jittered backoff. Commands submitted
/// while it is connecting wait for the attempt; commands submitted while it waits to retry fail at
/// once with ``RedisError/notConnected(_:)``, so no caller hangs on a dead server.
///
/// ```swift
/// let connection = RedisConnection(configuration: try RedisConfiguration(url: "redis://127.0.0.1:6379"))
/// defer { connection.close() }
/// let pong = try await connection.send(RedisCommand("PING"))
/// ```
///
/// A caller whose task is cancelled gets `CancellationError` at once (unless it is inside
/// ``RedisCancellationShield/shielded(_:)``); the command may still run, and
/// its reply is read and dropped. Use a ``RedisClient`` for a pool and for blocking commands.
public final class RedisConnection: Sendable {
    let engine: any RedisEngine
    let configuration: RedisConfiguration
    /// The event loop this connection's channel lives on, or `nil` on a thread of its own.
    let eventLoop: (any EventLoop)?
    private let waitingCount = Atomic<Int>(0)

    /// Creates a connection and starts connecting in the background, on the configuration's
    /// ``RedisConfiguration/transport``.
    /// - Parameters:
    ///   - configuration: where and how to connect.
    ///   - logger: receives connection-state messages (lost, restored) and debug detail.
    public convenience init(configuration: RedisConfiguration, logger: Logger = RedisConnection.silentLogger) {
        self.init(configuration: configuration, logger: logger, eventLoop: nil)
    }

    /// A connection whose channel lives on `eventLoop` when the transport is the event loop's
    /// (the next loop of `MultiThreadedEventLoopGroup.singleton` when `nil`).
    init(configuration: RedisConfiguration, logger: Logger, eventLoop: (any EventLoop)?) {
        self.configuration = configuration
        switch configuration.effectiveTransport {
        case .eventLoop:
            let loop = eventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
            self.eventLoop = loop
            engine = RedisChannelEngine(configuration: configuration, logger: logger, eventLoop: loop)
        case .dedicatedThread:
            let core = RedisConnectionCore(configuration: configuration, logger: logger)
            let loop = RedisConnectionLoop(core: core)
            let thread = Thread { loop.run() }
            thread.name = "tern-redis"
            thread.start()
            self.eventLoop = nil
            engine = core
        }
    }

    deinit { engine.close() }

    /// A logger that drops everything, the default for library use.
    public static let silentLogger = Logger(label: "tern.redis", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Commands sent through this connection whose callers are still waiting.
    public var waiting: Int { waitingCount.load(ordering: .relaxed) }

    /// Sends one command and returns its reply.
    /// - Parameters:
    ///   - command: the command.
    ///   - timeout: how long to wait for the reply; the configured command timeout by default.
    /// - Throws: ``RedisError`` (an error reply is ``RedisError/server(_:)``), or `CancellationError`.
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        try Self.checkSupported(command)
        if RedisCommand.transactionCommands.contains(command.name) {
            throw RedisError.misuse("\(command.name) on its own would capture other callers' commands: send MULTI … EXEC as one pipeline")
        }
        var payload: [UInt8] = []
        command.encode(into: &payload)
        let request = RedisRequest(
            payload: payload, replyCount: 1, timeout: timeout ?? configuration.commandTimeout)
        return try await perform(request) { .single($0) }
    }

    /// Sends many commands in one write and returns one reply per command, in order.
    ///
    /// An error reply to one command is returned as ``RedisValue/error(_:)`` in its place and does not
    /// fail the others. The timeout covers the whole batch.
    public func pipeline(_ commands: [RedisCommand], timeout: Duration? = nil) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        let transaction = commands.map { RedisCommand.transactionCommands.contains($0.name) }
        if transaction.contains(true) {
            let wellFormed =
                commands.first?.name == "MULTI" && ["EXEC", "DISCARD"].contains(commands.last?.name)
                && transaction.dropFirst().dropLast().allSatisfy { !$0 } && commands.count >= 2
            guard wellFormed else {
                throw RedisError.misuse("a pipeline may hold one transaction: MULTI first, EXEC or DISCARD last, nothing else of the kind")
            }
        }
        var payload: [UInt8] = []
        payload.reserveCapacity(commands.count * 32)
        for command in commands {
            try Self.checkSupported(command)
            command.encode(into: &payload)
        }
        let request = RedisRequest(
            payload: payload, replyCount: commands.count, timeout: timeout ?? configuration.commandTimeout)
        return try await perform(request) { .batch($0) }
    }

    /// Parks the caller on a continuation that the connection's thread resumes with the replies,
    /// or that cancellation resumes with `CancellationError` (the replies are then dropped).
    private func perform<Value>(
        _ request: RedisRequest, _ waiter: (UnsafeContinuation<Value, any Error>) -> RedisRequest.Waiter
    ) async throws -> Value {
        waitingCount.add(1, ordering: .relaxed)
        defer { waitingCount.subtract(1, ordering: .relaxed) }
        // Shielded: the reply is awaited whatever the task's cancellation (the timeout still bounds it).
        if RedisCancellationShield.isActive { return try await submit(request, waiter) }
        return try await withTaskCancellationHandler {
            try await submit(request, waiter)
        } onCancel: {
            request.cancel()
        }
    }

    private func submit<Value>(
        _ request: RedisRequest, _ waiter: (UnsafeContinuation<Value, any Error>) -> RedisRequest.Waiter
    ) async throws -> Value {
        try await withUnsafeThrowingContinuation { continuation in
            guard request.install(waiter(continuation)) else {
                continuation.resume(throwing: CancellationError())
                return
            }
            engine.submit(request)
        }
    }

    /// Whether the connection is up right now.
    public var isConnected: Bool { engine.isConnected }

    /// Closes the connection and ends its thread. Commands not yet sent fail with
    /// ``RedisError/closed``; commands waiting for their reply fail with
    /// ``RedisError/connectionLost(_:)``, as they may have run. Idempotent.
    public func close() { engine.close() }

    private static func checkSupported(_ command: RedisCommand) throws(RedisError) {
        if command.changesReplyMode {
            throw .misuse("\(command.name) changes the connection's reply mode and is not supported by this client")
        }
    }
}

/// What carries a ``RedisConnection``'s requests: a thread of its own, or an event loop.
protocol RedisEngine: AnyObject, Sendable {
    /// Sends the request, or fails it (closed, not connected) without sending.
    func submit(_ request: RedisRequest)
    var isConnected: Bool { get }
    /// Fails unsent requests with `closed` and written ones with `connectionLost`. Idempotent.
    func close()
}

/// The state a ``RedisConnection`` on the dedicated-thread transport shares with its thread.
final class RedisConnectionCore: RedisEngine {
    enum Phase {
        /// A connect attempt is under way or about to start; submitted requests wait for it.
        case connecting
        case connected
        /// The last attempt failed; submitted requests fail with `notConnected` until the next one.
        case waiting(RedisError)
        case closed
    }

    struct Inbox {
        var queued: [RedisRequest] = []
        var phase: Phase = .connecting
        /// Whether the thread is, or is about to be, parked in `poll` and needs the event fd written.
        var threadParked = false
    }

    let configuration: RedisConfiguration
    let logger: Logger
    /// An eventfd that wakes the connection's thread; closed when both sides are gone.
    let wakeDescriptor: Int32
    let inbox = Mutex(Inbox())

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "redis"] = "\(configuration.endpointDescription)"
        self.logger = logger
        self.wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        if wakeDescriptor < 0 {
            // Without its wake-up descriptor the thread could sleep through submissions: refuse work.
            let reason = String(cString: strerror(errno))
            logger.error("cannot create the connection's eventfd", metadata: ["error": "\(reason)"])
            inbox.withLock { $0.phase = .waiting(.connectFailed("cannot create an eventfd: \(reason)")) }
        }
    }

    deinit { if wakeDescriptor >= 0 { _ = Glibc.close(wakeDescriptor) } }

    var isConnected: Bool {
        inbox.withLock { if case .connected = $0.phase { true } else { false } }
    }

    /// Queues a request for the thread, or fails it at once while the connection is down or closed.
    func submit(_ request: RedisRequest) {
        enum Outcome { case queued, wake, failed(RedisError) }
        let outcome: Outcome = inbox.withLock { inbox in
            switch inbox.phase {
            case .closed:
                return .failed(.closed)
            case .waiting(let error):
                return .failed(Self.refusal(for: error))
            case .connecting, .connected:
                inbox.queued.append(request)
                guard inbox.threadParked else { return .queued }
                inbox.threadParked = false
                return .wake
            }
        }
        switch outcome {
        case .queued: break
        case .wake: wake()
        case .failed(let error): request.fail(error)
        }
    }

    /// What a request submitted while backing off after `cause` fails with (both transports): it
    /// was never sent, whatever broke the connection (a reply lost or timed out belongs to the
    /// requests that were in flight then, not to this one).
    static func refusal(for cause: RedisError) -> RedisError {
        notConnected(cause)
    }

    private static func notConnected(_ cause: RedisError) -> RedisError {
        switch cause {
        case .authenticationFailed, .notConnected, .closed, .misuse, .invalidConfiguration, .unsupported: cause
        case .connectFailed(let text): .notConnected(text)
        default: .notConnected(cause.description)
        }
    }

    func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeDescriptor, &one, 8)
    }

    func close() {
        let wasOpen = inbox.withLock { inbox in
            if case .closed = inbox.phase { return false }
            inbox.phase = .closed
            return true
        }
        if wasOpen { wake() }
    }
}
