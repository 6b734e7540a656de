import Foundation
import Testing
import TernCore

private struct Greet: TernTask {
    struct Input: Codable, Sendable {
        struct Person: Codable, Sendable { var name: String }
        var people: [Person]
        var times: Int
    }
    typealias Output = String
    static let name = "greet"
    func run(_ input: Input, context: JobContext) async throws -> String {
        String(repeating: "hi \(input.people.map(\.name).joined(separator: ","));", count: input.times)
    }
}

private struct AlsoGreet: TernTask {
    typealias Input = String
    typealias Output = String
    static let name = "greet"
    func run(_ input: String, context: JobContext) async throws -> String { input }
}

private struct BadName: TernTask {
    typealias Input = String
    typealias Output = String
    static let name = "has space"
    func run(_ input: String, context: JobContext) async throws -> String { input }
}

private struct BadOptions: TernTask {
    typealias Input = String
    typealias Output = String
    static let name = "bad.options"
    static let options = TaskOptions(softTimeLimit: .zero)
    func run(_ input: String, context: JobContext) async throws -> String { input }
}

@Suite("Core model")
struct CoreModelTests {
    let context = JobContext(id: JobID.generate(queue: .default), attempt: 1, maxAttempts: 3) { _, _ in }

    @Test("job ids are ULIDs carrying their queue, sortable by time, and parse back")
    func jobIDs() throws {
        var generator = SystemRandomNumberGenerator()
        let early = JobID.generate(queue: "images", milliseconds: 1_700_000_000_000, using: &generator)
        let late = JobID.generate(queue: "images", milliseconds: 1_700_000_000_001, using: &generator)
        #expect(early < late)
        #expect(early.queue == "images")
        #expect(early.milliseconds == 1_700_000_000_000)
        #expect(JobID(early.rawValue) == early)
        #expect(early.rawValue.count == 26 + 1 + 6)
        for bad in [
            "", "abc.default", "01J00000000000000000000000", "01J00000000000000000000000.Bad", "01J0000000000000000000000U.default",
            "01J00000000000000000000000.", "01J0000000000000000000000.default", "01J000000000000000000000000.default",
            "01J00000000000000000000000.défaut", "01J0000000000000000000000é.default",
        ] {
            #expect(JobID(bad) == nil, "\(bad)")
        }
        let encoded = try JSONEncoder().encode(early)
        #expect(try JSONDecoder().decode(JobID.self, from: encoded) == early)
    }

    @Test("queue names: 1-64 of a-z 0-9 _ -, starting with a letter or digit")
    func queueNames() {
        for good in ["default", "a", "emails-2", "x_y", String(repeating: "q", count: 64)] {
            #expect(QueueName(good) != nil, "\(good)")
        }
        for bad in ["", "Upper", "-lead", "_lead", "a:b", "a{b}", "a.b", "a b", "tab\t", String(repeating: "q", count: 65)] {
            #expect(QueueName(bad) == nil, "\(bad)")
        }
    }

    @Test("SHA-256 matches the standard test vectors")
    func sha256() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(String(repeating: "a", count: 1000)).count == 64)
    }

    @Test("the registry refuses duplicate names, bad names and bad options at start-up")
    func registryErrors() throws {
        var registry = TaskRegistry()
        try registry.register(Greet.self)
        #expect(throws: TaskRegistryError.duplicateName("greet")) { try registry.register(AlsoGreet.self) }
        #expect(throws: TaskRegistryError.invalidName("has space")) { try registry.register(BadName.self) }
        #expect(throws: TaskRegistryError.self) { try registry.register(BadOptions.self) }
        #expect(registry.names == ["greet"])
    }

    @Test("the registry runs a task on JSON; input that does not decode is a permanent error naming the field")
    func registryRuns() async throws {
        var registry = TaskRegistry()
        try registry.register(Greet.self)
        let entry = try #require(registry["greet"])
        let output = try await entry.run(Data(#"{"people":[{"name":"ada"}],"times":2}"#.utf8), context)
        #expect(String(decoding: output, as: UTF8.self) == #""hi ada;hi ada;""#)
        let cases: [(String, String)] = [
            (#"{"people":[]}"#, "invalid input: /times: missing"),
            (#"{"people":[{"nom":"x"}],"times":1}"#, "invalid input: /people/0/name: missing"),
            (#"{"people":[],"times":"2"}"#, "invalid input: /times:"),
            ("not json", "invalid input: /:"),
        ]
        for (input, message) in cases {
            do {
                _ = try await entry.run(Data(input.utf8), context)
                Issue.record("\(input) must not decode")
            } catch let error as PermanentError {
                #expect(error.message.hasPrefix(message), "\(error.message)")
                #expect(entry.isPermanent(error))
            }
        }
        #expect(throws: DecodingError.self) { try entry.validate(Data("{}".utf8)) }
    }

    @Test("retry delays: exponential with jitter by default, fixed on request")
    func retryDelays() {
        let exponential = RetryBackoff.exponential(base: .milliseconds(100), cap: .seconds(1))
        for retry in 1...6 {
            let nominal = Backoff(base: .milliseconds(100), cap: .seconds(1)).nominalDelay(attempt: retry)
            let delay = exponential.delay(retry: retry)
            #expect(delay >= nominal / 2 && delay <= nominal)
        }
        #expect(RetryBackoff.fixed(.seconds(3)).delay(retry: 7) == .seconds(3))
        #expect(Greet.retryDelay(afterAttempt: 1, error: PermanentError("x")) <= .seconds(1))
    }

    @Test("JSON values round-trip and print as compact JSON")
    func jsonValues() throws {
        let value = JSONValue.object(["a": .array([.number(1), .bool(true), .null, .string("x\"y")])])
        let data = try JSONEncoder().encode(value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: data) == value)
        #expect(value.description == #"{"a":[1,true,null,"x\"y"]}"#)
    }
}
