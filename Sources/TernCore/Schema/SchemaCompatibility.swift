/// Whether every value one JSON Schema describes fits another: how the HTTP API checks a
/// workflow's links (a step's output must fit the next step's input) without the tasks' code.
///
/// The check is structural, over what ``JSONSchema`` derives: `type` (an `integer` fits a
/// `number`), `enum` and `const`, object `properties` and `required` (a required input member must
/// be a required output member), `additionalProperties: false`, array `items`, and `anyOf`. A
/// consumer schema without constraints (`{}`) accepts anything; a producer without constraints fits
/// only such a consumer.
public enum SchemaCompatibility {
    /// `nil` when every value of `producer` fits `consumer`, else why not, with the JSON pointer of
    /// the first place that does not fit.
    public static func problem(consumer: JSONValue, producer: JSONValue, at pointer: String = "") -> String? {
        guard case .object(let wanted) = consumer, !wanted.isEmpty else { return nil }
        guard case .object(let given) = producer, !given.isEmpty else {
            return "\(where_(pointer))any JSON value may come, but \(summary(wanted)) is expected"
        }
        if case .array(let options)? = wanted["anyOf"] {
            if options.contains(where: { problem(consumer: $0, producer: producer, at: pointer) == nil }) { return nil }
            return "\(where_(pointer))\(summary(given)) fits none of the accepted shapes"
        }
        if case .array(let options)? = given["anyOf"] {
            for option in options {
                if let problem = problem(consumer: consumer, producer: option, at: pointer) { return problem }
            }
            return nil
        }
        let wantedTypes = types(wanted), givenTypes = types(given)
        if let wantedTypes {
            guard let givenTypes else { return "\(where_(pointer))any type may come, but \(summary(wanted)) is expected" }
            for type in givenTypes where !wantedTypes.contains(type) && !(type == "integer" && wantedTypes.contains("number")) {
                return "\(where_(pointer))\(type) may come, but \(summary(wanted)) is expected"
            }
        }
        if let allowed = values(wanted) {
            guard let offered = values(given), offered.allSatisfy(allowed.contains) else {
                return "\(where_(pointer))values outside \(allowed.map(\.description).joined(separator: ", ")) may come"
            }
        }
        if case .object(let wantedProperties)? = wanted["properties"] {
            let givenProperties: [String: JSONValue]
            if case .object(let properties)? = given["properties"] { givenProperties = properties } else { givenProperties = [:] }
            let givenRequired = names(given["required"])
            for name in names(wanted["required"]).sorted() where !givenRequired.contains(name) {
                return "\(where_(pointer + "/" + name))a required member may be missing"
            }
            for (name, schema) in wantedProperties.sorted(by: { $0.key < $1.key }) {
                guard let offered = givenProperties[name] else { continue }
                if let problem = problem(consumer: schema, producer: offered, at: pointer + "/" + name) { return problem }
            }
            if case .bool(false)? = wanted["additionalProperties"] {
                if let extra = givenProperties.keys.sorted().first(where: { wantedProperties[$0] == nil }) {
                    return "\(where_(pointer + "/" + extra))a member the input does not allow may come"
                }
            }
        }
        if let items = wanted["items"] {
            return problem(consumer: items, producer: given["items"] ?? .object([:]), at: pointer + "/0")
        }
        return nil
    }

    private static func where_(_ pointer: String) -> String { pointer.isEmpty ? "" : "at \(pointer): " }

    private static func types(_ schema: [String: JSONValue]) -> Set<String>? {
        switch schema["type"] {
        case .string(let type)?: [type]
        case .array(let items)?: Set(items.compactMap { if case .string(let type) = $0 { type } else { nil } })
        default: nil
        }
    }

    private static func values(_ schema: [String: JSONValue]) -> [JSONValue]? {
        if let value = schema["const"] { return [value] }
        if case .array(let values)? = schema["enum"] { return values }
        return nil
    }

    private static func names(_ value: JSONValue?) -> Set<String> {
        guard case .array(let items)? = value else { return [] }
        return Set(items.compactMap { if case .string(let name) = $0 { name } else { nil } })
    }

    private static func summary(_ schema: [String: JSONValue]) -> String {
        if let types = types(schema) { return types.sorted().joined(separator: " or ") }
        return "a constrained value"
    }
}
