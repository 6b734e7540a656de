import Foundation
import Synchronization

/// What a worker's health probes read (`tern worker --metrics-port` serves them as `/healthz` and
/// `/readyz`): whether its duty thread still runs its rounds, and whether Redis still lists it.
public struct WorkerHealth: Sendable {
    /// When the duty thread last began a round of heartbeats and registration; `nil` before the
    /// worker has started.
    public var lastDutyRound: ContinuousClock.Instant?
    /// When the worker last registered itself in Redis (its entry in `tern workers`); `nil` before
    /// the first registration.
    public var lastRegistered: ContinuousClock.Instant?
    /// Why the last registration failed, if it did.
    public var registrationError: String?
    /// The worker is shutting down.
    public var stopping: Bool
    /// How long the duty thread waits between rounds (``WorkerConfiguration/heartbeatInterval``).
    public var interval: Duration
    /// How long a registration lasts in Redis (five intervals and 2 s).
    public var registrationTTL: Duration

    public init(
        lastDutyRound: ContinuousClock.Instant?, lastRegistered: ContinuousClock.Instant?, registrationError: String?,
        stopping: Bool, interval: Duration, registrationTTL: Duration
    ) {
        self.lastDutyRound = lastDutyRound
        self.lastRegistered = lastRegistered
        self.registrationError = registrationError
        self.stopping = stopping
        self.interval = interval
        self.registrationTTL = registrationTTL
    }

    /// Why the worker is not alive, or `nil` when it is: its duty thread (heartbeats, registration)
    /// has made no progress for three intervals and 30 s (stuck: restart it). Progress is marked at
    /// each round and after each call to Redis, so a slow or absent Redis (each call ends within
    /// the command timeout) does not count. A worker that has not started yet is alive.
    public func notAlive(at now: ContinuousClock.Instant = .now) -> String? {
        guard let last = lastDutyRound else { return nil }
        let silent = now - last
        guard silent > interval * 3 + .seconds(30) else { return nil }
        return "the worker's heartbeat thread has not run for \(silent.seconds) s"
    }

    /// Why the worker is not ready, or `nil` when it is: it is stopping, has not registered yet, or
    /// its registration in Redis has lapsed (Redis unreachable).
    public func notReady(at now: ContinuousClock.Instant = .now) -> String? {
        if stopping { return "the worker is stopping" }
        guard let registered = lastRegistered else { return "the worker has not registered in Redis yet" }
        let since = now - registered
        guard since > registrationTTL else { return nil }
        return "the worker has not registered in Redis for \(since.seconds) s" + (registrationError.map { ": \($0)" } ?? "")
    }
}

extension Duration {
    /// Whole seconds, for messages.
    fileprivate var seconds: Int64 { components.seconds }
}

extension JobWorker {
    /// How long a registration lasts in Redis.
    static func registrationTTL(_ configuration: WorkerConfiguration) -> Duration { configuration.heartbeatInterval * 5 + .seconds(2) }

    /// What the health probes read now.
    public var health: WorkerHealth {
        state.withLock { state in
            WorkerHealth(
                lastDutyRound: state.lastDutyRound, lastRegistered: state.lastRegistered, registrationError: state.registrationError,
                stopping: state.stopping, interval: configuration.heartbeatInterval, registrationTTL: Self.registrationTTL(configuration))
        }
    }
}
