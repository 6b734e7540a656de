import Broker
import Foundation
import Testing

@testable import Tern

@Suite("Scheduler health probes")
struct SchedulerProbeTests {
    @Test("not ready before a pass and after a failed one; not alive once no pass has ended for 60 s")
    func probes() {
        let metrics = SchedulerMetrics()
        #expect(metrics.health().notReady == "the scheduler has not completed a pass yet")
        #expect(metrics.health().notAlive == nil)
        metrics.passEnded(failed: false, schedules: 1, leftOut: 0)
        let now = ContinuousClock.now
        #expect(metrics.health(at: now).notReady == nil)
        #expect(metrics.health(at: now + .seconds(59)).notAlive == nil)
        #expect(metrics.health(at: now + .seconds(90)).notAlive?.hasPrefix("no scheduler pass has ended for 9") == true)
        metrics.passEnded(failed: true, schedules: 1, leftOut: 0)
        #expect(metrics.health().notReady == "the last scheduler pass failed (Redis unreachable?)")
    }
}
