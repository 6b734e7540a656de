import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Worker

/// A worker's Prometheus metrics, served at `/metrics` on `--metrics-port`: job attempts by task and
/// outcome, their durations, busy slots and, for a supervisor, its processes and their restarts.
/// A supervisor records the attempts its processes report, so one endpoint covers them all.
final class WorkerMetrics: SupervisorObserver, Sendable {
    let registry = PrometheusCollectorRegistry()

    /// Attempt durations, in seconds: 1 ms to 1 h.
    static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500),
        .seconds(1), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600),
    ]

    /// Counts one attempt a supervisor's process reported.
    func recorded(_ outcome: JobOutcome) { record(outcome) }

    /// Counts one attempt and records its duration.
    func record(_ outcome: JobOutcome) {
        registry.makeCounter(
            descriptor: .init(namespace: "tern", subsystem: "worker", metricName: "jobs", unitName: "total",
                helpText: "Job attempts finished by this worker, by task and outcome."),
            labels: [("task", outcome.task), ("outcome", outcome.outcome.rawValue)]
        ).increment()
        registry.makeDurationHistogram(
            descriptor: .init(namespace: "tern", subsystem: "worker", metricName: "job_duration", unitName: "seconds",
                helpText: "How long job attempts ran, by task."),
            labels: [("task", outcome.task)], buckets: Self.buckets
        ).record(outcome.duration)
    }

    /// Sets the gauges of running jobs and slots.
    func slots(busy: Int, concurrency: Int) {
        registry.makeGauge(
            descriptor: .init(namespace: "tern", subsystem: "worker", metricName: "busy_slots", unitName: "",
                helpText: "Jobs running now.")
        ).set(Int64(busy))
        registry.makeGauge(
            descriptor: .init(namespace: "tern", subsystem: "worker", metricName: "slots", unitName: "",
                helpText: "Jobs that can run at once (concurrency, summed over a supervisor's processes).")
        ).set(Int64(concurrency))
    }

    /// A supervisor's process count.
    func processes(_ count: Int) {
        registry.makeGauge(
            descriptor: .init(namespace: "tern", subsystem: "supervisor", metricName: "processes", unitName: "",
                helpText: "Worker processes the supervisor runs.")
        ).set(Int64(count))
    }

    /// Counts a worker process that ended unexpectedly (`crashed`), or was killed at a hard limit.
    func processEnded(_ reason: String) {
        registry.makeCounter(
            descriptor: .init(namespace: "tern", subsystem: "supervisor", metricName: "process_exits", unitName: "total",
                helpText: "Worker processes that ended and were replaced, by reason: crashed, killed (a hard time limit), recycled."),
            labels: [("reason", reason)]
        ).increment()
    }

    /// The endpoint as a `Service`: `GET /metrics` on `endpoint` until the group shuts down, and
    /// the probes `/healthz` and `/readyz` from `health`; `beforeScrape` refreshes the gauges. A
    /// failure to serve (the port is taken) is logged and the worker runs on without metrics.
    func service(
        _ endpoint: MetricsEndpoint, logger: Logger, health: @escaping @Sendable () -> HealthReport,
        beforeScrape: @escaping @Sendable () -> Void
    ) -> some Service {
        MetricsServer.service(registry, at: endpoint, of: "worker", logger: logger, beforeScrape: beforeScrape, health: health)
    }
}
