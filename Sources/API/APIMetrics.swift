import Broker
import Hummingbird
import Prometheus
import TernCore

/// The API's Prometheus metrics, served at `/metrics`: requests by route, method and status,
/// request latency by route, jobs enqueued by task, and each queue's jobs by state. Each application has its own registry.
public final class APIMetrics: Sendable {
    /// The registry `/metrics` emits.
    public let registry = PrometheusCollectorRegistry()

    /// Latency buckets, in seconds: 0.5 ms to 10 s.
    static let buckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        .seconds(5), .seconds(10),
    ]

    public init() {}

    /// Counts a finished request and records its latency.
    func request(route: String, method: String, status: Int, duration: Duration) {
        registry.makeCounter(
            descriptor: .init(namespace: "tern", subsystem: "http", metricName: "requests", unitName: "total",
                helpText: "HTTP requests by route, method and status."),
            labels: [("route", route), ("method", method), ("status", String(status))]
        ).increment()
        registry.makeDurationHistogram(
            descriptor: .init(namespace: "tern", subsystem: "http", metricName: "request_duration", unitName: "seconds",
                helpText: "HTTP request latency by route, from the request head to the response head."),
            labels: [("route", route)], buckets: Self.buckets
        ).record(duration)
    }

    /// Counts a request refused for `reason` (``SecurityEventsMiddleware/FailureReason``).
    func authFailure(_ reason: String) {
        registry.makeCounter(
            descriptor: .init(namespace: "tern", subsystem: "auth", metricName: "failures", unitName: "total",
                helpText: "Requests refused: missing_token, invalid_token, invalid_session, csrf_failed, forbidden, and jwt_* for JWTs."),
            labels: [("reason", reason)]
        ).increment()
    }

    /// Counts an operator or admin action that succeeded.
    func adminAction(_ action: String) {
        registry.makeCounter(
            descriptor: .init(namespace: "tern", subsystem: "admin", metricName: "actions", unitName: "total",
                helpText: "Operator and admin actions that succeeded, by action."),
            labels: [("action", action)]
        ).increment()
    }

    /// Counts a request authenticated by the token named `name`.
    func tokenRequest(name: String) {
        registry.makeCounter(
            descriptor: .init(namespace: "tern", subsystem: "token", metricName: "requests", unitName: "total",
                helpText: "Requests authenticated by each API token, by its name."),
            labels: [("token", name)]
        ).increment()
    }

    /// Counts jobs newly enqueued of `task` (repeats of an idempotency key are not counted).
    func enqueued(task: String, count: Int = 1) {
        registry.makeCounter(
            descriptor: .init(namespace: "tern", subsystem: "api", metricName: "jobs_enqueued", unitName: "total",
                helpText: "Jobs enqueued through the API, by task."),
            labels: [("task", task)]
        ).increment(by: Int64(count))
    }

    /// Sets the per-queue gauges from `stats`, read from Redis at each scrape, so every API replica
    /// reports the same figures: `tern_queue_jobs{queue,state}`, `tern_queue_oldest_age_seconds`
    /// (how long the next job in line has waited) and `tern_queue_paused`.
    func queues(_ stats: [QueueStats]) {
        for queue in stats {
            let name = queue.queue.rawValue
            let counts: [(String, Int)] = [
                ("queued", queue.pending), ("scheduled", queue.scheduled), ("running", queue.running),
                ("succeeded", queue.succeeded), ("failed", queue.failed), ("cancelled", queue.cancelled),
                ("expired", queue.expired), ("waiting", queue.waiting),
            ]
            for (state, count) in counts {
                registry.makeGauge(
                    descriptor: .init(namespace: "tern", subsystem: "queue", metricName: "jobs",
                        helpText: "Jobs in each state by queue (scheduled includes retrying), read from Redis at each scrape."),
                    labels: [("queue", name), ("state", state)]
                ).set(Double(count))
            }
            registry.makeGauge(
                descriptor: .init(namespace: "tern", subsystem: "queue", metricName: "oldest_age", unitName: "seconds",
                    helpText: "How long the next job in line has waited since it was due; 0 when none waits."),
                labels: [("queue", name)]
            ).set(Double(queue.oldestPendingMilliseconds) / 1000)
            registry.makeGauge(
                descriptor: .init(namespace: "tern", subsystem: "queue", metricName: "paused",
                    helpText: "1 while the queue is paused."),
                labels: [("queue", name)]
            ).set(queue.paused ? 1.0 : 0.0)
        }
    }

    /// The text exposition format; `latencies` (each queue's waits since it began, read from Redis
    /// at the scrape) are added as the histogram `tern_queue_latency_seconds`.
    func text(latencies: [(QueueName, LatencyHistogram)] = []) -> [UInt8] {
        var buffer = registry.emitToBuffer()
        guard !latencies.isEmpty else { return buffer }
        var text = "# HELP tern_queue_latency_seconds How long jobs waited from due to their first start, by queue, read from Redis.\n"
        text += "# TYPE tern_queue_latency_seconds histogram\n"
        for (queue, histogram) in latencies {
            let name = queue.rawValue
            var cumulative = 0
            for (index, bound) in LatencyHistogram.boundsMilliseconds.enumerated() {
                cumulative += histogram.counts[index]
                text += "tern_queue_latency_seconds_bucket{queue=\"\(name)\",le=\"\(Double(bound) / 1000)\"} \(cumulative)\n"
            }
            text += "tern_queue_latency_seconds_bucket{queue=\"\(name)\",le=\"+Inf\"} \(histogram.total)\n"
            text += "tern_queue_latency_seconds_sum{queue=\"\(name)\"} \(Double(histogram.sumMilliseconds) / 1000)\n"
            text += "tern_queue_latency_seconds_count{queue=\"\(name)\"} \(histogram.total)\n"
        }
        buffer += Array(text.utf8)
        return buffer
    }
}

/// Records every request, including unmatched routes (`route="NotFound"`), in ``APIMetrics``.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: APIMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        metrics.request(
            route: context.endpointPath ?? "NotFound", method: request.method.rawValue, status: Int(response.status.code),
            duration: ContinuousClock.now - start)
        return response
    }
}
