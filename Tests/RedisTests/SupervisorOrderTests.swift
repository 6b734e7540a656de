import Broker
import Foundation
import Tasks
import TernCore
import TernTesting
import Testing

extension HeavyProcessTests {
    @Suite("Orders to a supervisor", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct SupervisorOrderTests {
        @Test("quiet passes to every process and holds their jobs back; resume runs them; stop drains the processes, a SIGTERM after it too, and exits 0")
        func quietResumeStop() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let broker = environment.broker
            let supervisor = try SupervisorProcess(environment, ["--processes", "2", "--concurrency", "2"])
            defer { supervisor.killIfRunning() }
            let pid = supervisor.pid
            func listed() async throws -> (supervisor: WorkerInfo, processes: [WorkerInfo]) {
                let workers = try await broker.workers()
                let processes = workers.filter { $0.supervisorPID == pid }
                guard let own = workers.first(where: { $0.pid == pid && $0.processes != nil }), processes.count == 2 else {
                    throw WaitError("the supervisor and its 2 processes are not listed yet")
                }
                return (own, processes)
            }
            let id = try await eventually(within: .seconds(30)) { try await listed().supervisor.id }

            try await broker.give(.quiet, to: id)
            try await eventually(within: .seconds(20)) {
                let (own, processes) = try await listed()
                guard own.mode == .quiet, processes.allSatisfy({ $0.mode == .quiet }) else {
                    throw WaitError("not all quiet: \(own.mode as Any) \(processes.map(\.mode))")
                }
            }
            let held = try await environment.tern.enqueueBatch(Echo.self, (0..<4).map { .number(Double($0)) })
            // Many heartbeat intervals and idle waits: no quiet process claims.
            try await Task.sleep(for: .seconds(3))
            for handle in held { #expect(try await broker.job(handle.id)?.state == .queued) }

            try await broker.give(nil, to: id)
            for (index, handle) in held.enumerated() {
                #expect(try await handle.result(timeout: .seconds(30)) == .number(Double(index)))
            }
            // One resumed process may have run them all before the other read its withdrawn order.
            try await eventually(within: .seconds(20)) {
                let (own, processes) = try await listed()
                guard own.mode == nil, processes.allSatisfy({ $0.mode == nil }) else {
                    throw WaitError("not all running again: \(own.mode as Any) \(processes.map(\.mode))")
                }
            }

            // A stop order, then a SIGTERM (a deploy): the running job still finishes.
            let long = try await environment.tern.enqueue(Sleep.self, .init(ms: 2_000))
            try await eventually(within: .seconds(20)) {
                guard try await broker.job(long.id)?.state == .running else { throw WaitError("the long job is not running yet") }
            }
            try await broker.give(.stop, to: id)
            try await eventually(within: .seconds(20)) {
                guard try await broker.workers().first(where: { $0.id == id })?.mode == .stopping else { throw WaitError("not stopping yet") }
            }
            kill(pid, SIGTERM)
            #expect(try await long.result(timeout: .seconds(30)).sleptMs >= 2_000)
            await waitForExit(supervisor.process)
            #expect(supervisor.process.terminationReason == .exit && supervisor.process.terminationStatus == 0, "\(supervisor.logText)")
            #expect(try await broker.workers().isEmpty)
            #expect(supervisor.logText.contains("an operator asked this supervisor to stop"))
        }

        @Test("SIGTSTP quiets a worker process, and a supervisor's processes, without suspending any; the quiet is an order the registry shows and a resume withdraws")
        func quietOnSignal() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let broker = environment.broker
            /// Sends SIGTSTP to `targets`, waits until `ids` are all listed as quiet, checks that no
            /// process is suspended and that 2 new jobs stay queued, then resumes `resumed` and waits for the jobs.
            func quietThenResume(signal targets: [Int32], ids: [String], resumed: String) async throws {
                for pid in targets { kill(pid, SIGTSTP) }
                try await eventually(within: .seconds(20)) {
                    let modes = try await broker.workers().filter { ids.contains($0.id) }.map(\.mode)
                    guard modes.count == ids.count, modes.allSatisfy({ $0 == .quiet }) else { throw WaitError("not all quiet: \(modes)") }
                    // SIGTSTP stores a quiet order for the process's own id.
                    let order = try await environment.client.send(RedisCommand("EXISTS", broker.keys.workerOrder(resumed)))
                    guard order == .integer(1) else { throw WaitError("no quiet order stored for \(resumed)") }
                }
                for pid in targets {
                    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
                    let state = status.split(separator: "\n").first { $0.hasPrefix("State:") } ?? ""
                    #expect(!state.contains("stopped"), "process \(pid) was suspended: \(state)")
                }
                let held = try await environment.tern.enqueueBatch(Echo.self, [.number(1), .number(2)])
                try await Task.sleep(for: .seconds(3))
                for handle in held { #expect(try await broker.job(handle.id)?.state == .queued) }
                try await broker.give(nil, to: resumed)
                for (index, handle) in held.enumerated() {
                    #expect(try await handle.result(timeout: .seconds(30)) == .number(Double(index + 1)))
                }
            }

            let worker = try SupervisorProcess(environment, ["--concurrency", "2"], name: "worker")
            defer { worker.killIfRunning() }
            let workerID = try await eventually(within: .seconds(30)) {
                guard let info = try await broker.workers().first(where: { $0.pid == worker.pid }) else { throw WaitError("not listed yet") }
                return info.id
            }
            try await quietThenResume(signal: [worker.pid], ids: [workerID], resumed: workerID)
            #expect(worker.logText.contains("quiet: SIGTSTP asked this worker"), "\(worker.logText)")
            #expect(await worker.stop(), "\(worker.logText)")

            let supervisor = try SupervisorProcess(environment, ["--processes", "2", "--concurrency", "2"])
            defer { supervisor.killIfRunning() }
            let children = try await supervisor.waitForChildren(broker, count: 2)
            let id = try await eventually(within: .seconds(30)) {
                guard let info = try await broker.workers().first(where: { $0.pid == supervisor.pid }) else { throw WaitError("not listed yet") }
                return info.id
            }
            // The processes get it too (`pkill -TSTP`): they ignore it, and the supervisor passes quiet on.
            try await quietThenResume(
                signal: [supervisor.pid] + children.map(\.pid), ids: [id] + children.map(\.id), resumed: id)
            #expect(await supervisor.stop(), "\(supervisor.logText)")
        }
    }
}
