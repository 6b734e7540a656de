import Broker
import Foundation
import Tasks
import TernCore
import TernTesting
import Worker
import Testing

/// F1, F3 and F4 of RELIABILITY.md, process isolation, SIGHUP and memory recycling, with real
/// supervisor processes on a real Redis.
extension HeavyProcessTests {
    @Suite("Supervisor faults", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct SupervisorFaultTests {
        @Test("F1: SIGKILL 2 of 4 processes during a 10,000-job drain: all succeed, duplicates only among jobs in flight")
        func killDuringDrain() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let log = environment.server.directory + "/executions.log"
            let total = 10_000, concurrency = 8
            for start in stride(from: 0, to: total, by: 1000) {
                _ = try await environment.tern.enqueueBatch(
                    Record.self, (start..<start + 1000).map { Record.Input(path: log, text: "\($0)") })
            }
            let supervisor = try SupervisorProcess(environment, ["--processes", "4", "--concurrency", "\(concurrency)"])
            defer { supervisor.killIfRunning() }
            let children = try await supervisor.waitForChildren(environment.broker, count: 4)
            // Kill two processes once the drain is well under way.
            _ = try await eventually(within: .seconds(120)) {
                let stats = try await environment.broker.stats(.default)
                guard stats.succeeded >= 2000 else { throw WaitError("\(stats.succeeded) succeeded") }
                return stats
            }
            for child in children.prefix(2) { kill(child.pid, SIGKILL) }
            var stats = try await environment.broker.stats(.default)
            let deadline = ContinuousClock.now + .seconds(300)
            while stats.succeeded < total && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                stats = try await environment.broker.stats(.default)
            }
            #expect(stats.succeeded == total)
            #expect(stats.failed == 0 && stats.pending == 0 && stats.running == 0, "\(stats)")
            // The execution log: every job ran; a job ran twice only if it was in flight in a killed process.
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            var runs: [Int: Int] = [:]
            for line in lines { runs[Int(line) ?? -1, default: 0] += 1 }
            #expect(Set(runs.keys) == Set(0..<total))
            let duplicates = runs.values.filter { $0 > 1 }.count
            #expect(runs.values.allSatisfy { $0 <= 2 })
            // A killed process held at most 2 × concurrency jobs: those running, and those whose task had
            // ended while their outcome was being reported (capped at one concurrency's worth).
            #expect(duplicates <= 2 * 2 * concurrency, "\(duplicates) jobs ran twice")
            // Both killed processes were replaced.
            let live = try await supervisor.waitForChildren(environment.broker, count: 4)
            #expect(Set(live.map(\.pid)).isDisjoint(with: children.prefix(2).map(\.pid)))
            // The supervisor's entry counts them (`tern workers`, GET /v1/workers).
            let exits = try await eventually(within: .seconds(30)) {
                let entry = try await environment.broker.workers().first { $0.pid == supervisor.pid }
                guard let exits = entry?.processExits, exits["crashed"] == 2 else { throw WaitError("exits so far: \(String(describing: entry?.processExits))") }
                return exits
            }
            #expect(exits == ["crashed": 2])
            #expect(await supervisor.stop())
        }

        @Test("F3: SIGTERM to a busy supervisor: short jobs finish, the rest are released at once, exit 0")
        func gracefulStop() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let supervisor = try SupervisorProcess(environment, ["--processes", "2", "--concurrency", "2", "--grace", "5"])
            defer { supervisor.killIfRunning() }
            // Both processes are up before the jobs arrive, so all four run at once.
            _ = try await supervisor.waitForChildren(environment.broker, count: 2)
            // 4 s: long enough for all four to be seen running on a loaded machine, short enough to
            // finish within the 5 s grace.
            let short = try await environment.tern.enqueueBatch(Sleep.self, [.init(ms: 4000), .init(ms: 4000)])
            let long = try await environment.tern.enqueueBatch(Sleep.self, [.init(ms: 120_000), .init(ms: 120_000)])
            _ = try await eventually(within: .seconds(30)) {
                let stats = try await environment.broker.stats(.default)
                guard stats.running == 4 else { throw WaitError("\(stats.running) running") }
                return stats
            }
            let took = await elapsed { #expect(await supervisor.stop()) }
            recordTiming("F3 a busy supervisor stops on SIGTERM (4 s jobs, grace 5 s)", took, bound: .seconds(20))
            for handle in short {
                let record = try await handle.status()
                #expect(record.state == .succeeded && record.attempts == 1)
            }
            for handle in long {
                let record = try await handle.status()
                #expect(record.state == .queued, "\(record.state)")
                #expect(record.attempts == 0 && record.crashes == 0)
            }
            #expect(try await supervisor.children(environment.broker).isEmpty)
        }

