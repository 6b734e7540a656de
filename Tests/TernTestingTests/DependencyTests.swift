import Foundation
import Logging
import Synchronization
import Tern
import Testing

@Suite("Dependencies: made once per process, on first use, closed newest first")
struct DependencyTests {
    private let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    struct Pool: Sendable { let serial: Int }
    struct Client: Sendable { let serial: Int }

    @Test("a resource asked for by many jobs at once is made once and shared; shutdown closes each made resource once, newest first")
    func madeOnceClosedInReverse() async throws {
        let ledger = Ledger()
        let made = Mutex(0)
        var declared = Dependencies()
        declared.register(Pool.self) {
            try await Task.sleep(for: .milliseconds(20))  // callers arrive while it is made
            let serial = made.withLock { $0 += 1; return $0 }
            ledger.note("made pool")
            return Pool(serial: serial)
        } shutdown: { _ in ledger.note("closed pool") }
        declared.register(Client.self, make: {
            ledger.note("made client")
            return Client(serial: 1)
        }, shutdown: { _ in ledger.note("closed client") })
        declared.register(String.self, value: "settings")
        let store = DependencyStore(declared, logger: logger)
        let serials = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<20 { group.addTask { try await store.get(Pool.self).serial } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(serials == Array(repeating: 1, count: 20))
        #expect(try await store.get(Client.self).serial == 1)
        #expect(try await store.get(String.self) == "settings")
        await store.shutdown()
        #expect(ledger.all == ["made pool", "made client", "closed client", "closed pool"])
        await #expect(throws: DependencyError.closed("Pool")) { try await store.get(Pool.self) }
        await store.shutdown()
        #expect(ledger.all.count == 4, "a second shutdown closes nothing again")
    }

    @Test("a resource that is not declared is a clear error; one whose making failed is made again by the next job")
    func undeclaredAndFailedMaking() async throws {
        struct Refused: Error {}
        let tries = Mutex(0)
        var declared = Dependencies()
        declared.register(Pool.self) {
            let attempt = tries.withLock { $0 += 1; return $0 }
            if attempt == 1 { throw Refused() }
            return Pool(serial: attempt)
        }
        let store = DependencyStore(declared, logger: logger)
        let missing = await #expect(throws: DependencyError.self) { try await store.get(Client.self) }
        #expect(missing?.description == "no dependency of type Client is declared: register it in the application's Dependencies")
        await #expect(throws: Refused.self) { try await store.get(Pool.self) }
        #expect(try await store.get(Pool.self).serial == 2)
        #expect(try await store.get(Pool.self).serial == 2)
    }

    @Test("declaring a type again replaces it: how a test swaps in a double")
    func redeclarationReplaces() async throws {
        var declared = Dependencies()
        declared.register((any Mailer).self) { RecordingMailer() }
        let double = RecordingMailer()
        declared.register((any Mailer).self, value: double)
        #expect(declared.names == ["Mailer"])
        let store = DependencyStore(declared, logger: logger)
        try await store.get((any Mailer).self).send(to: "a@example.com", subject: "hi")
        #expect(double.messages == ["a@example.com: hi"])
    }
}
