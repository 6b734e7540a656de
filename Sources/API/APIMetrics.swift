import Broker
import Hummingbird
import Prometheus
import Synchronization
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

    /// The per-request series, made once each: the registry checks a metric's name and help text
    /// and hashes its labels on every `make…` call, which cost about 5 % of the API's CPU per
    /// `POST` when done per request.
    private let series = Mutex(Series())

    private struct Series {
        var counters: [String: Counter] = [:]
        var histograms: [String: DurationHistogram] = [:]
    }

    public init() {}

    /// The counter `tern_<subsystem>_<name>_total` with `labels`, made on first use.
    private func counter(_ subsystem: String, _ name: String, help: String, _ labels: [(String, String)]) -> Counter {
        let key = ([subsystem, name] + labels.map { "\($0.0)=\($0.1)" }).joined(separator: "\u{1F}")
        return series.withLock { series in
            if let counter = series.counters[key] { return counter }
            let counter = registry.makeCounter(
                descriptor: .init(namespace: "tern", subsystem: subsystem, metricName: name, unitName: "total", helpText: help),
                labels: labels)
            series.counters[key] = counter
            return counter
        }
    }

    /// Counts a finished request and records its latency.
    func request(route: String, method: String, status: Int, duration: Duration) {
        counter("http", "requests", help: "HTTP requests by route, method and status.",
            [("route", route), ("method", method), ("status", String(status))]).increment()
        let histogram = series.withLock { series in
            if let histogram = series.histograms[route] { return histogram }
            let histogram = registry.makeDurationHistogram(
                descriptor: .init(namespace: "tern", subsystem: "http", metricName: "request_duration", unitName: "seconds",
                    helpText: "HTTP request latency by route, from the request head to the response head."),
                labels: [("route", route)], buckets: Self.buckets)
            series.histograms[route] = histogram
            return histogram
        }
        histogram.record(duration)
    }

    /// Counts a request refused for `reason` (``SecurityEventsMiddleware/FailureReason``).
    func authFailure(_ reason: String) {
        counter("auth", "failures",
            help: "Requests refused: missing_token, invalid_token, invalid_session, invalid_ticket, csrf_failed, forbidden, and jwt_* for JWTs.",
            [("reason", reason)]).increment()
    }

    /// Counts an operator or admin action that succeeded.
    func adminAction(_ action: String) {
        counter("admin", "actions", help: "Operator and admin actions that succeeded, by action.", [("action", action)]).increment()
    }

    /// Counts a request authenticated by the token named `name`.
    func tokenRequest(name: String) {
        counter("token", "requests", help: "Requests authenticated by each API token, by its name.", [("token", name)]).increment()
    }

    /// Counts jobs newly enqueued of `task` (repeats of an idempotency key are not counted).
    func enqueued(task: String, count: Int = 1) {
        counter("api", "jobs_enqueued", help: "Jobs enqueued through the API, by task.", [("task", task)])
            .increment(by: Int64(count))
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
