import Broker
import Foundation
import Tasks
import TernCore
import TernTesting
import Testing

extension HeavyProcessTests {
    @Suite("Supervised worker processes", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct SupervisorProcessTests {
        @Test("a trapping task fails as worker_crashed after 3 crashed processes; jobs elsewhere run untouched; SIGTERM exits 0", arguments: Crash.Kind.allCases)
        func poisonJob(kind: Crash.Kind) async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let poison = try await environment.tern.enqueue(Crash.self, .init(kind: kind), options: .init(maxAttempts: 10))
            let supervisor = Process()
            supervisor.executableURL = URL(fileURLWithPath: WorkerBinary.path)
            supervisor.arguments = [
                "--redis-url", environment.server.url, "--prefix", environment.broker.keys.prefix,
                "--lease", "5", "--heartbeat", "0.2", "--reaper", "0.3", "--processes", "2", "--max-crashes", "3", "--concurrency", "1",
            ]
            supervisor.environment = WorkerBinary.testTasksEnvironment
            let log = environment.server.directory + "/supervisor.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            supervisor.standardOutput = FileHandle.nullDevice
            supervisor.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try supervisor.run()
            defer {
                if supervisor.isRunning { kill(supervisor.processIdentifier, SIGKILL) }
            }
            // Other jobs keep running in the other process while the poison job crashes processes (one
            // job per process here: jobs sharing a process with a trapping job die with it).
            var echoes: [JobHandle<Echo>] = []
            for index in 0..<20 { echoes.append(try await environment.tern.enqueue(Echo.self, .number(Double(index)))) }
            let failed = try await environment.waitFor(poison.id, .failed, within: .seconds(90))
            #expect(failed.crashes == 3)
            #expect(failed.error?.hasPrefix("worker_crashed: signal") == true, "\(failed.error ?? "")")
            #expect(failed.errors.count == 3, "\(failed.errors.map(\.message))\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            #expect(failed.attempts <= 1)
            for (index, echo) in echoes.enumerated() {
                #expect(try await echo.result(timeout: .seconds(60)) == .number(Double(index)))
            }
            kill(supervisor.processIdentifier, SIGTERM)
            await waitForExit(supervisor)
            #expect(supervisor.terminationReason == .exit && supervisor.terminationStatus == 0)
        }

        @Test("a link named worker to the tern binary runs the worker, its processes included")
        func multiCallWorker() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let tern = URL(fileURLWithPath: WorkerBinary.path).deletingLastPathComponent().appendingPathComponent("tern").path
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tern-multicall-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let link = directory.appendingPathComponent("worker")
            try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: tern)
            let handles = try await environment.tern.enqueueBatch(Echo.self, (0..<4).map { .number(Double($0)) })
            let supervisor = Process()
            supervisor.executableURL = link
            supervisor.arguments = [
                "--redis-url", environment.server.url, "--prefix", environment.broker.keys.prefix, "--processes", "2",
                "--concurrency", "2",
            ]
            supervisor.standardOutput = FileHandle.nullDevice
            supervisor.standardError = FileHandle.nullDevice
            try supervisor.run()
            defer {
                if supervisor.isRunning { kill(supervisor.processIdentifier, SIGKILL) }
            }
            for (index, handle) in handles.enumerated() {
                #expect(try await handle.result(timeout: .seconds(60)) == .number(Double(index)))
            }
            let processes = try await eventually(within: .seconds(20)) {
                let live = try await environment.broker.workers().filter { $0.supervisorPID == supervisor.processIdentifier }
                guard live.count == 2 else { throw WaitError("\(live.count) worker processes") }
                return live
            }
            #expect(processes.count == 2)
            kill(supervisor.processIdentifier, SIGTERM)
            await waitForExit(supervisor)
            #expect(supervisor.terminationReason == .exit && supervisor.terminationStatus == 0)
        }

        @Test("with --max-jobs-per-process a process is replaced after its jobs; every job still succeeds once")
        func recycling() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let handles = try await environment.tern.enqueueBatch(Echo.self, (0..<12).map { .number(Double($0)) })
            let supervisor = Process()
            supervisor.executableURL = URL(fileURLWithPath: WorkerBinary.path)
            supervisor.arguments = [
                "--redis-url", environment.server.url, "--prefix", environment.broker.keys.prefix, "--lease", "5",
                "--heartbeat", "0.2", "--reaper", "0.3", "--processes", "1", "--concurrency", "1", "--max-jobs-per-process", "3",
            ]
            supervisor.standardOutput = FileHandle.nullDevice
            supervisor.standardError = FileHandle.nullDevice
            try supervisor.run()
            defer {
                if supervisor.isRunning { kill(supervisor.processIdentifier, SIGKILL) }
            }
            var workers: Set<String> = []
            for (index, handle) in handles.enumerated() {
                #expect(try await handle.result(timeout: .seconds(60)) == .number(Double(index)))
                let record = try await handle.status()
                #expect(record.attempts == 1)
                if let worker = record.worker { workers.insert(worker) }
            }
            // 12 jobs, 3 per process: at least 4 processes ran them, one after another.
            #expect(workers.count >= 4, "\(workers)")
            // The live process names its supervisor.
            let live = try await eventually(within: .seconds(20)) {
                guard let worker = try await environment.broker.workers().first(where: { $0.processes == nil }) else {
                    throw WaitError("no live worker process")
                }
                return worker
            }
            #expect(live.supervisorPID == supervisor.processIdentifier)
            // The supervisor is listed too, with its process count. Its entry is rewritten every
            // heartbeat; while a process is being recycled it has no slots for a moment, so wait
            // for the steady state rather than reading one snapshot.
            let entry = try await eventually(within: .seconds(20)) {
                let entry = try await environment.broker.workers().first { $0.pid == supervisor.processIdentifier }
                guard let entry, entry.processes == 1, entry.concurrency == 1 else {
                    throw WaitError("supervisor entry: \(String(describing: entry))")
                }
                return entry
            }
            #expect(entry.id.hasSuffix(":supervisor"))
            kill(supervisor.processIdentifier, SIGTERM)
            await waitForExit(supervisor)
            #expect(supervisor.terminationReason == .exit && supervisor.terminationStatus == 0)
        }
    }
}
