import Foundation
import Testing
import TernCore

/// Checks a measured duration against its bound and prints it as a `timing:` line, so that
/// `scripts/soak-tests` can report the worst value of each over many runs and show the margin
/// every bound keeps (the suite's rule: at least twice the worst value seen on a loaded machine).
func recordTiming(
    _ name: String, _ value: Duration, bound: Duration, sourceLocation: SourceLocation = #_sourceLocation
) {
    let milliseconds = Double(value.nanoseconds) / 1e6
    let boundMilliseconds = Double(bound.nanoseconds) / 1e6
    print("timing: \(name) | \(String(format: "%.1f", milliseconds)) ms | bound \(String(format: "%.0f", boundMilliseconds)) ms")
    #expect(value < bound, "\(name): \(value), bound \(bound)", sourceLocation: sourceLocation)
}

/// The worst heartbeat delay a worker process logged when it stopped (`worst_heartbeat_delay_ms`),
/// the largest if several processes did.
func worstHeartbeatDelay(in log: String) -> Int? {
    let pattern = /worst_heartbeat_delay_ms[=:" ]+(\d+)/
    return log.matches(of: pattern).compactMap { Int($0.output.1) }.max()
}

/// A child process spinning on one core until stopped: load from outside the worker under test.
final class CPUHog: @unchecked Sendable {
    private let process = Process()

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "while :; do :; done"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Kills it; calling it again does nothing.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
