import Dispatch
import Foundation

/// SIGTERM and SIGINT: the first asks for a graceful stop; a second one, or the grace period plus
/// 10 s, exits at once (running jobs were already released or will be reaped after their lease).
/// Unchecked: the dispatch sources are only created in `init` and cancelled in `cancel()`.
final class ShutdownSignals: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]

    init(grace: Duration, onFirst: @escaping @Sendable () -> Void) {
        let queue = DispatchQueue(label: "tern.signals")
        let count = Counter()
        sources = [SIGTERM, SIGINT].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler {
                if count.increment() == 1 {
                    printError("tern: stopping (signal \(signalNumber)); a second signal exits at once")
                    onFirst()
                    let seconds = Double(grace.components.seconds) + 10
                    queue.asyncAfter(deadline: .now() + seconds) {
                        printError("tern: jobs did not stop within the grace period; exiting")
                        exit(0)
                    }
                } else {
                    printError("tern: second signal; exiting now")
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
