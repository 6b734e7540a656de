import ArgumentParser
import Foundation
import NIOHTTP1

/// `tern top`: queues and workers, refreshed every second until `q` or Ctrl-C.
struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top", abstract: "A live view of queues and workers; q or Ctrl-C quits.",
        discussion: """
            Redraws every --interval seconds. When standard input or output is not a terminal it \
            prints one view and exits.

            Example:
              tern top --interval 2
            """)
    @OptionGroup var options: ClientOptions
    @Option(help: "Seconds between refreshes, 0.2-60. (default: 1)") var interval: Double = 1

    func validate() throws {
        guard interval.isFinite, (0.2...60).contains(interval) else { throw ValidationError("--interval must be 0.2-60 seconds") }
    }

    func run() async throws {
        try await runClient {
            let client = try options.client()
            let interactive = isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1
            let terminal = interactive ? RawTerminal() : nil
            defer { terminal?.restore() }
            while true {
                let queues = try await client.allQueues()
                let workers = (try await client.call(.GET, "/v1/workers") as? [String: Any])?["workers"] as? [[String: Any]] ?? []
                if interactive { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print("tern top — \(client.base) — \(ISO8601DateFormatter().string(from: Date()))\(interactive ? "   (q quits)" : "")\n")
                printQueues(queues)
                print("")
                printWorkers(workers)
                fflush(nil)
                guard let terminal else { return }
                if terminal.waitForQuit(seconds: interval) { return }
            }
        }
    }
}

/// The terminal in raw mode (no echo, no line buffering, Ctrl-C read as a key), restored on exit.
final class RawTerminal {
    private var saved = termios()

    init() {
        tcgetattr(STDIN_FILENO, &saved)
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        print("\u{1B}[?25l", terminator: "")  // hide the cursor
    }

    func restore() {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved)
        print("\u{1B}[?25h", terminator: "")
        fflush(nil)
    }

    /// Waits up to `seconds` for a key; `true` for q, Q, Ctrl-C or the end of input.
    func waitForQuit(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let left = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, left) > 0 else { return false }
            var byte: UInt8 = 0
            let count = read(STDIN_FILENO, &byte, 1)
            if count <= 0 || byte == UInt8(ascii: "q") || byte == UInt8(ascii: "Q") || byte == 3 { return true }
        }
    }
}
