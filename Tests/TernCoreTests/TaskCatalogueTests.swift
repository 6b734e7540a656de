import Foundation
import Testing

@testable import TernCore

private struct Resize: TernTask {
    struct Input: Codable, Sendable { var url: String; var width: Int }
    struct Output: Codable, Sendable { var url: String }
    static let name = "resize"
    static let options = TaskOptions(queue: "images", priority: 3, maxAttempts: 4, softTimeLimit: .seconds(20), hardTimeLimit: .seconds(30))
    func run(_ input: Input, context: JobContext) async throws -> Output { Output(url: input.url) }
}

private struct Note: TernTask {
    typealias Input = String
    typealias Output = String
    static let name = "note"
    func run(_ input: String, context: JobContext) async throws -> String { input }
}

@Suite("TaskCatalogue: what a worker publishes of its tasks")
struct TaskCatalogueTests {
    private func registry() throws -> TaskRegistry {
        var registry = TaskRegistry()
        try registry.register(Resize.self)
        try registry.register(Note.self)
        return registry
    }

    @Test("the catalogue carries each task's options and schemas; its version depends only on them")
    func contents() throws {
        let catalogue = TaskCatalogue(try registry())
        #expect(catalogue.tasks.map(\.name) == ["note", "resize"])
        let resize = try #require(catalogue.tasks.last)
        #expect(resize.options.queue == "images" && resize.options.priority == 3 && resize.options.maxAttempts == 4)
        #expect(resize.options.softTimeLimit == .seconds(20) && resize.options.hardTimeLimit == .seconds(30))
        #expect(resize.inputSchema == JSONSchema.of(Resize.Input.self))
        #expect(catalogue.version.count == 16)
        #expect(TaskCatalogue(try registry()).version == catalogue.version)
        var fewer = TaskRegistry()
        try fewer.register(Note.self)
        #expect(TaskCatalogue(fewer).version != catalogue.version)
        // It survives the trip through Redis as JSON.
        let decoded = try JSONDecoder().decode(TaskCatalogue.self, from: try JSONEncoder().encode(catalogue))
        #expect(decoded == catalogue)
    }

    @Test("a published task validates input by its schema and cannot run here; a compiled task of the same name wins")
    func published() async throws {
        let catalogue = TaskCatalogue(try registry())
        var here = TaskRegistry()
        try here.register(Note.self)
        for task in catalogue.tasks { here.add(published: task) }
        let resize = try #require(here["resize"])
        #expect(resize.isPublished && here["note"]?.isPublished == false)
        try resize.validate(Data(#"{"url":"u","width":3}"#.utf8))
        #expect(throws: DecodingError.self) { try resize.validate(Data(#"{"url":"u","width":"3"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try resize.validate(Data("not json".utf8)) }
        let context = JobContext(id: JobID.generate(queue: "images"), attempt: 1, maxAttempts: 1) { _, _ in }
        await #expect(throws: PermanentError.self) { try await resize.run(Data("{}".utf8), context) }
    }
}
