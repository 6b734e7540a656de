import Foundation

/// Names the calling thread, as `top -H`, `perf` and `/proc` show it.
enum ThreadName {
    /// Sets the calling thread's name (at most 15 bytes are kept). On Linux it writes the kernel's
    /// copy directly: Foundation's `Thread.name` setter applies it only when it already knows the
    /// thread as its own, which a thread that names itself first thing may not be yet.
    static func set(_ name: String) {
        Thread.current.name = name
        #if os(Linux)
        try? name.write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
        #endif
    }
}
