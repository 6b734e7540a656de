import Foundation

/// The wall clock, in milliseconds since 1970. Used only to stamp ids; due times and leases use
/// Redis's clock.
public enum WallClock {
    /// Now, in milliseconds since 1970.
    public static func nowMilliseconds() -> UInt64 {
        UInt64(max(0, Date().timeIntervalSince1970 * 1000))
    }
}
