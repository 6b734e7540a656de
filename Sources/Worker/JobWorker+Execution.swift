import Broker
import Foundation
import Logging
import Synchronization
import TernCore

extension JobWorker {
    private enum Event: Sendable {
        case finished(Result<Data, any Error>)
        case stopped(JobStop?)
    }

    /// Runs one claimed job and reports its outcome; the task's body runs on `threads` (if `nil`, on
    /// the shared pool).
    func execute(_ job: ClaimedJob, control: JobControl, threads: JobThreads?) async {
        defer { finished(job.id) }
        var logger = self.logger
        // One change of the handler's metadata: each `logger[metadataKey:]` set re-renders it.
        logger.handler.metadata.merge(
            ["job": "\(job.id)", "task": "\(job.task)", "attempt": "\(job.attempt)"], uniquingKeysWith: { $1 })
        guard let entry = registry[job.task] else {
            logger.error("no task is registered under this name")
            await report("fail", id: job.id) {
                _ = try await self.broker.fail(
                    job.lease, message: "unknown task '\(job.task)': no worker of this deployment registers it",
                    retryAfter: nil)
            }
            events?(.finished(JobOutcome(task: job.task, outcome: .failed, duration: .zero)))
            return
        }
        let broker = self.broker
        let lease = job.lease
        let progressLogger = logger
        let context = JobContext(
            id: job.id, attempt: job.attempt, maxAttempts: job.maxAttempts, task: job.task, headers: job.headers,
            logger: logger, dependencies: dependencies
        ) { value, message in
            // Progress is best effort: a Redis outage must not fail the job that reports it.
            do {
                _ = try await broker.progress(lease, value: value, message: message)
            } catch {
                progressLogger.debug("progress not stored", metadata: ["error": "\(error)"])
            }
        }
        logger.debug("job started")
        let middleware = self.middleware
        middleware.emit(JobLifecycleEvent(.started, id: job.id, task: job.task, attempt: job.attempt, headers: job.headers))
        let started = ContinuousClock.now
        var result: Result<Data, any Error>?
        var stop: JobStop?
        // A suspect of an earlier crash runs alone, so that a crash of its own is charged to it only.
        let isolation = configuration.isolation.flatMap { $0.isolates(entry) || job.suspect ? $0 : nil }
        let killGrace = configuration.killGrace, workerID = configuration.workerID
        await withTaskGroup(of: Event.self) { group in
            // A task that only awaits runs on the shared pool (named, not inherited: the caller of
            // run() may prefer another executor): no hop to a job thread and back. An isolated run
            // writes its input to a pipe, which may block: it keeps its job thread.
            let preference: (any TaskExecutor)? = entry.options.nonBlocking && isolation == nil ? globalConcurrentExecutor : threads
            group.addTask(executorPreference: preference) {
                // The task's own Redis calls are cancellable as usual; only the worker's are shielded.
                await RedisCancellationShield.unshielded { () async -> Event in
                    do {
                        let output = try await middleware.run(context) { context in
                            if let isolation {
                                let runner = IsolatedRunner(isolation: isolation, killGrace: killGrace, workerID: workerID)
                                return try await runner.run(job, entry: entry, context: context, control: control)
                            }
                            return try await entry.run(job.input, context)
                        }
                        return .finished(.success(output))
                    } catch {
                        return .finished(.failure(error))
                    }
                }
            }
            group.addTask { .stopped(await control.waitForStop(limit: entry.options.softTimeLimit)) }
            while let event = await group.next() {
                switch event {
                case .finished(let outcome):
                    result = outcome
                    group.cancelAll()
                case .stopped(let reason):
                    if let reason {
                        stop = reason
                        group.cancelAll()
                    }
                }
            }
        }
        let stopAtSettling = control.markSettling()
        taskEnded(job.id)
        let elapsed = ContinuousClock.now - started
        logger[metadataKey: "duration_ms"] = "\(elapsed.nanoseconds / 1_000_000)"
        if stop == nil && stopAtSettling == nil && Task.isCancelled, case .failure? = result {
            // The worker's task was cancelled: the job was interrupted, not failed. Settling, it is
            // no longer the shutdown's to release, so it is released here.
            logger.info("job stopped without a report", metadata: ["reason": "worker cancelled"])
            await report("release", id: job.id) { try await self.broker.release([job.lease]) }
            events?(.finished(JobOutcome(task: job.task, outcome: .released, duration: elapsed)))
            return
        }
        let outcome = await settle(
            job, entry: entry, result: result, stop: stop ?? stopAtSettling, logger: logger, elapsed: elapsed)
        events?(.finished(JobOutcome(task: job.task, outcome: outcome, duration: elapsed)))
    }

