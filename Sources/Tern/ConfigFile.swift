import ArgumentParser
import Broker
import Foundation
import Scheduler
import TernCore
import Yams

/// The configuration file (`config/tern.yaml` by default). Every field is optional; a command-line
/// flag beats the environment, which beats the file, which beats the built-in default (see
/// ``SettingsResolver``). Secrets
/// (passwords in the Redis URL) belong in the environment (`TERN_REDIS_URL`), not in this file.
struct ConfigFile: Decodable, Sendable {
    struct Redis: Decodable, Sendable {
        var url: String?
        var prefix: String?
        var busyPollMicroseconds: Int?
        var transport: String?
        var sentinel: Sentinel?
        /// `redis.cluster`: seed nodes (`host:port`) of a Redis Cluster, as `redis+cluster://` names.
        var cluster: [String]?

        /// `redis.sentinel`: the primary found through Sentinel, as `redis+sentinel://` does.
        struct Sentinel: Decodable, Sendable {
            var master: String
            var nodes: [String]
        }

        enum CodingKeys: String, CodingKey {
            case url, prefix, transport, sentinel, cluster
            case busyPollMicroseconds = "busy_poll_us"
        }
    }

    struct Worker: Decodable, Sendable {
        var queues: [String]?
        var weights: [Int]?
        var concurrency: Int?
        var leaseSeconds: Double?
        var heartbeatSeconds: Double?
        var reaperSeconds: Double?
        var graceSeconds: Double?
        var allowVolatileRedis: Bool?
        var processes: Int?
        var maxCrashes: Int?
        var maxJobsPerProcess: Int?
        var maxMemoryMb: Int?
        var killGraceSeconds: Double?
        var isolate: [String]?
        var jobThreads: Int?
        var metricsPort: Int?
        var metricsHost: String?

        enum CodingKeys: String, CodingKey {
            case queues, weights, concurrency, processes, isolate
            case maxCrashes = "max_crashes"
            case maxJobsPerProcess = "max_jobs_per_process"
            case maxMemoryMb = "max_memory_mb"
            case killGraceSeconds = "kill_grace_seconds"
            case jobThreads = "job_threads"
            case metricsPort = "metrics_port"
            case metricsHost = "metrics_host"
            case leaseSeconds = "lease_seconds"
            case heartbeatSeconds = "heartbeat_seconds"
            case reaperSeconds = "reaper_seconds"
            case graceSeconds = "grace_seconds"
            case allowVolatileRedis = "allow_volatile_redis"
        }
    }

    /// `api:`: where the HTTP API listens, its limits, and who may call it.
    struct API: Decodable, Sendable {
        /// One entry of `api.tokens`.
        struct Token: Decodable, Sendable {
            var name: String
            var role: String
            var sha256: String
            var tasks: [String]?
            var queues: [String]?
        }

        var host: String?
        var port: Int?
        /// `tokens` (the default) or `none`.
        var auth: String?
        var tokens: [Token]?
        var maxBodyBytes: Int?
        var maxJSONDepth: Int?
        var maxWaitSeconds: Int?
        var maxWaiters: Int?
        var idleTimeoutSeconds: Double?
        var bodyTimeoutSeconds: Double?
        var maxHeaderBytes: Int?
        var maxConnections: Int?
        var dashboard: Bool?
        var sessionHours: Double?
        var sessionSecret: String?
        var secureCookie: Bool?
        var tls: TLS?
        var jwt: JWT?

        /// `api.jwt`: JWT bearer tokens, beside the static ones (docs/http-api.md#jwt-bearer-tokens).
        struct JWT: Decodable, Sendable {
            var secret: String?
            var jwksFile: String?
            var jwksURL: String?
            var jwksRefreshSeconds: Double?
            var issuer: String?
            var audience: String?
            var leewaySeconds: Double?
            var roleClaim: String?
            var tasksClaim: String?
            var queuesClaim: String?

