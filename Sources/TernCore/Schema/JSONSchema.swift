import Foundation

/// Derives a JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1) from a `Decodable` type, by
/// running the type's own `init(from:)` against a recording decoder.
///
/// What a type's decoding asks for is what its schema says: `decode` marks a property required,
/// `decodeIfPresent` optional and nullable; arrays, sets, string- and integer-keyed dictionaries,
/// optionals, `CaseIterable` raw-value enums and the Foundation types the JSON coders treat
/// specially (`Date` as seconds since 2001, `Data` as base64, `URL`, `UUID`, `Decimal`) get their
/// exact shape. A type whose `init(from:)` rejects the placeholder values (`0`, `""`, `false`) or
/// decodes a shape that depends on the data (enums with associated values), and a recursive
/// reference to a type being described, are described as any JSON value (`{}`); the task still
/// validates its input by decoding it. Such a type held in a required property makes the type
/// holding it `{}` as well (its decoding cannot go on without a value); in an optional property,
/// only that property is `{}`.
///
/// ```swift
/// struct Input: Codable { var url: String; var width: Int?; var tags: [String] }
/// JSONSchema.of(Input.self)
/// // {"type":"object","title":"Input","properties":{"url":{"type":"string"},
/// //  "width":{"type":["integer","null"]},"tags":{"type":"array","items":{"type":"string"}}},
/// //  "required":["url","tags"]}
/// ```
public enum JSONSchema {
    /// The schema of `type`.
    public static func of<T: Decodable>(_ type: T.Type) -> JSONValue {
        SchemaWalker().describe(type).schema
    }

    /// `schema`, also accepting `null`.
    static func nullable(_ schema: JSONValue) -> JSONValue {
        guard case .object(var fields) = schema else { return schema }
        if fields.isEmpty { return schema }
        if case .string(let type)? = fields["type"] {
            fields["type"] = .array([.string(type), .string("null")])
            if case .array(let cases)? = fields["enum"] { fields["enum"] = .array(cases + [.null]) }
            return .object(fields)
        }
        return .object(["anyOf": .array([schema, .object(["type": .string("null")])])])
    }
}

/// Walks types, remembering which are being described so recursive types end.
final class SchemaWalker {
    private var inProgress: Set<ObjectIdentifier> = []

    /// The schema of `type` and a placeholder value of it, if one could be made.
    func describe<T: Decodable>(_ type: T.Type) -> (schema: JSONValue, sample: T?) {
        if let known = KnownSchemas.schema(of: type) { return known }
        if let marker = type as? any SchemaContainerType.Type {
            return (marker.schema(walker: self), marker.emptySample as? T)
        }
        if let enumeration = type as? any (CaseIterable & RawRepresentable).Type,
            let described = EnumerationSchema.describe(enumeration)
        {
            return (described.schema, described.sample as? T)
        }
        let id = ObjectIdentifier(type)
        guard !inProgress.contains(id) else { return (.object([:]), nil) }
        inProgress.insert(id)
        defer { inProgress.remove(id) }
        let decoder = SchemaDecoder(walker: self, codingPath: [])
        do {
            let sample = try T(from: decoder)
            var schema = decoder.recorded.schema
            if case .object(var fields) = schema, fields["properties"] != nil {
                fields["title"] = .string(String(describing: type))
                schema = .object(fields)
            }
            return (schema, sample)
        } catch {
            return (.object([:]), nil)
        }
    }
}

