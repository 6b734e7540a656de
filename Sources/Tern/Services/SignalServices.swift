import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import Worker

/// How every command's `ServiceGroup` treats signals: the first SIGTERM or SIGINT starts a graceful
/// shutdown; a second one calls the command's `onSecond` (a worker then releases its running jobs
/// at once; swift-service-lifecycle does not let one signal both shut down and cancel). A graceful
/// shutdown that outlasts `grace` plus 10 s becomes a cancellation, which a worker treats as a
/// second signal, and a cancellation that outlasts 10 s ends the process (swift-service-lifecycle
/// stops it with a fatal error, exit by SIGILL) so a stuck job cannot keep it alive.
enum StopSignals {
    static let trapped: [UnixSignal] = [.sigterm, .sigint]

    /// A group of `services` (first started first, stopped last) that handles signals as above
    /// when `handlingSignals`; a test runs it without them and calls `triggerGracefulShutdown()`.
    static func group(
        _ services: [any Service], grace: Duration, logger: Logger, handlingSignals: Bool, secondSignal: String,
        onSecond: @escaping @Sendable () -> Void = {}
    ) -> ServiceGroup {
        var all = services.map {
            ServiceGroupConfiguration.ServiceConfiguration(
                service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .cancelGroup)
        }
        if handlingSignals {
            // First, so it is stopped last and still reports a second signal during the shutdown.
            all.insert(.init(service: SignalNotices(secondSignal: secondSignal, onSecond: onSecond), successTerminationBehavior: .gracefullyShutdownGroup), at: 0)
        }
        var configuration = ServiceGroupConfiguration(
            services: all, gracefulShutdownSignals: handlingSignals ? trapped : [],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = grace + .seconds(10)
        configuration.maximumCancellationDuration = .seconds(10)
        return ServiceGroup(configuration: configuration)
    }
}

/// Prints what a stop signal does, on standard error: `tern: stopping (signal 15); a second signal
/// stops faster` (the group starts its graceful shutdown), then `secondSignal`, and calls
/// `onSecond` for the second signal.
struct SignalNotices: Service {
    let secondSignal: String
    let onSecond: @Sendable () -> Void

    func run() async throws {
        var seen = 0
        for await signal in await UnixSignalsSequence(trapping: StopSignals.trapped).cancelOnGracefulShutdown() {
            seen += 1
            if seen == 1 {
                printError("tern: stopping (signal \(signal.rawValue)); a second signal stops faster")
            } else if seen == 2 {
                printError(secondSignal)
                onSecond()
            }
        }
    }
}

/// Calls `action` on every SIGTSTP until the group shuts down: a worker or a supervisor goes quiet.
/// The signal is ignored from the moment the service is made, and then handled, so it never
/// suspends the process (a suspended worker would lose its jobs' leases). The processes it starts
/// get SIGTSTP's default back at exec and ignore it themselves (`tern worker`'s child and
/// isolated-job modes).
struct QuietSignalService: Service {
    let action: @Sendable () -> Void

    init(action: @escaping @Sendable () -> Void) {
        signal(SIGTSTP, SIG_IGN)
        self.action = action
    }

    func run() async throws {
        let source = DispatchSource.makeSignalSource(signal: SIGTSTP, queue: .global())
        source.setEventHandler(handler: action)
        source.resume()
        defer { source.cancel() }
        try? await gracefulShutdown()
    }
}

/// Calls `action` on every SIGHUP until the group shuts down.
struct HangupService: Service {
    let action: @Sendable () -> Void

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            action()
        }
    }
}

/// The watches of a supervised worker process: its memory cap (every 2 s) and its supervisor (every
/// second; a process whose supervisor died drains and exits). Ends with the group.
struct ChildWatchService: Service {
    let recycler: Recycler
    let supervisorPID: Int32?
    let worker: JobWorker
    let logger: Logger

    func run() async throws {
        let (recycler, supervisor, worker, logger) = (self.recycler, supervisorPID, self.worker, self.logger)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await recycler.watchMemory() }
                group.addTask {
                    guard let supervisor else { return }
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        if getppid() != supervisor {
                            logger.warning("the supervisor is gone; stopping this worker process")
                            worker.shutdown()
                            return
                        }
                    }
                }
            }
        }
        try? await gracefulShutdown()
    }
}

/// Runs `body` once (`tern dev`'s demo jobs), then waits for the group to shut down.
struct DemoService: Service {
    let body: @Sendable () async throws -> Void

    func run() async throws {
        try await body()
        try? await gracefulShutdown()
    }
}
