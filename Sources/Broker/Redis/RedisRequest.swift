import Synchronization

/// Commands submitted together, waiting for their replies.
///
/// The caller's task parks on a continuation installed here; the connection's thread completes it.
/// Exactly one of completion and cancellation resumes the continuation. A cancelled request stays in
/// the connection's queue and its replies are read and dropped, so reply order never slips.
final class RedisRequest: Sendable {
    enum Waiter {
        case single(UnsafeContinuation<RedisValue, any Error>)
        case batch(UnsafeContinuation<[RedisValue], any Error>)
    }

    private enum State {
        case idle
        case waiting(Waiter)
        case cancelled
        case finished
    }

    /// The encoded commands.
    let payload: [UInt8]
    /// How many replies complete this request.
    let replyCount: Int
    /// How long the request may wait for its last reply, counted from ``submitted``.
    let timeout: Duration
    /// When the caller submitted it: time spent waiting for a connection counts against the timeout.
    let submitted = ContinuousClock.now
    private let state = Mutex<State>(.idle)

    init(payload: [UInt8], replyCount: Int, timeout: Duration) {
        self.payload = payload
        self.replyCount = replyCount
        self.timeout = timeout
    }

    /// Installs the caller's continuation; `false` if the request was cancelled first, in which case
    /// the caller resumes the continuation itself.
    func install(_ waiter: Waiter) -> Bool {
        state.withLock { state in
            guard case .idle = state else { return false }
            state = .waiting(waiter)
            return true
        }
    }

    /// Resumes the caller with `CancellationError`; the replies, when they come, are dropped.
    func cancel() {
        let waiter: Waiter? = state.withLock { state in
            switch state {
            case .idle:
                state = .cancelled
                return nil
            case .waiting(let waiter):
                state = .cancelled
                return waiter
            case .cancelled, .finished:
                return nil
            }
        }
        switch waiter {
        case .single(let continuation): continuation.resume(throwing: CancellationError())
        case .batch(let continuation): continuation.resume(throwing: CancellationError())
        case nil: break
        }
    }

    private func takeWaiter() -> Waiter? {
        state.withLock { state in
            guard case .waiting(let waiter) = state else { return nil }
            state = .finished
            return waiter
        }
    }

    /// Completes a one-command request; an error reply is thrown as ``RedisError/server(_:)``.
    func succeed(single value: RedisValue) {
        switch takeWaiter() {
        case .single(let continuation):
            if case .error(let error) = value {
                continuation.resume(throwing: RedisError.server(error))
            } else {
                continuation.resume(returning: value)
            }
        case .batch(let continuation): continuation.resume(returning: [value])
        case nil: break
        }
    }

    /// Completes a pipelined request with one reply per command, error replies included as values.
    func succeed(batch values: [RedisValue]) {
        switch takeWaiter() {
        case .single(let continuation): continuation.resume(returning: values.first ?? .null)
        case .batch(let continuation): continuation.resume(returning: values)
        case nil: break
        }
    }

    /// Fails the request.
    func fail(_ error: RedisError) {
        switch takeWaiter() {
        case .single(let continuation): continuation.resume(throwing: error)
        case .batch(let continuation): continuation.resume(throwing: error)
        case nil: break
        }
    }
}