/// Schemas of the types the JSON coders encode specially, or that are plain JSON scalars.
enum KnownSchemas {
    static func schema<T>(of type: T.Type) -> (schema: JSONValue, sample: T?)? {
        func make(_ fields: [String: JSONValue], _ sample: Any) -> (JSONValue, T?) { (.object(fields), sample as? T) }
        func integer(_ minimum: Double?, _ maximum: Double?, _ sample: Any, format: String? = nil) -> (JSONValue, T?) {
            var fields: [String: JSONValue] = ["type": .string("integer")]
            if let minimum { fields["minimum"] = .number(minimum) }
            if let maximum { fields["maximum"] = .number(maximum) }
            if let format { fields["format"] = .string(format) }
            return make(fields, sample)
        }
        switch type {
        case is String.Type: return make(["type": .string("string")], "")
        case is Bool.Type: return make(["type": .string("boolean")], false)
        case is Double.Type: return make(["type": .string("number"), "format": .string("double")], 0.0)
        case is Float.Type: return make(["type": .string("number"), "format": .string("float")], Float(0))
        case is Decimal.Type: return make(["type": .string("number")], Decimal(0))
        case is Int.Type: return integer(nil, nil, 0, format: "int64")
        case is Int64.Type: return integer(nil, nil, Int64(0), format: "int64")
        case is Int32.Type: return integer(Double(Int32.min), Double(Int32.max), Int32(0), format: "int32")
        case is Int16.Type: return integer(Double(Int16.min), Double(Int16.max), Int16(0))
        case is Int8.Type: return integer(Double(Int8.min), Double(Int8.max), Int8(0))
        case is UInt.Type: return integer(0, nil, UInt(0))
        case is UInt64.Type: return integer(0, nil, UInt64(0))
        case is UInt32.Type: return integer(0, Double(UInt32.max), UInt32(0))
        case is UInt16.Type: return integer(0, Double(UInt16.max), UInt16(0))
        case is UInt8.Type: return integer(0, Double(UInt8.max), UInt8(0))
        case is Date.Type:
            return make(["type": .string("number"), "description": .string("seconds since 2001-01-01T00:00:00Z")], Date(timeIntervalSinceReferenceDate: 0))
        case is Data.Type: return make(["type": .string("string"), "contentEncoding": .string("base64")], Data())
        case is URL.Type: return make(["type": .string("string"), "format": .string("uri")], URL(string: "about:blank")!)
        case is UUID.Type: return make(["type": .string("string"), "format": .string("uuid")], UUID())
        case is JSONValue.Type: return make([:], JSONValue.null)
        default: return nil
        }
    }
}

/// Optionals, arrays, sets and dictionaries: containers whose shape the walker knows.
protocol SchemaContainerType {
    static func schema(walker: SchemaWalker) -> JSONValue
    static var emptySample: Self { get }
}

extension Optional: SchemaContainerType where Wrapped: Decodable {
    static func schema(walker: SchemaWalker) -> JSONValue { JSONSchema.nullable(walker.describe(Wrapped.self).schema) }
    static var emptySample: Self { nil }
}

extension Array: SchemaContainerType where Element: Decodable {
    static func schema(walker: SchemaWalker) -> JSONValue {
        .object(["type": .string("array"), "items": walker.describe(Element.self).schema])
    }
    static var emptySample: Self { [] }
}

extension Set: SchemaContainerType where Element: Decodable {
    static func schema(walker: SchemaWalker) -> JSONValue {
        .object(["type": .string("array"), "items": walker.describe(Element.self).schema, "uniqueItems": .bool(true)])
    }
    static var emptySample: Self { [] }
}

extension Dictionary: SchemaContainerType where Key: SchemaDictionaryKey, Value: Decodable {
    static func schema(walker: SchemaWalker) -> JSONValue {
        var fields: [String: JSONValue] = ["type": .string("object"), "additionalProperties": walker.describe(Value.self).schema]
        if let pattern = Key.keyPattern { fields["propertyNames"] = .object(["pattern": .string(pattern)]) }
        return .object(fields)
    }
    static var emptySample: Self { [:] }
}

/// Dictionary keys the JSON coders write as object keys.
protocol SchemaDictionaryKey: Hashable { static var keyPattern: String? { get } }
extension String: SchemaDictionaryKey { static var keyPattern: String? { nil } }
extension Int: SchemaDictionaryKey { static var keyPattern: String? { "^-?[0-9]+$" } }

/// Enums whose JSON is one of their `String` or `Int` raw values, given as `CaseIterable`.
enum EnumerationSchema {
    static func describe<E: CaseIterable & RawRepresentable>(_ type: E.Type) -> (schema: JSONValue, sample: E?)? {
        let cases = type.allCases.map(\.rawValue)
        if let strings = cases as? [String] {
            return (.object(["type": .string("string"), "enum": .array(strings.map(JSONValue.string))]), type.allCases.first)
        }
        if let integers = cases as? [Int] {
            return (.object(["type": .string("integer"), "enum": .array(integers.map { .number(Double($0)) })]), type.allCases.first)
        }
        return nil
    }
}
