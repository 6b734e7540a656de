import Foundation

/// What one `init(from:)` asked its decoder for, turned into a schema afterwards.
final class SchemaRecorder {
    enum Shape { case unknown, keyed, unkeyed, single }
    enum Property { case schema(JSONValue), nested(SchemaRecorder) }

    var shape = Shape.unknown
    var properties: [String: Property] = [:]
    var required: Set<String> = []
    var single: JSONValue?
    var nestedItems: SchemaRecorder?
    var nullable = false
    /// Keys asked about with `contains(_:)`, then `decodeNil(forKey:)`: optional and nullable.
    var optionalKeys: Set<String> = []
    /// Keys asked about with `contains(_:)`.
    var checkedKeys: Set<String> = []

    var schema: JSONValue {
        switch shape {
        case .unknown: return .object([:])
        case .single:
            let schema = single ?? .object([:])
            return nullable ? JSONSchema.nullable(schema) : schema
        case .unkeyed:
            return .object(["type": .string("array"), "items": nestedItems?.schema ?? single ?? .object([:])])
        case .keyed:
            var fields: [String: JSONValue] = [
                "type": .string("object"),
                "properties": .object(properties.mapValues {
                    switch $0 {
                    case .schema(let schema): schema
                    case .nested(let recorder): recorder.schema
                    }
                }),
            ]
            if !required.isEmpty { fields["required"] = .array(required.sorted().map(JSONValue.string)) }
            return .object(fields)
        }
    }
}

/// A `Decoder` that answers every request with a placeholder value and records what was asked.
final class SchemaDecoder: Decoder {
    let walker: SchemaWalker
    let codingPath: [any CodingKey]
    let recorded: SchemaRecorder
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(walker: SchemaWalker, codingPath: [any CodingKey], recorder: SchemaRecorder = SchemaRecorder()) {
        self.walker = walker
        self.codingPath = codingPath
        self.recorded = recorder
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        recorded.shape = .keyed
        return KeyedDecodingContainer(SchemaKeyedContainer<Key>(decoder: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        recorded.shape = .unkeyed
        return SchemaUnkeyedContainer(decoder: self)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        recorded.shape = .single
        return SchemaSingleValueContainer(decoder: self)
    }

    /// Describes `type` and returns its placeholder, or throws if none could be made.
    func sample<T: Decodable>(_ type: T.Type, record: (JSONValue) -> Void) throws -> T {
        let (schema, sample) = walker.describe(type)
        record(schema)
        guard let sample else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "no placeholder for \(type)"))
        }
        return sample
    }
}

