import Foundation
import Testing
import Worker

@Suite("Worker health probes")
struct WorkerHealthTests {
    private let start = ContinuousClock.now

    private func health(duty: Duration?, registered: Duration?, error: String? = nil, stopping: Bool = false) -> WorkerHealth {
        WorkerHealth(
            lastDutyRound: duty.map { start + $0 }, lastRegistered: registered.map { start + $0 }, registrationError: error,
            stopping: stopping, interval: .seconds(1), registrationTTL: .seconds(7))
    }

    @Test("alive until the duty thread has made no progress for three intervals and 30 s; alive before it starts")
    func liveness() {
        #expect(health(duty: nil, registered: nil).notAlive(at: start + .seconds(600)) == nil)
        #expect(health(duty: .zero, registered: .zero).notAlive(at: start + .seconds(33)) == nil)
        #expect(health(duty: .zero, registered: .zero).notAlive(at: start + .seconds(34)) == "the worker's heartbeat thread has not run for 34 s")
    }

    @Test("ready once registered, until the registration lapses or the worker stops; the reason says which")
    func readiness() {
        #expect(health(duty: .zero, registered: nil).notReady(at: start) == "the worker has not registered in Redis yet")
        #expect(health(duty: .zero, registered: .zero).notReady(at: start + .seconds(7)) == nil)
        #expect(health(duty: .zero, registered: .zero, error: "connection refused").notReady(at: start + .seconds(9))
            == "the worker has not registered in Redis for 9 s: connection refused")
        #expect(health(duty: .zero, registered: .zero, stopping: true).notReady(at: start) == "the worker is stopping")
    }
}
