import Foundation
import Synchronization

/// A wall clock that moves only when a test moves it: the time of a ``TernTestHarness``'s memory
/// broker, so that delays, retries and expiry happen when the test says, not when the machine does.
public final class TestClock: Sendable {
    private let milliseconds: Mutex<Int64>

    /// A clock that starts at `start` (default 2026-01-01 00:00:00 UTC).
    public init(start: Date = Date(timeIntervalSince1970: 1_767_225_600)) {
        milliseconds = Mutex(Int64((start.timeIntervalSince1970 * 1000).rounded()))
    }

    /// Now, in milliseconds since 1970.
    public var nowMilliseconds: Int64 { milliseconds.withLock { $0 } }

    /// Now.
    public var now: Date { Date(timeIntervalSince1970: Double(nowMilliseconds) / 1000) }

    /// Moves the clock forward by `duration` (rounded down to whole milliseconds; never backward).
    public func advance(by duration: Duration) {
        let step = max(0, duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        milliseconds.withLock { $0 += step }
    }
}
