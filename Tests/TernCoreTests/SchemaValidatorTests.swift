import Foundation
import Testing

@testable import TernCore

private struct Line: Codable { var sku: String; var quantity: UInt8 }
private enum Speed: String, Codable, CaseIterable { case slow, fast }
private struct Invoice: Codable {
    var order: Int
    var email: String
    var lines: [Line]
    var note: String?
    var speed: Speed
    var tags: Set<String>
    var totals: [String: Double]
    var paid: Bool
}

/// The pointer and the kind of problem, as the API reports it: `/input/…: message`.
private func pointer(_ error: DecodingError) -> String {
    String(DecodingFailure.describe(error).split(separator: ":").first ?? "")
}

@Suite("SchemaValidator: the published schema judges input as decoding the Swift type does")
struct SchemaValidatorTests {
    private let schema = JSONSchema.of(Invoice.self)
    private let valid = #"{"order":1,"email":"a@b","lines":[{"sku":"x","quantity":2}],"speed":"fast","tags":["a"],"totals":{"eur":1.5},"paid":true}"#

    /// Decodes `text` as `Invoice` and validates it against the schema; both must agree.
    private func judge(_ text: String) throws -> String? {
        let data = Data(text.utf8)
        var decoded: String?
        do { _ = try JSONDecoder().decode(Invoice.self, from: data) } catch let error as DecodingError { decoded = pointer(error) }
        let value = try JSONDecoder().decode(JSONValue.self, from: data)
        var validated: String?
        do { try SchemaValidator.validate(value, against: schema) } catch { validated = pointer(error) }
        #expect((decoded == nil) == (validated == nil), "decoding says \(decoded ?? "valid"), the schema says \(validated ?? "valid") for \(text)")
        // Foundation's JSONDecoder reports a number that does not fit its type (1.5 for an Int, 300
        // for a UInt8) at the root; the validator names the field. Elsewhere both say the same.
        if decoded != "/" || validated == "/" {
            #expect(decoded == validated, "decoding says \(decoded ?? "valid"), the schema says \(validated ?? "valid") for \(text)")
        }
        return validated
    }

    @Test("valid input passes; an unknown key passes too, as decoding ignores it")
    func validInputPasses() throws {
        #expect(try judge(valid) == nil)
        #expect(try judge(valid.replacingOccurrences(of: #""paid":true"#, with: #""paid":true,"extra":[1]"#)) == nil)
        #expect(try judge(valid.replacingOccurrences(of: #""paid":true"#, with: #""paid":true,"note":null"#)) == nil)
    }

    @Test("each kind of problem is reported at the same pointer as decoding reports it", arguments: [
        (#""order":1"#, #""order":"1""#, "/order"),
        (#""order":1"#, #""order":1.5"#, "/order"),
        (#""email":"a@b","#, "", "/email"),
        (#""quantity":2"#, #""quantity":300"#, "/lines/0/quantity"),
        (#""quantity":2"#, #""quantity":-1"#, "/lines/0/quantity"),
        (#""sku":"x","#, "", "/lines/0/sku"),
        (#""speed":"fast""#, #""speed":"warp""#, "/speed"),
        (#""tags":["a"]"#, #""tags":[1]"#, "/tags/0"),
        (#""totals":{"eur":1.5}"#, #""totals":{"eur":"x"}"#, "/totals/eur"),
        (#""paid":true"#, #""paid":null"#, "/paid"),
        (#""paid":true"#, #""paid":1"#, "/paid"),
    ])
    func problems(replacing: String, with: String, at expected: String) throws {
        let text = valid.replacingOccurrences(of: replacing, with: with)
        #expect(text != valid)
        #expect(try judge(text) == expected)
    }

    @Test("a value that is not an object at the top is refused at the root")
    func notAnObject() throws {
        #expect(try judge("[1]") == "/")
        #expect(try judge("null") == "/")
    }

    @Test("any JSON fits the schema of JSONValue ({}), and a nullable property accepts null")
    func permissive() throws {
        for text in ["1", "null", #"{"a":[true]}"#] {
            try SchemaValidator.validate(try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), against: JSONSchema.of(JSONValue.self))
        }
        try SchemaValidator.validate(.object(["maybe": .null]), against: JSONSchema.of(Maybe.self))
    }
}

private struct Maybe: Codable { var maybe: Int? }
