import Foundation
import Logging
@testable import Tern
import Testing

@Suite("Text log lines")
struct TextLogHandlerTests {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "refused" }
    }

    @Test("a line is StreamLogHandler's: time, level, label, the logger's and the event's metadata sorted by key (the event's wins), source, message")
    func format() {
        var handler = TextLogHandler(label: "tern.worker")
        handler[metadataKey: "worker"] = "w1"
        handler[metadataKey: "job"] = "01J00000000000000000000000.default"
        handler[metadataKey: "attempt"] = "1"
        var event = LogEvent(
            level: .info, message: "job succeeded", metadata: ["duration_ms": "3", "attempt": "2"], source: "Worker",
            file: #fileID, function: #function, line: #line)
        #expect(handler.line(event, time: "2026-12-07T12:00:00+0000") == """
            2026-12-07T12:00:00+0000 info tern.worker: attempt=2 duration_ms=3 job=01J00000000000000000000000.default worker=w1 [Worker] job succeeded

            """)
        event.metadata = nil
        event.error = Refused()
        #expect(handler.line(event, time: "T").hasPrefix("T info tern.worker: attempt=1 error.message=refused error.type="))
        #expect(TextLogHandler(label: "").line(LogEvent(
            level: .warning, message: "m", metadata: nil, source: "S", file: "", function: "", line: 0), time: "T") == "T warning: [S] m\n")
    }

    @Test("a JSON handler's line carries the event's error too")
    func jsonError() {
        var handler = JSONLogHandler(label: "tern.api")
        handler[metadataKey: "token"] = "t"
        let event = LogEvent(level: .error, message: "m", error: Refused(), metadata: nil, source: "S", file: "", function: "", line: 0)
        let merged = handler.merged(event)
        #expect(merged["token"] == "t" && merged["error.message"] == "refused")
        #expect(merged["error.type"].map { "\($0)".hasSuffix("Refused") } == true)
    }

    @Test("the time is the local time as StreamLogHandler writes it")
    func time() {
        let text = LogOutput.shared.time()
        #expect(text.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$"#, options: .regularExpression) != nil, "\(text)")
    }
}
