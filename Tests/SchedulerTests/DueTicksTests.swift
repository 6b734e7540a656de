import Foundation
import Scheduler
import Testing

private func schedule(every seconds: Int64, catchUp: Schedule.CatchUp = .skip) -> Schedule {
    Schedule(name: "s", trigger: .interval(.seconds(seconds)), task: "echo", input: Data("1".utf8), catchUp: catchUp)
}

private func due(_ schedule: Schedule, from: Int64, hasMark: Bool = true, now: Int64) -> [[Int64]] {
    SchedulerService.dueTicks(schedule, from: from, hasMark: hasMark, now: now, lateness: .seconds(60)).map { [$0.tick, $0.mark] }
}

@Suite("Due ticks and catch-up policies")
struct DueTicksTests {
    @Test("intervals tick at multiples of the interval since 1970, the same for every replica")
    func intervals() {
        let every10 = schedule(every: 10)
        #expect(every10.upcoming(after: 1_000_003_000, count: 3) == [1_000_010_000, 1_000_020_000, 1_000_030_000])
        #expect(every10.next(after: 1_000_010_000) == 1_000_020_000)
    }

    @Test("on time: every tick after the mark up to now, each leaving its own mark")
    func onTime() {
        // Mark at 100 s, now 130.5 s: ticks 110, 120, 130 are all within the 60 s lateness.
        #expect(due(schedule(every: 10), from: 100_000, now: 130_500) == [[110_000, 110_000], [120_000, 120_000], [130_000, 130_000]])
        #expect(due(schedule(every: 10), from: 130_000, now: 130_500).isEmpty)
    }

    @Test("skip: ticks missed by more than the lateness are not emitted")
    func skip() {
        // Mark at 0, now 1000 s: ticks up to 940 s were missed; 950…1000 are on time.
        let ticks = due(schedule(every: 50), from: 0, now: 1_000_000)
        #expect(ticks == [[950_000, 950_000], [1_000_000, 1_000_000]])
    }

    @Test("once: one job for all missed ticks, the mark moved past them")
    func once() {
        let ticks = due(schedule(every: 50, catchUp: .once), from: 0, now: 1_000_000)
        #expect(ticks == [[50_000, 940_000], [950_000, 950_000], [1_000_000, 1_000_000]])
    }

    @Test("all: each missed tick, oldest first, up to the limit; the rest skipped")
    func all() {
        let ticks = due(schedule(every: 50, catchUp: .all(limit: 3)), from: 0, now: 1_000_000)
        #expect(ticks == [[50_000, 50_000], [100_000, 100_000], [150_000, 940_000], [950_000, 950_000], [1_000_000, 1_000_000]])
        let few = due(schedule(every: 50, catchUp: .all(limit: 100)), from: 800_000, now: 1_000_000)
        #expect(few.map { $0[0] } == [850_000, 900_000, 950_000, 1_000_000])
        #expect(few.allSatisfy { $0[0] == $0[1] })
    }

    @Test("a new schedule (no mark) starts at its first sight, missing nothing after it")
    func newSchedule() {
        #expect(due(schedule(every: 1, catchUp: .all(limit: 10)), from: 99_000, hasMark: false, now: 101_200) == [[100_000, 100_000], [101_000, 101_000]])
    }
}
