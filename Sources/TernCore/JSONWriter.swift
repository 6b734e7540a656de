import Foundation

/// Writes the object trees the API's routes and the JSON log lines build (`[String: Any]`, `[Any]`, `String`, Swift
/// numbers and Booleans, `NSNull`, and the `NSNumber`s of parsed stored JSON) as compact JSON,
/// object keys sorted by code point. It replaces `JSONSerialization.data(withJSONObject:)`, which
/// spent two thirds of a batch enqueue's CPU bridging to `NSDictionary` and comparing keys with a
/// locale (BENCHMARKS.md, issue 16).
public enum JSONWriter {
    /// The error for a value JSON cannot hold: another type, or a number that is not finite.
    public struct Unwritable: Error, CustomStringConvertible {
        public let description: String
    }

    /// `value` as JSON bytes.
    public static func bytes(_ value: Any) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        try write(value, into: &out)
        return out
    }

    public static func write(_ value: Any, into out: inout [UInt8]) throws {
        switch value {
        case let text as String:
            string(text, into: &out)
        case let fields as [String: Any]:
            out.append(UInt8(ascii: "{"))
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                string(key, into: &out)
                out.append(UInt8(ascii: ":"))
                try write(fields[key]!, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case let items as [Any]:
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                try write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case is NSNull:
            out.append(contentsOf: "null".utf8)
        case let number as NSNumber where type(of: value) is NSNumber.Type:
            // Parsed stored JSON: Booleans are the numbers of type `c`.
            if String(cString: number.objCType) == "c" {
                out.append(contentsOf: (number.boolValue ? "true" : "false").utf8)
            } else {
                try double(number.doubleValue, into: &out)
            }
        case let flag as Bool:
            out.append(contentsOf: (flag ? "true" : "false").utf8)
        case let integer as Int:
            out.append(contentsOf: String(integer).utf8)
        case let integer as Int64:
            out.append(contentsOf: String(integer).utf8)
        case let integer as Int32:
            out.append(contentsOf: String(integer).utf8)
        case let integer as UInt64:
            out.append(contentsOf: String(integer).utf8)
        case let number as Double:
            try double(number, into: &out)
        case let optional as any OptionalValue:
            guard let wrapped = optional.wrapped else {
                out.append(contentsOf: "null".utf8)
                return
            }
            try write(wrapped, into: &out)
        default:
            throw Unwritable(description: "cannot write a \(type(of: value)) as JSON")
        }
    }

    /// A whole number within ±2^53 as an integer, any other finite number in Swift's shortest form.
    private static func double(_ number: Double, into out: inout [UInt8]) throws {
        guard number.isFinite else { throw Unwritable(description: "cannot write \(number) as JSON") }
        if number.rounded() == number, abs(number) <= 9_007_199_254_740_992 {
            out.append(contentsOf: String(Int64(number)).utf8)
        } else {
            out.append(contentsOf: String(number).utf8)
        }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// A JSON string: `"` and `\` escaped, control characters as `\n`, `\t`, ... or `\u00XX`;
    /// everything else, `/` and non-ASCII included, as its UTF-8 bytes.
    public static func string(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// An `Optional` seen through `Any` (a cast to `Optional<Any>` would wrap any value instead).
private protocol OptionalValue {
    var wrapped: Any? { get }
}

extension Optional: OptionalValue {
    fileprivate var wrapped: Any? { self.map { $0 as Any } }
}
