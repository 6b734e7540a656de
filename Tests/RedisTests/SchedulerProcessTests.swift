import Broker
import Foundation
import TernCore
import TernTesting
import Testing

/// A `scheduler` process on `environment`'s Redis and key prefix, with `config`.
private func startScheduler(_ environment: JobEnvironment, config: String) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: WorkerBinary.path.replacingOccurrences(of: "/worker", with: "/scheduler"))
    process.arguments = ["--redis-url", environment.server.url, "--config", config]
    process.environment = ProcessInfo.processInfo.environment.merging(["TERN_PREFIX": environment.broker.keys.prefix]) { $1 }
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

extension HeavyProcessTests {
    @Suite("Real scheduler processes", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct SchedulerProcessTests {
        @Test("schedulers for 30 s, one killed and restarted, one stopped and resumed: one job per tick, no gap", arguments: [2, 3])
        func replicas(count: Int) async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let config = environment.server.directory + "/schedules.yaml"
            try """
                scheduler:
                  poll_ms: 100
                schedules:
                  - name: every-second
                    task: echo
                    input: {n: 1}
                    every_seconds: 1
                """.write(toFile: config, atomically: true, encoding: .utf8)
            var processes = try (0..<count).map { _ in try startScheduler(environment, config: config) }
            defer {
                for process in processes where process.isRunning {
                    kill(process.processIdentifier, SIGCONT)
                    process.terminate()
                }
            }
            try await Task.sleep(for: .seconds(5))
            kill(processes[0].processIdentifier, SIGKILL)
            await waitForExit(processes[0])
            try await Task.sleep(for: .seconds(5))
            processes[0] = try startScheduler(environment, config: config)
            try await Task.sleep(for: .seconds(2))
            kill(processes[1].processIdentifier, SIGSTOP)
            try await Task.sleep(for: .seconds(8))
            kill(processes[1].processIdentifier, SIGCONT)
            try await Task.sleep(for: .seconds(10))
            for process in processes {
                process.terminate()
                await waitForExit(process)
            }
            let ticks = try await emittedTicks(environment)
            // About 30 ticks; a few at each end may fall outside the replicas' lifetimes on a loaded
            // machine. The gap check below proves none is missing in between.
            #expect(ticks.count >= 20, "only \(ticks.count) ticks in 30 s")
            #expect(Set(ticks).count == ticks.count, "a tick was emitted twice: \(ticks)")
            #expect(zip(ticks, ticks.dropFirst()).allSatisfy { $1 - $0 == 1000 }, "a gap: \(ticks)")
            // Each tick on time from a live replica, not filled in when the stopped one came back: the
            // replicas were away for 5 s and 8 s, and each pass is 100 ms apart.
            recordTiming("the latest tick emitted by scheduler processes", .milliseconds(try await latestEmission(environment)), bound: .seconds(4))
        }
    }
}