        @Test("F3: a stopping worker claims nothing though it has free slots; a second SIGTERM stops at once and still releases the running jobs", arguments: [true, false])
        func secondSignal(supervised: Bool) async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let worker = try SupervisorProcess(
                environment, (supervised ? ["--processes", "1"] : []) + ["--concurrency", "3", "--grace", "60"], name: "worker")
            defer { worker.killIfRunning() }
            let long = try await environment.tern.enqueueBatch(Sleep.self, [.init(ms: 120_000), .init(ms: 120_000)])
            for handle in long { _ = try await environment.waitFor(handle.id, .running, within: .seconds(30)) }
            kill(worker.pid, SIGTERM)
            // The second signal must come after the first was handled, or the two count as one; the
            // worker (the supervised process, under a supervisor) has stopped claiming once it says so.
            _ = try await eventually(within: .seconds(20)) {
                let log = worker.logText
                guard log.contains("tern: stopping (signal"), log.contains("stopping: claiming no more jobs") else {
                    throw WaitError("the first SIGTERM is not handled yet")
                }
                return true
            }
            // A free slot and a wake-up: a worker that still claimed would run it at once.
            let late = try await environment.tern.enqueue(Echo.self, .number(1))
            try await Task.sleep(for: .seconds(1))
            let took = await elapsed {
                kill(worker.pid, SIGTERM)
                await waitForExit(worker.process)
            }
            #expect(worker.process.terminationReason == .exit && worker.process.terminationStatus == 0)
            recordTiming("exit after a second SIGTERM (grace 60 s)", took, bound: .seconds(10))
            for handle in long {
                let record = try await handle.status()
                #expect(record.state == .queued && record.attempts == 0 && record.crashes == 0, "\(record.state)")
            }
            let unclaimed = try await late.status()
            #expect(unclaimed.state == .queued && unclaimed.attempts == 0, "\(unclaimed.state)")
        }

        @Test("F4: soft limit cancels a cooperative job; a CPU loop ignoring cancellation is killed at hard limit + grace", .serialized, arguments: [false, true])
        func timeLimits(isolated: Bool) async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            var arguments = ["--processes", "1", "--concurrency", "3", "--kill-grace", "1"]
            if isolated { arguments += ["--isolate", "spin"] }
            let supervisor = try SupervisorProcess(environment, arguments)
            defer { supervisor.killIfRunning() }
            _ = try await supervisor.waitForChildren(environment.broker, count: 1)
            let neighbour = try await environment.tern.enqueue(Sleep.self, .init(ms: 6000))
            _ = try await environment.waitFor(neighbour.id, .running)
            let soft = try await environment.tern.enqueue(Spin.self, .init(ms: 60_000, cooperative: true))
            let hard = try await environment.tern.enqueue(Spin.self, .init(ms: 60_000, cooperative: false))

            let softRecord = try await environment.waitFor(soft.id, .failed, within: .seconds(30))
            #expect(softRecord.error == "soft time limit of 1 s exceeded")
            #expect(softRecord.errors.count == 1 && softRecord.attempts == 1)
            let softRan = Double((softRecord.finishedMilliseconds ?? 0) - (softRecord.startedMilliseconds ?? 0)) / 1000
            #expect(softRan >= 0.9, "ran \(softRan) s")
            recordTiming("F4 soft limit of 1 s, start to recorded failure", .milliseconds(Int(softRan * 1000)), bound: .seconds(5))

            let hardRecord = try await environment.waitFor(hard.id, .failed, within: .seconds(30))
            #expect(hardRecord.error?.hasPrefix("hard time limit of 2 s exceeded: the process running the job was killed after 3") == true, "\(hardRecord.error ?? "")")
            #expect(hardRecord.errors.count == 1 && hardRecord.attempts == 1 && hardRecord.crashes == 0)
            // Hard limit 2 s + kill grace 1 s, measured from the recorded start.
            let hardRan = Double((hardRecord.finishedMilliseconds ?? 0) - (hardRecord.startedMilliseconds ?? 0)) / 1000
            #expect(hardRan >= 2.5, "ran \(hardRan) s")
            recordTiming("F4 hard limit 2 s + grace 1 s, start to recorded failure", .milliseconds(Int(hardRan * 1000)), bound: .seconds(8))

            // The job sharing the process: released at once and run again when the process was killed;
            // untouched when the CPU loop ran in a process of its own.
            let neighbourRecord = try await environment.waitFor(neighbour.id, .succeeded, within: .seconds(60))
            #expect(neighbourRecord.crashes == 0 && neighbourRecord.errors.isEmpty)
            #expect(neighbourRecord.lostLeases == 0)
            let log = supervisor.logText
            #expect(log.contains("killed its worker process") != isolated)
            #expect(await supervisor.stop())
        }

        @Test("CPU-bound jobs that ignore cancellation starve neither heartbeats nor another job's soft limit")
        func cpuBoundJobs() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            // More spinning jobs than cores, each longer than the 3 s lease.
            let spinners = max(4, ProcessInfo.processInfo.activeProcessorCount + 1)
            var configuration = JobEnvironment.workerConfiguration(concurrency: spinners + 1)
            configuration.reaperInterval = .milliseconds(200)
            try await environment.withWorker(configuration) { _ in
                let busy = try await environment.tern.enqueueBatch(
                    Spin.self, (0..<spinners).map { _ in .init(ms: 5000, cooperative: false) })
                for handle in busy { _ = try await environment.waitFor(handle.id, .running) }
                let polite = try await environment.tern.enqueue(Spin.self, .init(ms: 60_000, cooperative: true))
                let failed = try await environment.waitFor(polite.id, .failed, within: .seconds(30))
                #expect(failed.error == "soft time limit of 1 s exceeded")
                let ran = (failed.finishedMilliseconds ?? 0) - (failed.startedMilliseconds ?? 0)
                recordTiming("soft limit of 1 s beside CPU-bound jobs", .milliseconds(ran), bound: .seconds(6))
                for handle in busy {
                    // Past their soft limit they cannot be stopped in-process; they finish, their leases kept.
                    let record = try await environment.waitFor(handle.id, .succeeded, within: .seconds(60))
                    #expect(record.lostLeases == 0 && record.attempts == 1)
                }
            }
        }

        @Test("leases hold with the shared pool full of CPU-bound jobs and every core kept busy by other processes")
        func leasesUnderLoad() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let cores = ProcessInfo.processInfo.activeProcessorCount
            // --job-threads 0: the job bodies run on Swift's shared pool and fill it; heartbeats must
            // not depend on it. Each job spins for twice the 3 s lease.
            let spinners = cores + 2
            let worker = try SupervisorProcess(
                environment, ["--concurrency", "\(spinners)", "--job-threads", "0", "--lease", "3"], name: "worker")
            defer { worker.killIfRunning() }
            let hogs = try (0..<cores).map { _ in try CPUHog() }
            defer { for hog in hogs { hog.stop() } }
            let busy = try await environment.tern.enqueueBatch(
                Spin.self, (0..<spinners).map { _ in .init(ms: 6000, cooperative: false) })
            for handle in busy {
                let record = try await eventually(within: .seconds(120)) {
                    let record = try #require(try await environment.broker.job(handle.id))
                    guard record.state.isTerminal else { throw WaitError("job \(handle.id) is \(record.state)") }
                    return record
                }
                #expect(record.state == .succeeded, "\(record.state): \(record.errors.map(\.message))")
                #expect(record.lostLeases == 0 && record.attempts == 1, "\(record.errors.map(\.message))")
            }
            for hog in hogs { hog.stop() }
            #expect(await worker.stop())
            let delay = try #require(worstHeartbeatDelay(in: worker.logText), "no 'worker stopped' line in the log")
            // A lease of 3 s, heartbeats every 0.2 s: a beat later than half the lease puts leases at risk.
            recordTiming("worst heartbeat delay, pool full and cores busy", .milliseconds(delay), bound: .milliseconds(1500))
            #expect(!worker.logText.contains("lease lost"))
        }

        @Test("a process whose supervisor is killed finishes its job and exits instead of claiming on")
        func orphanedProcess() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let supervisor = try SupervisorProcess(environment, ["--processes", "1", "--concurrency", "2"])
            defer { supervisor.killIfRunning() }
            let child = try #require(try await supervisor.waitForChildren(environment.broker, count: 1).first)
            let running = try await environment.tern.enqueue(Sleep.self, .init(ms: 2000))
            _ = try await environment.waitFor(running.id, .running)
            kill(supervisor.pid, SIGKILL)
            await waitForExit(supervisor.process)
            // It drains: the running job finishes, and the process exits.
            let record = try await environment.waitFor(running.id, .succeeded, within: .seconds(30))
            #expect(record.attempts == 1)
            _ = try await eventually(within: .seconds(30)) {
                guard kill(child.pid, 0) != 0 else { throw WaitError("process \(child.pid) still runs") }
                return true
            }
            // Nothing claims any more.
            let later = try await environment.tern.enqueue(Echo.self, .string("after"))
            try await Task.sleep(for: .seconds(2))
            #expect(try await later.status().state == .queued)
        }

        @Test("--metrics-port: a worker, and a supervisor for all its processes, count attempts by task and outcome; /healthz and /readyz", arguments: [false, true])
        func workerMetrics(supervised: Bool) async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let port = try LocalRedisServer.freePort()
            let worker = try SupervisorProcess(
                environment, (supervised ? ["--processes", "2"] : []) + ["--concurrency", "2", "--metrics-port", "\(port)"], name: "worker")
            defer { worker.killIfRunning() }
            let echoes = try await environment.tern.enqueueBatch(Echo.self, (0..<3).map { .number(Double($0)) })
            let failing = try await environment.tern.enqueue(Fail.self, .init(message: "no"))
            for echo in echoes { _ = try await environment.waitFor(echo.id, .succeeded) }
            _ = try await environment.waitFor(failing.id, .failed)
            let text = try await eventually(within: .seconds(20)) {
                let text = try await httpGet(port: port, "/metrics")
                guard text.contains(#"tern_worker_jobs_total{task="echo",outcome="succeeded"} 3"#),
                    text.contains(#"tern_worker_jobs_total{task="fail",outcome="failed"} 1"#)
                else { throw WaitError("metrics so far:\n\(text)") }
                return text
            }
            #expect(text.contains(#"tern_worker_job_duration_seconds_count{task="echo"} 3"#))
            #expect(text.contains("tern_worker_slots \(supervised ? 4 : 2)"))
            #expect(text.contains("tern_supervisor_processes 2") == supervised)
            // The probes: alive and ready; a single worker whose Redis is gone is no longer ready.
            #expect(try await httpGet(port: port, "/healthz").contains(#"{"status":"ok"}"#))
            #expect(try await httpGet(port: port, "/readyz").contains(#"{"status":"ready"}"#))
            if !supervised {
                await environment.server.stopAndWait(keepingData: true)
                let notReady = try await eventually(within: .seconds(30)) {
                    let answer = try await httpGet(port: port, "/readyz")
                    guard answer.contains("not_ready") else { throw WaitError("still ready: \(answer)") }
                    return answer
                }
                #expect(notReady.contains(#""detail":"the worker has not registered in Redis for "#), "\(notReady)")
                #expect(notReady.contains(#""status":"not_ready""#), "\(notReady)")
                #expect(try await httpGet(port: port, "/healthz").contains(#"{"status":"ok"}"#))
            }
            #expect(await worker.stop())
        }

        @Test("isolation: a trapping task runs in processes of its own and touches no other job")
        func isolation() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let supervisor = try SupervisorProcess(
                environment, ["--processes", "1", "--concurrency", "4", "--isolate", "crash", "--max-crashes", "3"])
            defer { supervisor.killIfRunning() }
            let before = try await supervisor.waitForChildren(environment.broker, count: 1)
            let poison = try await environment.tern.enqueue(Crash.self, .init(kind: .unwrap), options: .init(maxAttempts: 10))
            let others = try await environment.tern.enqueueBatch(Sleep.self, (0..<12).map { _ in .init(ms: 200) })
            let failed = try await environment.waitFor(poison.id, .failed, within: .seconds(60))
            #expect(failed.crashes == 3)
            #expect(failed.error?.hasPrefix("worker_crashed: signal") == true, "\(failed.error ?? "")")
            for handle in others {
                let record = try await environment.waitFor(handle.id, .succeeded, within: .seconds(60))
                #expect(record.attempts == 1 && record.crashes == 0 && record.lostLeases == 0)
                #expect(record.worker == before[0].id)
            }
            // The shared process never died.
            let after = try await supervisor.children(environment.broker)
            #expect(after.map(\.pid) == before.map(\.pid))
            #expect(!supervisor.logText.contains("worker process died"))
            #expect(await supervisor.stop())
        }

        @Test("a process's death is not charged to a job it ran in a process of its own: that job runs again, uncharged")
        func isolatedNeighbour() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let supervisor = try SupervisorProcess(
                environment, ["--processes", "1", "--concurrency", "2", "--isolate", "sleep", "--max-crashes", "3"])
            defer { supervisor.killIfRunning() }
            _ = try await supervisor.waitForChildren(environment.broker, count: 1)
            let isolated = try await environment.tern.enqueue(Sleep.self, .init(ms: 3000))
            _ = try await environment.waitFor(isolated.id, .running, within: .seconds(60))
            // Runs in the process itself, beside the isolated job, and kills it.
            let poison = try await environment.tern.enqueue(Crash.self, .init(kind: .unwrap), options: .init(maxAttempts: 10))
            let failed = try await environment.waitFor(poison.id, .failed, within: .seconds(120))
            // Alone in the process that died (the isolated job does not share it): charged every time.
            #expect(failed.crashes == 3 && failed.errors.count == 3)
            #expect(failed.errors.allSatisfy { !$0.message.contains("not counted") }, "\(failed.errors.map(\.message))")
            let record = try await environment.waitFor(isolated.id, .succeeded, within: .seconds(120))
            #expect(record.crashes == 0 && record.attempts == 1 && !record.suspect)
            #expect(record.errors.isEmpty, "\(record.errors.map(\.message))")
            #expect(await supervisor.stop())
        }

        @Test("a crashing job never takes its neighbours down: 10 rounds of 100 jobs and a poison one, then 3 of 300 jobs and three poisons")
        func crashSuspects() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let supervisor = try SupervisorProcess(environment, ["--processes", "2", "--concurrency", "4", "--max-crashes", "3"])
            defer { supervisor.killIfRunning() }
            _ = try await supervisor.waitForChildren(environment.broker, count: 2)
            let rounds: [(normal: Int, poisons: [Crash.Kind])] =
                Array(repeating: (100, [.unwrap]), count: 10) + Array(repeating: (300, [.fatal, .unwrap, .overflow]), count: 3)
            for (round, plan) in rounds.enumerated() {
                // The poison jobs go in among the others, so that they share processes with them.
                let first = try await environment.tern.enqueueBatch(Sleep.self, Array(repeating: .init(ms: 50), count: plan.normal / 2))
                var poisons: [JobHandle<Crash>] = []
                for kind in plan.poisons {
                    poisons.append(try await environment.tern.enqueue(Crash.self, .init(kind: kind), options: .init(maxAttempts: 10)))
                }
                let rest = try await environment.tern.enqueueBatch(
                    Sleep.self, Array(repeating: .init(ms: 50), count: plan.normal - plan.normal / 2))
                for handle in first + rest {
                    let record = try await environment.waitFor(handle.id, .succeeded, within: .seconds(120))
                    #expect(record.crashes == 0, "round \(round): \(record.errors.map(\.message))")
                }
                for poison in poisons {
                    let record = try await environment.waitFor(poison.id, .failed, within: .seconds(120))
                    #expect(record.crashes == 3, "round \(round): \(record.errors.map(\.message))")
                    #expect(record.error?.hasPrefix("worker_crashed: signal") == true, "round \(round): \(record.error ?? "")")
                }
            }
            // Nothing lost: every job of every round is accounted for above, and no queue holds more.
            let stats = try await environment.broker.stats(.default)
            #expect(stats.pending == 0 && stats.running == 0 && stats.scheduled == 0)
            #expect(await supervisor.stop())
        }

        @Test("an isolated job has a TernClient of its own (its follow-up job runs) and logs with its worker's id")
        func isolatedClient() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let supervisor = try SupervisorProcess(environment, ["--processes", "1", "--concurrency", "2", "--isolate", "record"])
            defer { supervisor.killIfRunning() }
            let child = try #require(try await supervisor.waitForChildren(environment.broker, count: 1).first)
            let text = "follow-up-\(UUID().uuidString.prefix(8))"
            let job = try await environment.tern.enqueue(
                Record.self, .init(path: environment.server.directory + "/record.log", text: text, followUp: true))
            _ = try await environment.waitFor(job.id, .succeeded, within: .seconds(60))
            // The echo that the isolated process enqueued with its own client runs on the worker.
            let echo = try await eventually(within: .seconds(60)) {
                let page = try await environment.broker.jobs(queue: .default, state: .succeeded, cursor: nil, limit: 100)
                guard let found = page.jobs.first(where: { $0.task == "echo" && $0.input == Data("\"\(text)\"".utf8) }) else {
                    throw WaitError("the follow-up echo has not succeeded yet")
                }
                return found
            }
            #expect(echo.attempts == 1 && echo.worker == child.id)
            let line = supervisor.logText.split(separator: "\n").first { $0.contains("recorded") && $0.contains(text) }
            #expect(line?.contains("worker=\(child.id)") == true, "\(line ?? "no 'recorded' line")")
            #expect(await supervisor.stop())
        }

        @Test("SIGHUP replaces every process gracefully; an invalid configuration file is refused")
        func reload() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let config = environment.server.directory + "/worker.yaml"
            try "worker:\n  concurrency: 2\n".write(toFile: config, atomically: true, encoding: .utf8)
            let supervisor = try SupervisorProcess(environment, ["--config", config, "--processes", "2"])
            defer { supervisor.killIfRunning() }
            let first = try await supervisor.waitForChildren(environment.broker, count: 2)
            #expect(first.allSatisfy { $0.concurrency == 2 })
            let running = try await environment.tern.enqueue(Sleep.self, .init(ms: 3000))
            _ = try await environment.waitFor(running.id, .running)

            try "worker:\n  concurrency: 3\n".write(toFile: config, atomically: true, encoding: .utf8)
            kill(supervisor.pid, SIGHUP)
            let second = try await supervisor.waitForChildren(environment.broker, count: 2, excluding: Set(first.map(\.pid)))
            #expect(second.allSatisfy { $0.concurrency == 3 })
            // The job running in an old process finished there, once.
            let record = try await environment.waitFor(running.id, .succeeded, within: .seconds(30))
            #expect(record.attempts == 1 && record.crashes == 0)
            _ = try await eventually(within: .seconds(20)) {
                let live = try await supervisor.children(environment.broker)
                guard Set(live.map(\.pid)) == Set(second.map(\.pid)) else { throw WaitError("old processes still listed") }
                return live
            }
            let entry = try await environment.broker.workers().first { $0.pid == supervisor.pid }
            #expect(entry?.processes == 2 && entry?.concurrency == 6)

            // A file that does not parse, then one a new process would refuse: both reloads refused.
            for (index, bad) in ["worker: [not, a, mapping", "worker:\n  concurrency: 0\n"].enumerated() {
                try bad.write(toFile: config, atomically: true, encoding: .utf8)
                kill(supervisor.pid, SIGHUP)
                _ = try await eventually(within: .seconds(20)) {
                    let refusals = supervisor.logText.components(separatedBy: "reload refused").count - 1
                    guard refusals == index + 1 else { throw WaitError("\(refusals) refusals logged") }
                    return true
                }
            }
            #expect(supervisor.logText.contains("concurrency must be 1...10000"))
            #expect(Set(try await supervisor.children(environment.broker).map(\.pid)) == Set(second.map(\.pid)))
            #expect(await supervisor.stop())
        }

        @Test("--max-memory-mb: a process whose resident memory passes the cap finishes its job and is replaced")
        func memoryRecycling() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let supervisor = try SupervisorProcess(environment, ["--processes", "1", "--concurrency", "1", "--max-memory-mb", "64"])
            defer { supervisor.killIfRunning() }
            let before = try await supervisor.waitForChildren(environment.broker, count: 1)
            // 50,000,000 flags: about 50 MiB on top of an idle process's 35 MiB, for seconds.
            let primes = try await environment.tern.enqueue(Primes.self, .init(below: 50_000_000))
            #expect(try await primes.result(timeout: .seconds(120)).count == 3_001_134)
            // A new process replaced the recycled one.
            _ = try await supervisor.waitForChildren(environment.broker, count: 1, excluding: Set(before.map(\.pid)))
            #expect(supervisor.logText.contains("over the cap of 64 MiB"))
            #expect(try await primes.status().attempts == 1)
            #expect(await supervisor.stop())
        }
    }
}