            enum CodingKeys: String, CodingKey {
                case secret, issuer, audience
                case jwksFile = "jwks_file"
                case jwksURL = "jwks_url"
                case jwksRefreshSeconds = "jwks_refresh_seconds"
                case leewaySeconds = "leeway_seconds"
                case roleClaim = "role_claim"
                case tasksClaim = "tasks_claim"
                case queuesClaim = "queues_claim"
            }
        }

        /// `api.tls`: HTTPS served by the API itself, or required of requests.
        struct TLS: Decodable, Sendable {
            var certFile: String?
            var keyFile: String?
            var required: Bool?

            enum CodingKeys: String, CodingKey {
                case required
                case certFile = "cert_file"
                case keyFile = "key_file"
            }
        }

        enum CodingKeys: String, CodingKey {
            case host, port, auth, tokens, dashboard, tls, jwt
            case sessionHours = "session_hours"
            case sessionSecret = "session_secret"
            case secureCookie = "secure_cookie"
            case maxBodyBytes = "max_body_bytes"
            case maxJSONDepth = "max_json_depth"
            case maxWaitSeconds = "max_wait_seconds"
            case maxWaiters = "max_waiters"
            case idleTimeoutSeconds = "idle_timeout_seconds"
            case bodyTimeoutSeconds = "body_timeout_seconds"
            case maxHeaderBytes = "max_header_bytes"
            case maxConnections = "max_connections"
        }
    }

    /// `scheduler:`: how replicas look for due ticks.
    struct SchedulerSection: Decodable, Sendable {
        var pollMilliseconds: Int?
        var latenessSeconds: Double?
        var metricsPort: Int?
        var metricsHost: String?

        enum CodingKeys: String, CodingKey {
            case pollMilliseconds = "poll_ms"
            case latenessSeconds = "lateness_seconds"
            case metricsPort = "metrics_port"
            case metricsHost = "metrics_host"
        }
    }

    /// `log:`: `format` (text or json) and `level` (trace ... critical).
    struct Log: Decodable, Sendable {
        var format: String?
        var level: String?
    }

    /// `queues:`: caps on the jobs waiting in each queue, checked at enqueue (429 above them).
    struct Queues: Decodable, Sendable {
        var maxPending: Int?
        var maxPendingByQueue: [String: Int]?
        var maxFailed: Int?
        var failedRetentionSeconds: Double?
        var limits: [Limit]?

        /// One entry of `queues.limits` (docs/limits.md).
        struct Limit: Decodable, Sendable {
            var queue: String
            var task: String?
            var perKey: Bool?
            var rate: String?
            var burst: Int?
            var concurrency: Int?

            enum CodingKeys: String, CodingKey {
                case queue, task, rate, burst, concurrency
                case perKey = "per_key"
            }
        }

        enum CodingKeys: String, CodingKey {
            case limits
            case maxPending = "max_pending"
            case maxPendingByQueue = "max_pending_by_queue"
            case maxFailed = "max_failed"
            case failedRetentionSeconds = "failed_retention_seconds"
        }
    }

    /// `tracing:`: OpenTelemetry export (docs/operations.md#tracing).
    struct TracingSection: Decodable, Sendable {
        var otlpEndpoint: String?
        var serviceName: String?
        var sampleRatio: Double?

        enum CodingKeys: String, CodingKey {
            case otlpEndpoint = "otlp_endpoint"
            case serviceName = "service_name"
            case sampleRatio = "sample_ratio"
        }
    }

    var redis: Redis?
    var worker: Worker?
    var tracing: TracingSection?
    var api: API?
    var scheduler: SchedulerSection?
    var schedules: [ScheduleDefinition]?
    var log: Log?
    var queues: Queues?

    /// The default path, relative to the working directory.
    static let defaultPath = "config/tern.yaml"