    /// Reports the job's outcome; returns its label for metrics.
    private func settle(
        _ job: ClaimedJob, entry: TaskRegistry.Entry, result: Result<Data, any Error>?, stop: JobStop?, logger: Logger,
        elapsed: Duration
    ) async -> JobOutcome.Kind {
        let emit = { @Sendable (kind: JobLifecycleEvent.Kind, error: String?, retryIn: Duration?) in
            self.middleware.emit(JobLifecycleEvent(
                kind, id: job.id, task: job.task, attempt: job.attempt, headers: job.headers, duration: elapsed, error: error,
                retryIn: retryIn))
        }
        switch (stop, result) {
        case (.leaseLost?, _):
            logger.info("job stopped without a report", metadata: ["reason": "\(stop!)"])
            return .leaseLost
        case (.shutdown?, _):
            logger.info("job stopped without a report", metadata: ["reason": "\(stop!)"])
            return .released
        case (_, .success(let output)?) where output.count > configuration.maxResultBytes:
            logger.warning("result too large")
            let message = "result of \(output.count) bytes exceeds the limit of \(configuration.maxResultBytes) bytes"
            let state = await reportFailure(job, message: message, retryAfter: nil)
            if let state { emit(state == .cancelled ? .cancelled : .failed, message, nil) }
            return .failed
        case (_, .success(let output)?):
            logger.info("job succeeded")
            let stored = Mutex(false)
            await report("complete", id: job.id) {
                let fresh = try await self.broker.complete(job.lease, result: output)
                stored.withLock { $0 = fresh }
            }
            if stored.withLock({ $0 }) { emit(.succeeded, nil, nil) }
            return .succeeded
        case (nil, .failure(let crash as IsolatedProcessCrashed)?):
            logger.error("the process running this isolated job died", metadata: ["reason": "\(crash.reason)"])
            let state = Mutex<JobState?>(nil)
            await report("crashed", id: job.id) {
                let after = try await self.broker.crashed(
                    job.lease, reason: crash.reason, maxCrashes: self.configuration.maxCrashes, shared: false)
                state.withLock { $0 = after }
            }
            if let after = state.withLock({ $0 }) { emit(Self.eventKind(after), crash.reason, nil) }
            return .crashed
        case (_, .failure(let error as HardTimeLimitExceeded)?):
            // Killed at the hard limit, also after a cancel request or the soft limit: recorded as the
            // kill (a job whose cancellation was asked then ends cancelled, see JobBroker.fail).
            _ = await fail(job, entry: entry, error: error, permanent: entry.isPermanent(error), logger: logger, emit: emit)
            return .timedOut
        case (.cancelRequested?, _):
            logger.info("job cancelled")
            let stored = Mutex(false)
            await report("cancelled", id: job.id) {
                let fresh = try await self.broker.cancelled(job.lease)
                stored.withLock { $0 = fresh }
            }
            if stored.withLock({ $0 }) { emit(.cancelled, nil, nil) }
            return .cancelled
        case (.softTimeLimit(let limit)?, _):
            _ = await fail(
                job, entry: entry, error: SoftTimeLimitExceeded(limit: limit), permanent: false, logger: logger, emit: emit)
            return .timedOut
        case (nil, .failure(let error)?):
            return await fail(job, entry: entry, error: error, permanent: entry.isPermanent(error), logger: logger, emit: emit)
        case (nil, nil):
            logger.error("job ended without an outcome")
            return .failed
        }
    }

    /// Reports a failed attempt; `.retrying` or `.failed`.
    private func fail(
        _ job: ClaimedJob, entry: TaskRegistry.Entry, error: any Error, permanent: Bool, logger: Logger,
        emit: (JobLifecycleEvent.Kind, String?, Duration?) -> Void
    ) async -> JobOutcome.Kind {
        let message = Self.describe(error)
        let isolated = error as? IsolatedTaskFailure
        let retry = !(isolated?.permanent ?? permanent) && job.attempt < job.maxAttempts
        let delay = retry ? isolated.map { $0.retryAfter ?? .zero } ?? entry.retryDelay(job.attempt, error) : nil
        logger.info(
            retry ? "job failed; will retry" : "job failed",
            metadata: ["error": "\(message)", "retry_in": "\(delay.map { "\($0)" } ?? "never")"])
        if let state = await reportFailure(job, message: message, retryAfter: delay) {
            emit(Self.eventKind(state), message, state == .retrying ? delay : nil)
        }
        return retry ? .retrying : .failed
    }

    /// Reports a failed attempt; the job's state after it, or `nil` if it was not stored (a stale
    /// lease, or Redis failing for a whole lease).
    private func reportFailure(_ job: ClaimedJob, message: String, retryAfter: Duration?) async -> JobState? {
        let state = Mutex<JobState?>(nil)
        await report("fail", id: job.id) {
            let after = try await self.broker.fail(job.lease, message: message, retryAfter: retryAfter)
            state.withLock { $0 = after }
        }
        return state.withLock { $0 }
    }

    /// The lifecycle event of a failed attempt that left the job in `state`.
    private static func eventKind(_ state: JobState) -> JobLifecycleEvent.Kind {
        switch state {
        case .retrying, .queued, .scheduled: .retrying
        case .cancelled: .cancelled
        default: .failed
        }
    }

    /// The message stored for a failed attempt's error: a decoding error as the field that did not
    /// fit, any other error as its description.
    public static func describe(_ error: any Error) -> String {
        if let error = error as? DecodingError { return "decoding failed: \(DecodingFailure.describe(error))" }
        return String(describing: error)
    }

    /// Runs a report, retrying transient failures with backoff for up to one lease period (not
    /// when the worker's task is cancelled); after that the reaper owns the job.
    func report(_ what: String, id: JobID?, _ body: @Sendable () async throws -> Void) async {
        let deadline = ContinuousClock.now + configuration.lease
        var attempt = 0
        while true {
            do {
                try await body()
                return
            } catch let error as RedisError where error.isTransient && ContinuousClock.now < deadline && !Task.isCancelled {
                attempt += 1
                try? await Task.sleep(for: Backoff(base: .milliseconds(50), cap: .seconds(1)).delay(attempt: attempt))
            } catch {
                logger.error(
                    "could not report to Redis; the reaper will return the job after its lease",
                    metadata: ["report": "\(what)", "job": "\(id.map { "\($0)" } ?? "-")", "error": "\(error)"])
                return
            }
        }
    }
}

/// The error recorded when a job runs past its soft time limit.
struct SoftTimeLimitExceeded: Error, CustomStringConvertible {
    let limit: Duration
    var description: String { "soft time limit of \(limit.shortDescription) exceeded" }
}

