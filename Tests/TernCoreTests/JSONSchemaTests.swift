import Foundation
import Testing

@testable import TernCore

private struct Address: Codable { var city: String; var zip: Int32 }
private enum Size: String, Codable, CaseIterable { case small, large }
private enum Level: Int, Codable, CaseIterable { case low = 1, high = 5 }
private struct Order: Codable {
    var id: UUID
    var note: String?
    var size: Size
    var level: Level
    var tags: [String]
    var unique: Set<Int>
    var counts: [String: Double]
    var address: Address
    var maybeAddress: Address?
    var when: Date
    var blob: Data
    var link: URL
    var anything: JSONValue
}
private struct Node: Codable { var name: String; var children: [Node] }
private struct Email: Codable {
    var value: String
    init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(String.self)
        guard value.contains("@") else { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "not an email")) }
    }
}
private enum Shape: Codable { case circle(radius: Double), square(side: Double) }

private func json(_ value: JSONValue) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try! encoder.encode(value), as: UTF8.self)
}

private func property(_ schema: JSONValue, _ name: String) -> JSONValue? {
    guard case .object(let fields) = schema, case .object(let properties)? = fields["properties"] else { return nil }
    return properties[name]
}

@Suite struct JSONSchemaTests {
    @Test func scalarsAndContainers() {
        let schema = JSONSchema.of(Order.self)
        #expect(json(property(schema, "id")!) == #"{"format":"uuid","type":"string"}"#)
        #expect(json(property(schema, "note")!) == #"{"type":["string","null"]}"#)
        #expect(json(property(schema, "size")!) == #"{"enum":["small","large"],"type":"string"}"#)
        #expect(json(property(schema, "level")!) == #"{"enum":[1,5],"type":"integer"}"#)
        #expect(json(property(schema, "tags")!) == #"{"items":{"type":"string"},"type":"array"}"#)
        #expect(json(property(schema, "unique")!) == #"{"items":{"format":"int64","type":"integer"},"type":"array","uniqueItems":true}"#)
        #expect(json(property(schema, "counts")!) == #"{"additionalProperties":{"format":"double","type":"number"},"type":"object"}"#)
        #expect(json(property(schema, "address")!) == #"{"properties":{"city":{"type":"string"},"zip":{"format":"int32","maximum":2147483647,"minimum":-2147483648,"type":"integer"}},"required":["city","zip"],"title":"Address","type":"object"}"#)
        #expect(json(property(schema, "maybeAddress")!).hasSuffix(#""title":"Address","type":["object","null"]}"#))
        #expect(json(property(schema, "blob")!) == #"{"contentEncoding":"base64","type":"string"}"#)
        #expect(json(property(schema, "link")!) == #"{"format":"uri","type":"string"}"#)
        #expect(json(property(schema, "anything")!) == "{}")
        guard case .object(let fields) = schema, case .array(let required)? = fields["required"] else {
            Issue.record("no required list"); return
        }
        #expect(required.count == 11 && !required.contains(.string("note")) && !required.contains(.string("maybeAddress")))
    }

    @Test func recursiveTypesEnd() {
        let schema = JSONSchema.of(Node.self)
        #expect(json(property(schema, "children")!) == #"{"items":{},"type":"array"}"#)
    }

    @Test func typesThatRejectPlaceholdersAreAnyJSON() {
        #expect(json(JSONSchema.of(Email.self)) == "{}")
        #expect(json(JSONSchema.of(Shape.self)) == "{}")
        #expect(json(JSONSchema.of([Email].self)) == #"{"items":{},"type":"array"}"#)
    }

    @Test func registryKeepsTheSchemas() throws {
        struct Resize: TernTask {
            struct Input: Codable, Sendable { var url: String; var width: Int? }
            struct Output: Codable, Sendable { var bytes: Int }
            static let name = "resize"
            func run(_ input: Input, context: JobContext) async throws -> Output { Output(bytes: 0) }
        }
        var registry = TaskRegistry()
        try registry.register(Resize.self)
        #expect(json(registry["resize"]!.inputSchema) == #"{"properties":{"url":{"type":"string"},"width":{"format":"int64","type":["integer","null"]}},"required":["url"],"title":"Input","type":"object"}"#)
        #expect(json(registry["resize"]!.outputSchema) == #"{"properties":{"bytes":{"format":"int64","type":"integer"}},"required":["bytes"],"title":"Output","type":"object"}"#)
    }
}
