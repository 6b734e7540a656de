import Broker
import Foundation
import TernCore
import Testing
import Worker

@Suite("SupervisorMessage: the one codec of a supervised process's lines")
struct SupervisorMessageTests {
    @Test("every message reads back as itself from its line")
    func roundTrip() throws {
        let id = try #require(JobID("01M8VN7WFK0MEM7HV1RC35V5D4.default"))
        let messages: [SupervisorMessage] = [
            .worker(id: "host:42:abc", concurrency: 8),
            .claimed(JobLease(id: id, token: "t0k"), killAfter: .milliseconds(12_000), retryAfter: .milliseconds(250), isolated: false),
            .claimed(JobLease(id: id, token: "t0k"), killAfter: nil, retryAfter: nil, isolated: true),
            .outcome(task: "resize-image", outcome: .succeeded, duration: .microseconds(1_234)),
            .ended(id),
            .settled(id),
        ]
        for message in messages {
            let line = message.line
            #expect(line.hasSuffix("\n") && line.dropLast().allSatisfy { $0 != "\n" })
            #expect(SupervisorMessage(line: line.dropLast()) == message, "\(line)")
        }
        #expect(messages[1].line == "claimed 01M8VN7WFK0MEM7HV1RC35V5D4.default t0k 12000 250 0\n")
        #expect(messages[2].line == "claimed 01M8VN7WFK0MEM7HV1RC35V5D4.default t0k - - 1\n")
        // An older binary's line, without the last field: not isolated.
        #expect(
            SupervisorMessage(line: "claimed 01M8VN7WFK0MEM7HV1RC35V5D4.default t0k - -")
                == .claimed(JobLease(id: id, token: "t0k"), killAfter: nil, retryAfter: nil, isolated: false))
        #expect(messages[4].line == "ended 01M8VN7WFK0MEM7HV1RC35V5D4.default\n")
    }

    @Test("anything else (a task's stray print, a malformed field) is not a message")
    func rejectsOtherLines() {
        for line in [
            "", "hello world", "worker host:1:x many", "claimed not-an-id t 1 2", "claimed 01M8VN7WFK0MEM7HV1RC35V5D4.default t 1",
            "outcome echo exploded 12", "outcome echo succeeded soon", "settled", "settled nope", "ended", "ended nope x",
        ] {
            #expect(SupervisorMessage(line: line) == nil, "\(line)")
        }
    }
}
