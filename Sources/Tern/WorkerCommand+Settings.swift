import ArgumentParser
import Broker
import Foundation
import TernCore
import Worker

extension WorkerCommand {
    /// Every worker setting, each from its flag, environment variable, `worker.` key or the
    /// default of ``WorkerConfiguration`` (see ``SettingsResolver``), checked against its range.
    func resolveWorkerSettings(_ settings: SettingsResolver, registry: TaskRegistry) throws -> WorkerSettings {
        let file = settings.file.worker
        func names(_ flag: String, _ key: String, _ variable: String? = nil) -> SettingNames {
            SettingNames(flag: "--" + flag, environment: variable, file: "worker." + key)
        }
        var configuration = WorkerConfiguration()
        let queueNames = try settings.list(names("queues", "queues", "TERN_QUEUES"), flag: queues, file: file?.queues)
        configuration.queues = try Self.parseQueues(queueNames ?? configuration.queues.map(\.rawValue))
        let weightList = try weights.map { text in
            try text.split(separator: ",").map { item in
                guard let value = Int(item.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--weights must be whole numbers, not '\(item)'")
                }
                return value
            }
        } ?? file?.weights
        if let values = weightList {
            guard values.count == configuration.queues.count, values.allSatisfy({ $0 >= 1 }) else {
                throw ValidationError("weights need one whole number ≥ 1 per queue")
            }
            configuration.queueOrder = .weighted(values)
        }
        configuration.concurrency = try settings.value(
            names("concurrency", "concurrency", "TERN_CONCURRENCY"), flag: concurrency, file: file?.concurrency,
            default: configuration.concurrency, in: 1...10_000)
        let day = 86_400.0
        configuration.lease = try settings.seconds(
            names("lease", "lease_seconds"), flag: lease, file: file?.leaseSeconds, default: configuration.lease, in: 0.001...day)
        configuration.heartbeatInterval = try settings.seconds(
            names("heartbeat", "heartbeat_seconds"), flag: heartbeat, file: file?.heartbeatSeconds,
            default: configuration.heartbeatInterval, in: 0.001...day)
        configuration.reaperInterval = try settings.seconds(
            names("reaper", "reaper_seconds"), flag: reaper, file: file?.reaperSeconds, default: configuration.reaperInterval,
            in: 0.001...day)
        configuration.shutdownGrace = try settings.seconds(
            names("grace", "grace_seconds"), flag: grace, file: file?.graceSeconds, default: configuration.shutdownGrace, in: 0...day)
        guard configuration.heartbeatInterval * 2 < configuration.lease else {
            throw ValidationError("the heartbeat (--heartbeat, worker.heartbeat_seconds) must be less than half of the lease")
        }
        configuration.killGrace = try settings.seconds(
            names("kill-grace", "kill_grace_seconds"), flag: killGrace, file: file?.killGraceSeconds,
            default: configuration.killGrace, in: 0...day)
        configuration.maxCrashes = try settings.value(
            names("max-crashes", "max_crashes"), flag: maxCrashes, file: file?.maxCrashes, default: configuration.maxCrashes,
            in: 1...100)
        configuration.jobThreads = try settings.optional(
            names("job-threads", "job_threads"), flag: jobThreads, file: file?.jobThreads, in: 0...1024)
        let isolated = try settings.list(names("isolate", "isolate"), flag: isolate, file: file?.isolate) ?? []
        if let unknown = isolated.first(where: { registry[$0] == nil }) {
            throw ValidationError("cannot isolate '\(unknown)': no such task (registered: \(registry.names.joined(separator: ", ")))")
        }
        configuration.isolation = ProcessIsolation(
            executable: Self.executablePath, arguments: Self.childArguments(adding: nil), tasks: Set(isolated))
        configuration.limits = try settings.file.limitDeclarations()

        var result = WorkerSettings(
            configuration: configuration, redis: try redis.configuration(settings), prefix: try redis.prefix(settings, flag: prefix))
        result.store = try settings.file.storePolicy()
        result.processes = try settings.optional(names("processes", "processes"), flag: processes, file: file?.processes, in: 1...256)
        result.maxJobsPerProcess = try settings.optional(
            names("max-jobs-per-process", "max_jobs_per_process"), flag: maxJobsPerProcess, file: file?.maxJobsPerProcess,
            in: 1...Int.max)
        result.maxMemoryMiB = try settings.optional(
            names("max-memory-mb", "max_memory_mb"), flag: maxMemoryMb, file: file?.maxMemoryMb, in: 64...1_048_576)
        let port = try settings.optional(
            names("metrics-port", "metrics_port", "TERN_WORKER_METRICS_PORT"), flag: metricsPort, file: file?.metricsPort,
            in: 1...65_535)
        let host = try settings.value(
            names("metrics-host", "metrics_host"), flag: metricsHost, file: file?.metricsHost, default: MetricsEndpoint.defaultHost)
        result.metrics = port.map { MetricsEndpoint(host: host, port: $0) }
        result.allowVolatileRedis = try settings.enabled(
            names("allow-volatile-redis", "allow_volatile_redis", "TERN_ALLOW_VOLATILE_REDIS"), flag: allowVolatileRedis,
            file: file?.allowVolatileRedis)
        return result
    }

    /// Queue names, each valid and each once.
    static func parseQueues(_ names: [String]) throws -> [QueueName] {
        let queues = try names.map { name in
            guard let queue = QueueName(name) else {
                throw ValidationError("invalid queue name '\(name)': use 1-64 of a-z 0-9 _ - (starting with a letter or digit)")
            }
            return queue
        }
        guard !queues.isEmpty, Set(queues).count == queues.count else {
            throw ValidationError("--queues needs at least one queue, each once")
        }
        return queues
    }
}