    /// Loads the file at `path`, or at the default path if it exists; an explicit path must exist.
    static func load(path: String?) throws -> ConfigFile {
        let chosen = path ?? defaultPath
        guard FileManager.default.fileExists(atPath: chosen) else {
            if path != nil { throw ValidationError("config file \(chosen) does not exist") }
            return ConfigFile()
        }
        guard let data = FileManager.default.contents(atPath: chosen) else {
            throw ValidationError("cannot read config file \(chosen)")
        }
        do {
            // A file with no document (empty, or comments only) is an empty configuration.
            guard try Yams.compose(yaml: String(decoding: data, as: UTF8.self)) != nil else { return ConfigFile() }
            return try YAMLDecoder().decode(ConfigFile.self, from: data)
        } catch {
            throw ValidationError("config file \(chosen) is invalid: \(error)")
        }
    }

    init() {}
}

extension ConfigFile {
    /// The caps of `queues:`: `max_pending` for every queue (default 1,000,000; 0 for no cap), and
    /// `max_pending_by_queue` for named ones.
    func queueCaps() throws -> QueueCaps {
        let limit = 1_000_000_000
        let maxPending = queues?.maxPending ?? QueueCaps.defaultMaxPending
        guard (0...limit).contains(maxPending) else { throw ValidationError("queues.max_pending must be 0 (no cap) to \(limit)") }
        var byQueue: [QueueName: Int] = [:]
        for (name, cap) in queues?.maxPendingByQueue ?? [:] {
            guard let queue = QueueName(name) else { throw ValidationError("queues.max_pending_by_queue: invalid queue name '\(name)'") }
            guard (0...limit).contains(cap) else {
                throw ValidationError("queues.max_pending_by_queue.\(name) must be 0 (no cap) to \(limit)")
            }
            byQueue[queue] = cap
        }
        return QueueCaps(maxPending: maxPending == 0 ? nil : maxPending, byQueue: byQueue)
    }
}

extension ConfigFile {
    /// The limits of `queues.limits`, which workers declare when they start.
    func limitDeclarations() throws -> [LimitDeclaration] {
        try (queues?.limits ?? []).enumerated().map { index, entry in
            let name = "queues.limits[\(index)]"
            guard let queue = QueueName(entry.queue) else { throw ValidationError("\(name): invalid queue name '\(entry.queue)'") }
            let scope: LimitScope
            switch (entry.task, entry.perKey ?? false) {
            case (nil, false): scope = .queue
            case (let task?, let perKey) where TaskRegistry.isValidName(task): scope = perKey ? .perKey(task) : .task(task)
            case (nil, true): throw ValidationError("\(name): per_key needs a task")
            case (let task?, _): throw ValidationError("\(name): invalid task name '\(task)'")
            }
            var limit = JobLimit(burst: entry.burst ?? 1, concurrency: entry.concurrency)
            if let text = entry.rate {
                guard let rate = JobLimit.Rate(text: text) else {
                    throw ValidationError("\(name).rate must be <count>/<period>, such as 10/s or 100/min, not '\(text)'")
                }
                limit.rate = rate
            }
            if let problem = limit.problem { throw ValidationError("\(name): \(problem)") }
            return LimitDeclaration(queue: queue, scope: scope, limit: limit)
        }
    }

    /// What the job store keeps and refuses: the caps of ``queueCaps()``, and of failed jobs
    /// `queues.max_failed` per queue (default 10,000) for `queues.failed_retention_seconds`
    /// (default 7 days) unless a task sets its own.
    func storePolicy() throws -> StorePolicy {
        let settings = SettingsResolver(environment: [:], file: self)
        var policy = StorePolicy()
        policy.caps = try queueCaps()
        policy.failedCap = try settings.value(
            SettingNames(file: "queues.max_failed"), flag: nil, file: queues?.maxFailed, default: policy.failedCap,
            in: 1...10_000_000)
        policy.failedRetention = try settings.seconds(
            SettingNames(file: "queues.failed_retention_seconds"), flag: nil, file: queues?.failedRetentionSeconds,
            default: policy.failedRetention, in: 1...315_360_000)
        return policy
    }
}