struct SchemaKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: SchemaDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { [] }
    private var recorded: SchemaRecorder { decoder.recorded }

    init(decoder: SchemaDecoder) { self.decoder = decoder }

    func contains(_ key: Key) -> Bool {
        recorded.checkedKeys.insert(key.stringValue)
        return true
    }

    /// After `contains` (as `decodeIfPresent` of a scalar asks) the key is optional and nullable;
    /// alone, the key may be `null` but must be there.
    func decodeNil(forKey key: Key) throws -> Bool {
        if recorded.checkedKeys.contains(key.stringValue) {
            recorded.required.remove(key.stringValue)
            recorded.optionalKeys.insert(key.stringValue)
        }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let name = key.stringValue
        let optional = recorded.optionalKeys.contains(name)
        return try decoder.sample(type) { schema in
            recorded.properties[name] = .schema(optional ? JSONSchema.nullable(schema) : schema)
            if !optional { recorded.required.insert(name) }
        }
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        recorded.properties[key.stringValue] = .schema(JSONSchema.nullable(decoder.walker.describe(type).schema))
        return nil
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(Wrapped(type), key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decode(Wrapped(type), key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decode(Wrapped(type), key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decode(Wrapped(type), key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decode(Wrapped(type), key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decode(Wrapped(type), key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decode(Wrapped(type), key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decode(Wrapped(type), key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decode(Wrapped(type), key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decode(Wrapped(type), key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decode(Wrapped(type), key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decode(Wrapped(type), key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decode(Wrapped(type), key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decode(Wrapped(type), key) }

    private func decode<T: Decodable>(_ wrapped: Wrapped<T>, _ key: Key) throws -> T { try decode(T.self, forKey: key) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try nestedDecoder(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try nestedDecoder(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { nestedDecoder(SchemaKey("super")) }
    func superDecoder(forKey key: Key) throws -> any Decoder { nestedDecoder(key) }

    private func nestedDecoder(_ key: any CodingKey) -> SchemaDecoder {
        let child = SchemaRecorder()
        recorded.properties[key.stringValue] = .nested(child)
        recorded.required.insert(key.stringValue)
        return SchemaDecoder(walker: decoder.walker, codingPath: codingPath + [key], recorder: child)
    }
}

/// A type, passed to pick the generic overload from a concrete one.
private struct Wrapped<T> {
    init(_ type: T.Type) {}
}

struct SchemaUnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: SchemaDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { nil }
    /// One element is enough to learn the element type.
    var isAtEnd: Bool { currentIndex > 0 }
    private(set) var currentIndex = 0

    init(decoder: SchemaDecoder) { self.decoder = decoder }

    mutating func decodeNil() throws -> Bool { false }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let first = currentIndex == 0
        currentIndex += 1
        return try decoder.sample(type) { schema in if first { decoder.recorded.single = schema } }
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try decode(Wrapped(type)) }
    mutating func decode(_ type: String.Type) throws -> String { try decode(Wrapped(type)) }
    mutating func decode(_ type: Double.Type) throws -> Double { try decode(Wrapped(type)) }
    mutating func decode(_ type: Float.Type) throws -> Float { try decode(Wrapped(type)) }
    mutating func decode(_ type: Int.Type) throws -> Int { try decode(Wrapped(type)) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try decode(Wrapped(type)) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try decode(Wrapped(type)) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try decode(Wrapped(type)) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try decode(Wrapped(type)) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try decode(Wrapped(type)) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try decode(Wrapped(type)) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try decode(Wrapped(type)) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try decode(Wrapped(type)) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try decode(Wrapped(type)) }

    private mutating func decode<T: Decodable>(_ wrapped: Wrapped<T>) throws -> T { try decode(T.self) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try element().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try element().unkeyedContainer() }
    mutating func superDecoder() throws -> any Decoder { element() }

    private mutating func element() -> SchemaDecoder {
        let child = SchemaRecorder()
        let decoder = SchemaDecoder(walker: decoder.walker, codingPath: codingPath + [SchemaKey(index: currentIndex)], recorder: child)
        currentIndex += 1
        self.decoder.recorded.nestedItems = child
        return decoder
    }
}

struct SchemaSingleValueContainer: SingleValueDecodingContainer {
    let decoder: SchemaDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    /// Asked by a type that accepts `null`.
    func decodeNil() -> Bool {
        decoder.recorded.nullable = true
        return false
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try decoder.sample(type) { decoder.recorded.single = $0 }
    }

    func decode(_ type: Bool.Type) throws -> Bool { try decode(Wrapped(type)) }
    func decode(_ type: String.Type) throws -> String { try decode(Wrapped(type)) }
    func decode(_ type: Double.Type) throws -> Double { try decode(Wrapped(type)) }
    func decode(_ type: Float.Type) throws -> Float { try decode(Wrapped(type)) }
    func decode(_ type: Int.Type) throws -> Int { try decode(Wrapped(type)) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decode(Wrapped(type)) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decode(Wrapped(type)) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decode(Wrapped(type)) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decode(Wrapped(type)) }
    func decode(_ type: UInt.Type) throws -> UInt { try decode(Wrapped(type)) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decode(Wrapped(type)) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decode(Wrapped(type)) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decode(Wrapped(type)) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decode(Wrapped(type)) }

    private func decode<T: Decodable>(_ wrapped: Wrapped<T>) throws -> T { try decode(T.self) }
}

/// A coding key for paths the walker makes up.
struct SchemaKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init(index: Int) { stringValue = String(index); intValue = index }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.init(index: intValue) }
}
