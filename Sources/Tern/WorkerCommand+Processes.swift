import ArgumentParser
import Broker
import Foundation
import Logging
import Synchronization
import TernCore
import Worker

extension WorkerCommand {
    /// This binary's path, for starting worker processes and isolated jobs.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// This process's arguments without `--processes`, plus `extra`: what a child is started with.
    static func childArguments(adding extra: String?) -> [String] {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if let index = arguments.firstIndex(of: "--processes"), index + 1 < arguments.count {
            arguments.removeSubrange(index...(index + 1))
        }
        arguments.removeAll { $0.hasPrefix("--processes=") }
        if let extra, !arguments.contains(extra) { arguments.append(extra) }
        return arguments
    }

    /// Runs the supervisor: this binary with the same arguments, `--processes` dropped and `--child`
    /// added, `count` times.
    func superviseProcesses(
        _ count: Int, configuration: WorkerConfiguration, broker: RedisJobBroker, client: RedisClient,
        redisConfiguration: RedisConfiguration, metrics endpoint: MetricsEndpoint?, logger: Logger
    ) async throws {
        if !(allowVolatileRedis || (try? redis.file())?.worker?.allowVolatileRedis == true) {
            _ = try await RedisStartup.checkDurability(client, redisConfiguration, command: "tern worker", refuseUnsafe: true)
        }
        try await broker.prepare()
        let explicitCount = processes != nil
        let redis = self.redis
        let executable = Self.executablePath, arguments = Self.childArguments(adding: "--child")
        let metrics = endpoint != nil ? WorkerMetrics() : nil
        let supervisor = WorkerSupervisor(
            executable: executable, arguments: arguments, count: count, broker: broker, configuration: configuration, logger: logger,
            metrics: metrics
        ) {
            // SIGHUP: a new process must be able to start with the changed file (it reads the file
            // itself), so the check runs the child's own validation before any process is replaced.
            let file = try redis.file()
            try Self.checkChildConfiguration(executable: executable, arguments: arguments)
            return explicitCount ? nil : file.worker?.processes
        }
        // A second signal is passed on: each process then releases its running jobs at once.
        let signals = ShutdownSignals(grace: configuration.shutdownGrace) {
            supervisor.shutdown()
        } onSecond: {
            supervisor.shutdown()
        }
        defer { signals.cancel() }
        let reload = ReloadSignal { supervisor.reload() }
        defer { reload.cancel() }
        let metricsServer = metrics.map { metrics in
            Task {
                do {
                    try await metrics.serve(endpoint!, logger: logger) { supervisor.refreshMetrics() }
                } catch {
                    logger.error("cannot serve worker metrics", metadata: ["error": "\(error)"])
                }
            }
        }
        defer { metricsServer?.cancel() }
        try await supervisor.run()
    }
}

extension WorkerCommand {
    /// Runs `executable arguments --check-config`; throws what it printed if it exits non-zero.
    static func checkChildConfiguration(executable: String, arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments + ["--check-config"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationReason == .exit && process.terminationStatus == 0 else {
            let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw ValidationError(text.isEmpty ? "the configuration check exited with status \(process.terminationStatus)" : text)
        }
    }
}

/// A child's lines on standard output for its supervisor: `worker <worker id> <concurrency>` first, then
/// `claimed <id> <token> <kill after ms|-> <retry delay ms|->` (when to kill the process for the
/// job's hard time limit, and how to record that), `outcome <task> <outcome> <microseconds>` (for
/// the supervisor's metrics) and `settled <id>`.
struct SupervisorReport: Sendable {
    let registry: TaskRegistry
    let configuration: WorkerConfiguration
    /// Whether `outcome` lines are written (the supervisor serves metrics).
    let reportsOutcomes: Bool

    /// Names this worker, so the supervisor can drop its registry entry when the process dies.
    func introduce() {
        Self.send("worker \(configuration.workerID) \(configuration.concurrency)\n")
    }

    func write(_ event: WorkerEvent) {
        let line: String
        switch event {
        case .claimed(let job):
            var killAfter = "-", retry = "-"
            if let entry = registry[job.task], configuration.isolation?.isolates(entry) != true,
                let limit = entry.options.effectiveHardTimeLimit
            {
                let deadline = limit + configuration.killGrace
                killAfter = "\(deadline.nanoseconds / 1_000_000)"
                let error = HardTimeLimitExceeded(limit: limit, killedAfter: deadline)
                if job.attempt < job.maxAttempts && !entry.isPermanent(error) {
                    retry = "\(entry.retryDelay(job.attempt, error).nanoseconds / 1_000_000)"
                }
            }
            line = "claimed \(job.id.rawValue) \(job.lease.token) \(killAfter) \(retry)\n"
        case .settled(let id):
            line = "settled \(id.rawValue)\n"
        case .finished(let outcome):
            guard reportsOutcomes else { return }
            line = "outcome \(outcome.task) \(outcome.outcome.rawValue) \(outcome.duration.nanoseconds / 1_000)\n"
        }
        Self.send(line)
    }

    /// Writes to the supervisor's pipe; once the supervisor is gone, the write fails quietly (SIGPIPE
    /// is ignored in a child) and the orphan watch stops the process.
    private static func send(_ line: String) {
        try? FileHandle.standardOutput.write(contentsOf: Data(line.utf8))
    }
}

/// Shuts a child worker down once it has settled `jobLimit` jobs or its resident memory passes
/// `memoryLimitMiB`, so its supervisor replaces it.
final class Recycler: @unchecked Sendable {
    private let jobLimit: Int?
    private let memoryLimitMiB: Int?
    private let count = Mutex(0)
    private let fired = Atomic(false)
    /// Set once, before the worker runs; told why.
    var onLimit: (@Sendable (String) -> Void)?

    init(jobLimit: Int?, memoryLimitMiB: Int?) {
        self.jobLimit = jobLimit
        self.memoryLimitMiB = memoryLimitMiB
    }

    func settled() {
        guard let jobLimit else { return }
        let reached = count.withLock { count in
            count += 1
            return count == jobLimit
        }
        if reached { fire("finished \(jobLimit) jobs") }
    }

    /// Checks resident memory every 2 s until the cap is passed (or the task is cancelled).
    func watchMemory() async {
        guard let memoryLimitMiB else { return }
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(2))
            if let resident = Self.residentBytes(), resident > memoryLimitMiB * 1_048_576 {
                fire("resident memory \(resident / 1_048_576) MiB is over the cap of \(memoryLimitMiB) MiB")
                return
            }
        }
    }

    private func fire(_ why: String) {
        guard !fired.exchange(true, ordering: .sequentiallyConsistent) else { return }
        onLimit?(why)
    }

    /// This process's resident set size, from `/proc/self/statm`.
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// SIGHUP: calls `onReload` each time. Unchecked: the source is only created in `init` and
/// cancelled in `cancel()`.
final class ReloadSignal: @unchecked Sendable {
    private let source: any DispatchSourceSignal

    init(onReload: @escaping @Sendable () -> Void) {
        signal(SIGHUP, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "tern.reload"))
        source.setEventHandler(handler: onReload)
        source.resume()
    }

    func cancel() { source.cancel() }
}
