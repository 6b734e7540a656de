import Foundation
import Testing

@testable import TernCore

private struct Sync: TernTask {
    struct Input: Codable, Sendable { var customer: Int; var page: Int }
    typealias Output = Int
    static let name = "sync"
    static let options = TaskOptions(unique: .until(.seconds(60)).keyed(by: "customer"))
    func run(_ input: Input, context: JobContext) async throws -> Int { input.page }
}

private struct Broken: TernTask {
    typealias Input = Int
    typealias Output = Int
    static let name = "broken"
    static let options = TaskOptions(unique: .debounce(.zero))
    func run(_ input: Int, context: JobContext) async throws -> Int { input }
}

@Suite("Unique policies: keys, limits and the published form")
struct UniquePolicyTests {
    private func key(_ policy: UniquePolicy, _ json: String, task: String = "sync") -> String {
        policy.key(task: task, input: Data(json.utf8))
    }

    @Test("a key is the task with the canonical input, or with the named members only")
    func keys() {
        let whole = UniquePolicy.whileActive
        #expect(key(whole, #"{"a":1,"b":2}"#) == key(whole, #"{ "b": 2.0, "a": 1 }"#))
        #expect(key(whole, #"{"a":1}"#) != key(whole, #"{"a":2}"#))
        #expect(key(whole, #"{"a":1}"#) != key(whole, #"{"a":1}"#, task: "other"), "keys are per task")
        #expect(key(whole, #"{"a":1}"#).count == 32)
        let byCustomer = UniquePolicy.whileActive.keyed(by: "customer")
        #expect(key(byCustomer, #"{"customer":7,"page":1}"#) == key(byCustomer, #"{"page":2,"customer":7}"#))
        #expect(key(byCustomer, #"{"customer":7}"#) != key(byCustomer, #"{"customer":8}"#))
        #expect(key(byCustomer, #"{"page":1}"#) == key(byCustomer, #"{"customer":null}"#), "a missing member counts as null")
        #expect(key(byCustomer, "7") == key(whole, "7"), "an input that is not an object is keyed whole")
        #expect(UniquePolicy.key(task: "sync", explicit: "7") != key(whole, "7"), "a caller's key never equals an input's")
        #expect(UniquePolicy.key(task: "sync", explicit: "a") == UniquePolicy.key(task: "sync", explicit: "a"))
    }

    @Test("windows are 1 ms to 30 days; at most 16 key fields; registering a task checks its policy")
    func limits() throws {
        #expect(UniquePolicy.until(.milliseconds(1)).problem == nil)
        #expect(UniquePolicy.until(.zero).problem != nil)
        #expect(UniquePolicy.debounce(.seconds(31 * 86_400)).problem != nil)
        #expect(UniquePolicy(.whileActive, keyFields: (0..<17).map(String.init)).problem != nil)
        var registry = TaskRegistry()
        #expect(throws: TaskRegistryError.self) { try registry.register(Broken.self) }
        try registry.register(Sync.self)
    }

    @Test("the catalogue publishes the policy, and an API without the code enqueues under it")
    func published() throws {
        var registry = TaskRegistry()
        try registry.register(Sync.self)
        let catalogue = TaskCatalogue(registry)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = String(decoding: try encoder.encode(catalogue.tasks[0].unique), as: UTF8.self)
        #expect(text == #"{"key_fields":["customer"],"mode":"until","window_ms":60000}"#)
        let decoded = try JSONDecoder().decode(TaskCatalogue.self, from: try encoder.encode(catalogue))
        #expect(decoded.tasks[0].options.unique == Sync.options.unique)
        var elsewhere = TaskRegistry()
        elsewhere.add(published: decoded.tasks[0])
        #expect(elsewhere["sync"]?.options.unique == .until(.seconds(60)).keyed(by: "customer"))
        // A catalogue of an older worker has no policy.
        let old = #"{"tasks":[{"name":"n","queue":"default","priority":5,"max_attempts":1,"isolated":false,"result_retention_ms":1,"input_schema":{},"output_schema":{}}],"version":"x"}"#
        #expect(try JSONDecoder().decode(TaskCatalogue.self, from: Data(old.utf8)).tasks[0].options.unique == nil)
    }
}
