import Foundation

/// Checks a JSON value against a schema that ``JSONSchema`` derived from a Swift type: how an API
/// without the task's code validates input from a published task catalogue.
///
/// It understands the keywords ``JSONSchema`` writes — `type` (one or a list, `null` included),
/// `properties`, `required`, `additionalProperties`, `items`, `enum`, `anyOf`, `minimum` and
/// `maximum` — and ignores the rest (`title`, `description`, `format`, `contentEncoding`, and
/// `uniqueItems`: decoding a `Set` accepts repeated values), as decoding would accept them. Unknown object keys are
/// allowed, as Swift's decoding ignores them. The first problem is thrown as the `DecodingError`
/// that decoding the Swift type would throw at the same path, so callers report both alike.
public enum SchemaValidator {
    /// Throws the first way `value` does not fit `schema`.
    /// - Throws: `DecodingError` with the path of the failing value.
    public static func validate(_ value: JSONValue, against schema: JSONValue) throws(DecodingError) {
        try check(value, schema, path: [])
    }

    private static func check(_ value: JSONValue, _ schema: JSONValue, path: [any CodingKey]) throws(DecodingError) {
        guard case .object(let rules) = schema else { return }
        if case .array(let choices)? = rules["anyOf"] {
            var first: DecodingError?
            for choice in choices {
                do {
                    try check(value, choice, path: path)
                    first = nil
                    break
                } catch {
                    first = first ?? error
                }
            }
            if let first { throw first }
        }
        if let types = allowedTypes(rules["type"]) {
            guard types.contains(where: { matches(value, $0) }) else {
                let expected = types.filter { $0 != "null" }.joined(separator: " or ")
                let context = DecodingError.Context(
                    codingPath: path, debugDescription: value == .null
                        ? "Expected \(expected) value but found null instead."
                        : "Expected to decode \(expected) but found \(describe(value)) instead.")
                if value == .null { throw DecodingError.valueNotFound(Any.self, context) }
                throw DecodingError.typeMismatch(Any.self, context)
            }
        }
        if case .array(let cases)? = rules["enum"], !cases.contains(value) {
            throw .dataCorrupted(.init(codingPath: path, debugDescription: "Cannot initialize from invalid value \(value)"))
        }
        switch value {
        case .number(let number):
            if case .number(let minimum)? = rules["minimum"], number < minimum {
                throw .dataCorrupted(.init(codingPath: path, debugDescription: "Parsed JSON number <\(value)> is below \(JSONValue.number(minimum))."))
            }
            if case .number(let maximum)? = rules["maximum"], number > maximum {
                throw .dataCorrupted(.init(codingPath: path, debugDescription: "Parsed JSON number <\(value)> is above \(JSONValue.number(maximum))."))
            }
        case .array(let items):
            if let itemSchema = rules["items"] {
                for (index, item) in items.enumerated() { try check(item, itemSchema, path: path + [Key(index)]) }
            }
        case .object(let fields):
            let properties: [String: JSONValue]
            if case .object(let declared)? = rules["properties"] { properties = declared } else { properties = [:] }
            if case .array(let required)? = rules["required"] {
                for case .string(let name) in required where fields[name] == nil {
                    throw .keyNotFound(Key(name), .init(codingPath: path, debugDescription: "No value associated with key \"\(name)\"."))
                }
            }
            for name in fields.keys.sorted() {
                guard let field = fields[name] else { continue }
                if let propertySchema = properties[name] {
                    try check(field, propertySchema, path: path + [Key(name)])
                } else if let extra = rules["additionalProperties"] {
                    try check(field, extra, path: path + [Key(name)])
                }
            }
        case .null, .bool, .string:
            break
        }
    }

    private static func allowedTypes(_ type: JSONValue?) -> [String]? {
        switch type {
        case .string(let name)?: [name]
        case .array(let names)?: names.compactMap { if case .string(let name) = $0 { name } else { nil } }
        default: nil
        }
    }

    private static func matches(_ value: JSONValue, _ type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number): true
        case ("integer", .number(let number)): number.rounded() == number
        default: false
        }
    }

    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a bool"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "a dictionary"
        }
    }

    /// A key in a decoding path.
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int?
        init(_ name: String) {
            stringValue = name
            intValue = nil
        }
        init(_ index: Int) {
            stringValue = "Index \(index)"
            intValue = index
        }
        init?(stringValue: String) { self.init(stringValue) }
        init?(intValue: Int) { self.init(intValue) }
    }
}
