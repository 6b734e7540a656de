import Broker
import Foundation
import Logging
import Prometheus
import Scheduler
import ServiceLifecycle
import Synchronization

/// A scheduler's Prometheus metrics, served at `/metrics` on `--metrics-port`: ticks by schedule
/// and result, how late ticks were emitted, passes by result, the time of the last good pass, and
/// the schedules followed and left out. Each replica counts what it did.
final class SchedulerMetrics: SchedulerObserver, Sendable {
    let registry = PrometheusCollectorRegistry()
    /// When a pass last ended, and whether it failed, for the health probes.
    private let lastPass = Mutex<(at: ContinuousClock.Instant, failed: Bool)?>(nil)
    /// A scheduler is stuck when no pass has ended for this long: passes end every poll interval,
    /// a failed one within the Redis command timeout.
    static let stuckAfter = Duration.seconds(60)

    /// How late emitted ticks were, in seconds: 10 ms to 1 day (catch-up ticks are the late ones).
    static let buckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(5), .seconds(30), .seconds(60), .seconds(300), .seconds(3600), .seconds(86_400),
    ]

    func ticked(schedule: String, result: TickEmission, delay: Duration) {
        let name = switch result {
        case .emitted: "emitted"
        case .duplicate: "duplicate"
        case .overlapped: "overlapped"
        }
        registry.makeCounter(
            descriptor: .init(namespace: "tern", subsystem: "scheduler", metricName: "ticks", unitName: "total",
                helpText: "Due ticks this scheduler handled, by schedule and result: emitted (it enqueued the job), duplicate (another replica had), overlapped (skipped: the last job had not finished)."),
            labels: [("schedule", schedule), ("result", name)]
        ).increment()
        guard case .emitted = result else { return }
        registry.makeDurationHistogram(
            descriptor: .init(namespace: "tern", subsystem: "scheduler", metricName: "tick_delay", unitName: "seconds",
                helpText: "How long after its time, on Redis's clock, each tick this scheduler emitted was emitted."),
            buckets: Self.buckets
        ).record(delay)
    }

    func passEnded(failed: Bool, schedules: Int, leftOut: Int) {
        lastPass.withLock { $0 = (.now, failed) }
        registry.makeCounter(
            descriptor: .init(namespace: "tern", subsystem: "scheduler", metricName: "passes", unitName: "total",
                helpText: "Passes over the schedules, by result: ok, or failed (Redis unreachable; retried on the next interval)."),
            labels: [("result", failed ? "failed" : "ok")]
        ).increment()
        if !failed {
            registry.makeGauge(
                descriptor: .init(namespace: "tern", subsystem: "scheduler", metricName: "last_pass", unitName: "timestamp_seconds",
                    helpText: "When this scheduler last completed a pass, in seconds since 1970.")
            ).set(Date().timeIntervalSince1970)
        }
        registry.makeGauge(
            descriptor: .init(namespace: "tern", subsystem: "scheduler", metricName: "schedules", unitName: "",
                helpText: "Enabled schedules this scheduler follows (the config file's and those stored over the API).")
        ).set(Int64(schedules))
        registry.makeGauge(
            descriptor: .init(namespace: "tern", subsystem: "scheduler", metricName: "schedules_left_out", unitName: "",
                helpText: "Schedules stored over the API that this scheduler leaves out: they do not fit its tasks.")
        ).set(Int64(leftOut))
    }

    /// What the probes answer: alive until no pass has ended for ``stuckAfter`` (alive while
    /// starting), ready once the last pass succeeded.
    func health(at now: ContinuousClock.Instant = .now) -> HealthReport {
        guard let (at, failed) = lastPass.withLock({ $0 }) else {
            return HealthReport(notReady: "the scheduler has not completed a pass yet")
        }
        let silent = now - at
        return HealthReport(
            notAlive: silent > Self.stuckAfter ? "no scheduler pass has ended for \(silent.components.seconds) s" : nil,
            notReady: failed ? "the last scheduler pass failed (Redis unreachable?)" : nil)
    }

    /// The endpoint as a `Service` (see ``MetricsServer``), with the probes `/healthz` and `/readyz`.
    func service(_ endpoint: MetricsEndpoint, logger: Logger) -> some Service {
        MetricsServer.service(registry, at: endpoint, of: "scheduler", logger: logger, health: { self.health() })
    }
}
