/// A capped exponential backoff with jitter, used for reconnects and (later) job retries.
///
/// The n-th delay (n starting at 1) is `min(cap, base × 2^(n-1))`, of which the upper half is drawn at
/// random ("equal jitter"): callers that fail together spread out, and the delay never falls below
/// half the nominal value, so a down dependency is never hammered.
///
/// ```swift
/// let backoff = Backoff(base: .milliseconds(25), cap: .seconds(1))
/// let delay = backoff.delay(attempt: 3)  // between 50 ms and 100 ms
/// ```
public struct Backoff: Sendable, Hashable {
    /// The nominal first delay.
    public var base: Duration
    /// The largest nominal delay.
    public var cap: Duration

    /// Creates a backoff.
    /// - Parameters:
    ///   - base: the nominal first delay (default 25 ms).
    ///   - cap: the largest nominal delay (default 1 s).
    public init(base: Duration = .milliseconds(25), cap: Duration = .seconds(1)) {
        self.base = base
        self.cap = max(cap, base)
    }

    /// The nominal (un-jittered) delay before attempt `attempt` (1-based); 0 for attempts below 1.
    public func nominalDelay(attempt: Int) -> Duration {
        guard attempt >= 1 else { return .zero }
        let capNanos = cap.nanoseconds
        var nanos = base.nanoseconds
        guard nanos > 0 else { return .zero }
        for _ in 1..<attempt {
            if nanos >= capNanos / 2 { return cap }
            nanos *= 2
        }
        return .nanoseconds(min(nanos, capNanos))
    }

    /// The delay before attempt `attempt` with equal jitter: uniformly in `[d/2, d]` for nominal `d`.
    public func delay<G: RandomNumberGenerator>(attempt: Int, using generator: inout G) -> Duration {
        let nominal = nominalDelay(attempt: attempt).nanoseconds
        guard nominal > 1 else { return .nanoseconds(nominal) }
        let half = nominal / 2
        return .nanoseconds(half + Int64.random(in: 0...(nominal - half), using: &generator))
    }

    /// The delay before attempt `attempt` with equal jitter, using the system's random generator.
    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating at `Int64.max`.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (fromSeconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return fromSeconds.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }

    /// For messages: `250 ms`, `2 s`, `3.5 s`.
    public var shortDescription: String {
        let milliseconds = nanoseconds / 1_000_000
        if milliseconds < 1000 { return "\(milliseconds) ms" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000) s" }
        let tenths = (milliseconds + 50) / 100
        return "\(tenths / 10).\(tenths % 10) s"
    }
}
