import Foundation
import Tern

/// Tern's own application: the sample tasks, run by the repository's `tern`, `worker`, `api` and
/// `scheduler` executables through the same entry point a user's package uses.
///
/// The test tasks `crash`, `spin` and `record` are registered only when the environment variable
/// `TERN_TEST_TASKS` is `1` (the tests set it; never set it in production).
public struct SampleApplication: TernApplication {
    public static func tasks(_ tasks: inout TaskRegistry, _ dependencies: inout Dependencies) throws {
        let testTasks = ProcessInfo.processInfo.environment["TERN_TEST_TASKS"] == "1"
        try SampleTasks.register(in: &tasks, includingTestTasks: testTasks)
    }

    /// Enqueues one job of each everyday sample task and prints its result.
    public static func demo(_ tern: TernClient) async throws {
        print("tern dev: demo jobs:")
        func show(_ name: String, _ id: JobID, _ body: () async throws -> String) async {
            do {
                let output = try await body()
                let record = try await tern.broker.job(id)
                let duration = record.flatMap { record in
                    record.finishedMilliseconds.map { $0 - record.createdMilliseconds }
                }
                print("  \(name) → \(output)  (\(record?.attempts ?? 0) attempt(s), \(duration.map { "\($0) ms" } ?? "?"))")
            } catch {
                print("  \(name) → \(error)")
            }
        }
        let echo = try await tern.enqueue(Echo.self, .object(["hello": .string("tern")]))
        let flaky = try await tern.enqueue(Flaky.self, .init(failures: 2))
        let sleep = try await tern.enqueue(Sleep.self, .init(ms: 500))
        let primes = try await tern.enqueue(Primes.self, .init(below: 1_000_000))
        let fail = try await tern.enqueue(Fail.self, .init(message: "this one fails on purpose"))
        await show("echo {\"hello\":\"tern\"}", echo.id) { "\(try await echo.result(timeout: .seconds(30)))" }
        await show("flaky {\"failures\":2}", flaky.id) { "attempt \(try await flaky.result(timeout: .seconds(30)).attempt)" }
        await show("sleep {\"ms\":500}", sleep.id) { "slept \(try await sleep.result(timeout: .seconds(30)).sleptMs) ms" }
        await show("primes {\"below\":1000000}", primes.id) { "\(try await primes.result(timeout: .seconds(60)).count) primes" }
        await show("fail {\"message\":…}", fail.id) { "\(try await fail.result(timeout: .seconds(30)))" }
    }
}
