import Logging
import ServiceLifecycle
import TernCore

/// A ``JobWorker`` as a `Service`, with what it needs around it.
///
/// In a `ServiceGroup`, graceful shutdown (the first SIGTERM or SIGINT) is
/// ``JobWorker/shutdown(waitingForJobs:)``: no more claims, running jobs get the grace period.
/// Cancellation (a second signal, or the grace period passing) releases the running jobs at once.
/// `prepare` runs first (the start-up check of Redis, loading the Functions library), so a signal
/// that arrives meanwhile still stops the worker cleanly; the dependency store is shut down after
/// the worker has stopped.
public struct WorkerService: Service {
    public let worker: JobWorker
    let dependencies: DependencyStore
    let prepare: @Sendable () async throws -> Void

    public init(_ worker: JobWorker, dependencies: DependencyStore = .empty, prepare: @escaping @Sendable () async throws -> Void = {}) {
        self.worker = worker
        self.dependencies = dependencies
        self.prepare = prepare
    }

    public func run() async throws {
        let worker = self.worker
        var failure: (any Error)?
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                do {
                    try await prepare()
                    try await worker.run()
                } catch {
                    failure = error
                }
            } onCancel: {
                worker.shutdown(waitingForJobs: false)
            }
        } onGracefulShutdown: {
            worker.shutdown()
        }
        await dependencies.shutdown()
        if let failure { throw failure }
    }
}
