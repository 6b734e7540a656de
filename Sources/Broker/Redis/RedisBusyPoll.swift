import TernCore

/// Decides how long a connection's thread busy-polls instead of sleeping.
///
/// On virtual machines a thread wake-up costs about as much as a loopback round trip, so a thread
/// that sleeps while a reply is on its way, and again between a reply and the caller's next command,
/// halves the rate of a caller that awaits each command. Busy-polling for a short while avoids both
/// wake-ups. The window adapts: it is twice the recent average reply time (at least 50 µs), and
/// polling is skipped altogether while replies take longer than the configured cap, so a slow
/// server or a blocking command never turns into a spinning thread.
struct RedisBusyPoll {
    /// The configured cap; zero turns busy-polling off.
    let cap: Duration
    /// An exponentially weighted average of reply times, in nanoseconds (weight 1/8).
    private(set) var averageReplyNanos: Int64 = 0

    init(cap: Duration) {
        self.cap = cap
    }

    /// Records how long a request waited for its last reply.
    mutating func record(replyTime: Duration) {
        let sample = replyTime.nanoseconds
        averageReplyNanos = averageReplyNanos == 0 ? sample : averageReplyNanos + (sample - averageReplyNanos) / 8
    }

    /// How long to poll for replies before sleeping; zero when polling is off or unlikely to pay.
    var replyWindow: Duration {
        let capNanos = cap.nanoseconds
        guard capNanos > 0, averageReplyNanos <= capNanos else { return .zero }
        return .nanoseconds(min(capNanos, max(50_000, 2 * averageReplyNanos)))
    }

    /// How long to look for the caller's next command after a completion before sleeping.
    var idleWindow: Duration {
        replyWindow == .zero ? .zero : min(replyWindow, cap / 2)
    }
}
