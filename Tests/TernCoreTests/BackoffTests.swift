import Testing
import TernCore

@Suite("Backoff")
struct BackoffTests {
    @Test("nominal delays double from the base up to the cap")
    func nominal() {
        let backoff = Backoff(base: .milliseconds(25), cap: .seconds(1))
        let delays = (0...10).map { backoff.nominalDelay(attempt: $0) }
        #expect(
            delays == [
                .zero, .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(200),
                .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1), .seconds(1), .seconds(1),
            ])
        #expect(backoff.nominalDelay(attempt: .max) == .seconds(1))
        #expect(Backoff(base: .zero, cap: .seconds(1)).nominalDelay(attempt: 5) == .zero)
    }

    @Test("jittered delays stay within [d/2, d]")
    func jitter() {
        let backoff = Backoff(base: .milliseconds(10), cap: .milliseconds(500))
        var generator = SystemRandomNumberGenerator()
        for attempt in 1...20 {
            let nominal = backoff.nominalDelay(attempt: attempt)
            for _ in 0..<50 {
                let delay = backoff.delay(attempt: attempt, using: &generator)
                #expect(delay >= nominal / 2 && delay <= nominal)
            }
        }
    }

    @Test("a cap below the base is raised to the base")
    func capBelowBase() {
        #expect(Backoff(base: .seconds(2), cap: .seconds(1)).cap == .seconds(2))
    }
}
