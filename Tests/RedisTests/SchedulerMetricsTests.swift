import Broker
import Foundation
import Scheduler
import TernCore
import TernTesting
import Testing

extension HeavyProcessTests {
    @Suite("tern scheduler --metrics-port", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct SchedulerMetricsTests {
        @Test("counts ticks by schedule and result, passes by result, and the schedules followed and left out")
        func metrics() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let directory = environment.server.directory
            let config = directory + "/tern-scheduler.yaml"
            let log = directory + "/tern-scheduler.log"
            try """
                schedules:
                  - name: every-second
                    task: echo
                    input: 1
                    every_seconds: 1
                """.write(toFile: config, atomically: true, encoding: .utf8)
            // A stored schedule of a task this scheduler does not have: left out.
            let store = ScheduleStore(client: environment.client, keys: environment.broker.keys)
            try await store.put(ScheduleDefinition(name: "elsewhere", task: "not-here", input: .number(1), everySeconds: 60))
            let port = try LocalRedisServer.freePort()
            let scheduler = try WorkerBinary.launch(
                ["--config", config, "--redis-url", environment.server.url, "--metrics-port", String(port)],
                log: log, executable: "scheduler",
                environment: WorkerBinary.testTasksEnvironment.merging(["TERN_PREFIX": environment.broker.keys.prefix]) { $1 })
            defer { if scheduler.isRunning { scheduler.terminate() } }
            func text() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

            struct SchedulerStopped: Error { let log: String }
            let metrics = try await eventually(within: .seconds(60)) {
                guard scheduler.isRunning else { throw SchedulerStopped(log: text()) }
                let metrics = try await httpGet(port: port, "/metrics")
                guard metrics.contains(#"tern_scheduler_ticks_total{schedule="every-second",result="emitted"}"#),
                    metrics.contains(#"tern_scheduler_passes_total{result="ok"}"#)
                else { throw WaitError("metrics so far:\n\(metrics)") }
                return metrics
            }
            #expect(metrics.contains("tern_scheduler_schedules 1"), "\(metrics)")
            #expect(metrics.contains("tern_scheduler_schedules_left_out 1"), "\(metrics)")
            #expect(metrics.contains("tern_scheduler_tick_delay_seconds_count "), "\(metrics)")
            #expect(metrics.contains("tern_scheduler_last_pass_timestamp_seconds "), "\(metrics)")
            #expect(!metrics.contains(#"result="failed""#), "\(metrics)")
            #expect(try await emittedTicks(environment).count >= 1)
            #expect(try await httpGet(port: port, "/readyz").contains(#"{"status":"ready"}"#))
            #expect(try await httpGet(port: port, "/healthz").contains(#"{"status":"ok"}"#))

            // Redis gone: passes fail, and say so.
            environment.server.stop()
            _ = try await eventually(within: .seconds(60)) {
                let metrics = try await httpGet(port: port, "/metrics")
                guard metrics.contains(#"tern_scheduler_passes_total{result="failed"}"#) else { throw WaitError("no failed pass yet:\n\(metrics)") }
                return metrics
            }
            #expect(try await httpGet(port: port, "/readyz").contains(#""detail":"the last scheduler pass failed (Redis unreachable?)","status":"not_ready""#))
            #expect(try await httpGet(port: port, "/healthz").contains(#"{"status":"ok"}"#))
            scheduler.terminate()
            await waitForExit(scheduler)
            #expect(scheduler.terminationStatus == 0, "\(text())")
        }
    }
}
