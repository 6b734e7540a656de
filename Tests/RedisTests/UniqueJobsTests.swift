import Broker
import Foundation
import TernCore
import Testing

/// A task unique per customer while a job of it waits or runs.
struct UniqueSync: TernTask {
    struct Input: Codable, Sendable { var customer: Int; var page: Int }
    typealias Output = Int
    static let name = "test.unique-sync"
    static let options = TaskOptions(unique: .whileActive.keyed(by: "customer"))
    func run(_ input: Input, context: JobContext) async throws -> Int { input.page }
}

@Suite("Unique jobs through the typed client and a worker")
struct UniqueJobsTests {
    @Test("a task's policy holds from the Swift client through a worker run; uniqueKey and unique override it")
    func typedClient() async throws {
        guard TestRedis.enabled else { return }
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        let tern = environment.tern
        let first = try await tern.enqueue(UniqueSync.self, .init(customer: 1, page: 1))
        let second = try await tern.enqueue(UniqueSync.self, .init(customer: 1, page: 2))
        let other = try await tern.enqueue(UniqueSync.self, .init(customer: 2, page: 3))
        #expect(first.receipt?.created == true && second.receipt?.duplicate == true && second.id == first.id)
        #expect(other.id != first.id)
        // A caller's key, and a per-job rule.
        let keyed = try await tern.enqueue(UniqueSync.self, .init(customer: 3, page: 1), options: .init(uniqueKey: "c3"))
        let keyedAgain = try await tern.enqueue(UniqueSync.self, .init(customer: 9, page: 9), options: .init(uniqueKey: "c3"))
        #expect(keyedAgain.id == keyed.id)
        let windowed = try await tern.enqueue(
            UniqueSync.self, .init(customer: 4, page: 1), options: .init(unique: .until(.seconds(3600))))
        #expect(try await windowed.status().uniqueMode == "until")
        await #expect(throws: TernClientError.self) {
            try await tern.enqueue(UniqueSync.self, .init(customer: 5, page: 1), options: .init(unique: .until(.zero)))
        }

        try await environment.withWorker { _ in
            #expect(try await first.result(timeout: .seconds(30)) == 1, "the first input runs; the duplicate made nothing")
            #expect(try await other.result(timeout: .seconds(30)) == 3)
            _ = try await windowed.result(timeout: .seconds(30))
            let after = try await tern.enqueue(UniqueSync.self, .init(customer: 1, page: 4))
            #expect(after.receipt?.created == true, "the key is free once its job finished")
            #expect(try await after.result(timeout: .seconds(30)) == 4)
            let stillHeld = try await tern.enqueue(UniqueSync.self, .init(customer: 4, page: 1), options: .init(unique: .until(.seconds(3600))))
            #expect(stillHeld.id == windowed.id && stillHeld.receipt?.duplicate == true, "an until key outlives its job")
        }
    }
}
