import Dispatch
import Foundation

/// SIGTERM and SIGINT: the first asks for a graceful stop (`onFirst`). A second one calls
/// `onSecond` — stop faster, still releasing jobs — and exits at once if there is none; the process
/// also exits 10 s after it, or after the grace period plus 10 s, if it has not stopped by itself.
/// Unchecked: the dispatch sources are only created in `init` and cancelled in `cancel()`.
final class ShutdownSignals: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]

    init(grace: Duration, onFirst: @escaping @Sendable () -> Void, onSecond: (@Sendable () -> Void)? = nil) {
        let queue = DispatchQueue(label: "tern.signals")
        let count = Counter()
        sources = [SIGTERM, SIGINT].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler {
                let seen = count.increment()
                if seen == 1 {
                    printError("tern: stopping (signal \(signalNumber)); a second signal stops faster")
                    onFirst()
                    let seconds = Double(grace.components.seconds) + 10
                    queue.asyncAfter(deadline: .now() + seconds) {
                        printError("tern: jobs did not stop within the grace period; exiting")
                        exit(0)
                    }
                } else if seen == 2, let onSecond {
                    printError("tern: second signal; releasing running jobs now")
                    onSecond()
                    queue.asyncAfter(deadline: .now() + 10) {
                        printError("tern: did not stop within 10 s of the second signal; exiting")
                        exit(0)
                    }
                } else {
                    printError("tern: exiting now")
                    exit(0)
                }
            }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }

    /// Only touched on the signal queue.
    private final class Counter: @unchecked Sendable {
        private var value = 0
        func increment() -> Int {
            value += 1
            return value
        }
    }
}
