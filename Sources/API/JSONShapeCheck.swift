import Hummingbird

/// Why a request body was refused before it was parsed.
public enum JSONShapeViolation: Equatable, Sendable {
    /// The array or object at `pointer` (an RFC 6901 JSON pointer) is nested more than `maxDepth`
    /// levels deep.
    case tooDeep(pointer: String, maxDepth: Int)
    /// An object repeats a key. `pointer` names the second occurrence: `/input/name` when the
    /// object at `/input` has two keys `name`.
    case duplicateKey(pointer: String)
    /// The number at `pointer` is valid JSON but beyond what a 64-bit float holds (such as `1e400`).
    case numberOutOfRange(pointer: String)
    /// The body holds a NUL byte. UTF-8 JSON never does, but UTF-16 and UTF-32 JSON always do, and
    /// JSONSerialization may accept those, in an encoding this byte scanner cannot follow.
    case unsupportedEncoding
}

/// A single pass over a JSON body's bytes, before JSONSerialization sees it, that limits how
/// deeply arrays and objects nest, refuses duplicate keys in one object, and finds numbers beyond a
/// 64-bit float's range (which JSONSerialization would call malformed).
///
/// It does not validate JSON: malformed input returns nil or a violation, never crashes, and
/// JSONSerialization rejects it afterwards. Time is linear in the input, and memory is bounded by
/// the input size (the keys of the open objects) and by `maxDepth` (the open containers).
///
/// ```swift
/// if let violation = JSONShapeCheck.violation(in: bytes, maxDepth: 32) { throw violation.problem }
/// let object = try JSONSerialization.jsonObject(with: bytes)
/// ```
public enum JSONShapeCheck {
    /// Scans a body and returns its first violation, in the order of the bytes, or nil.
    ///
    /// - Parameters:
    ///   - bytes: The body as UTF-8 bytes, such as `Data` or a `ByteBuffer`'s `readableBytesView`.
    ///   - maxDepth: How many arrays and objects may nest: 1 allows `[1, 2]` but not `[[1]]`, and
    ///     0 allows only a bare scalar. The API's default is 32.
    ///
    /// Keys are compared as Swift strings after decoding escapes, so `"a"` and `"\u0061"` are
    /// duplicates, as are canonically equivalent keys (`"é"`, `"e\u0301"`), which collide in a Swift
    /// dictionary. Keys in pointers are cut to 64 characters, as in the API's other field errors.
    public static func violation(in bytes: some Collection<UInt8>, maxDepth: Int) -> JSONShapeViolation? {
        // The closure's own result is optional: the outer optional is nil only without contiguous storage.
        if let result = bytes.withContiguousStorageIfAvailable({ scan($0, maxDepth: maxDepth) }) { return result }
        return Array(bytes).withUnsafeBufferPointer { scan($0, maxDepth: maxDepth) }
    }

    /// An open array or object, and which of its children the scan is in.
    private struct Frame {
        let isObject: Bool
        /// Arrays: the index of the current element.
        var index = 0
        /// Objects: the current key, decoded.
        var key = ""
        /// Objects: the keys seen so far.
        var keys: Set<String> = []
        /// Objects: whether the next string is a key (after `{` or `,`) rather than a value.
        var expectsKey = true
    }

    private static func scan(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) -> JSONShapeViolation? {
        var stack: [Frame] = []
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case .quote:
                let start = i + 1
                var escaped = false
                i = start
                while i < bytes.count, bytes[i] != .quote {
                    if bytes[i] == .backslash {
                        escaped = true
                        i += 1  // Skip the escaped byte, which may be a quote.
                    } else if bytes[i] == 0 {
                        return .unsupportedEncoding
                    }
                    i += 1
                }
                guard i < bytes.count else { return nil }  // An unterminated string.
                if let top = stack.indices.last, stack[top].isObject, stack[top].expectsKey {
                    let raw = UnsafeBufferPointer(rebasing: bytes[start..<i])
                    let key = escaped ? unescape(raw) : String(decoding: raw, as: UTF8.self)
                    stack[top].expectsKey = false
                    stack[top].key = key
                    if !stack[top].keys.insert(key).inserted { return .duplicateKey(pointer: pointer(stack)) }
                }
            case .openBrace, .openBracket:
                if stack.count >= maxDepth { return .tooDeep(pointer: pointer(stack), maxDepth: maxDepth) }
                stack.append(Frame(isObject: bytes[i] == .openBrace))
            case .closeBrace, .closeBracket:
                _ = stack.popLast()  // A mismatched or extra closer is malformed; JSONSerialization says so.
            case .comma:
                if let top = stack.indices.last {
                    stack[top].index += 1
                    stack[top].expectsKey = true
                }
            case .colon:
                if let top = stack.indices.last { stack[top].expectsKey = false }
            case 0:
                return .unsupportedEncoding
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = i
                var exponent = false
                while i + 1 < bytes.count, isNumberByte(bytes[i + 1]) {
                    i += 1
                    if bytes[i] | 0x20 == UInt8(ascii: "e") { exponent = true }
                }
                // Without an exponent, only more than 308 digits overflow a Double.
                if exponent || i - start >= 308,
                    let value = Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start...i]), as: UTF8.self)), !value.isFinite
                {
                    return .numberOutOfRange(pointer: pointer(stack))
                }
            default:
                break
            }
            i += 1
        }
        return nil
    }

    /// A byte that continues a number: a digit, a sign, a point or an exponent's `e`.
    private static func isNumberByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): true
        default: false
        }
    }

    /// The JSON pointer to the current child of the innermost open container, for a violation.
    private static func pointer(_ stack: [Frame]) -> String {
        var pointer = ""
        for frame in stack {
            pointer += "/"
            guard frame.isObject else {
                pointer += String(frame.index)
                continue
            }
            for scalar in frame.key.prefix(64).unicodeScalars {
                switch scalar {
                case "~": pointer += "~0"
                case "/": pointer += "~1"
                default: pointer.unicodeScalars.append(scalar)
                }
            }
        }
        return pointer
    }

    /// Decodes the escapes of a key's bytes (between its quotes). A surrogate pair becomes its
    /// character, a lone surrogate U+FFFD, and a malformed escape its letter: JSONSerialization
    /// rejects the malformed ones afterwards.
    private static func unescape(_ raw: UnsafeBufferPointer<UInt8>) -> String {
        var decoded: [UInt8] = []
        decoded.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            let byte = raw[i]
            i += 1
            guard byte == .backslash, i < raw.count else {
                decoded.append(byte)
                continue
            }
            let escape = raw[i]
            i += 1
            switch escape {
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(0x0A)
            case UInt8(ascii: "r"): decoded.append(0x0D)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"):
                guard let unit = hex4(raw, at: i) else {
                    decoded.append(escape)
                    continue
                }
                i += 4
                var scalar = Unicode.Scalar(unit)  // nil for a surrogate
                if (0xD800..<0xDC00).contains(unit), i + 6 <= raw.count, raw[i] == .backslash, raw[i + 1] == UInt8(ascii: "u"),
                    let low = hex4(raw, at: i + 2), (0xDC00..<0xE000).contains(low)
                {
                    scalar = Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                    i += 6
                }
                let replacement: Unicode.Scalar = "\u{FFFD}"
                decoded.append(contentsOf: (scalar ?? replacement).utf8)
            default:
                decoded.append(escape)  // `"`, `\`, `/`, or a malformed escape.
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    /// The value of the four hex digits at `start`, or nil when there are not four.
    private static func hex4(_ raw: UnsafeBufferPointer<UInt8>, at start: Int) -> UInt32? {
        guard start + 4 <= raw.count else { return nil }
        var value: UInt32 = 0
        for byte in raw[start..<start + 4] {
            let digit: UInt8? = switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
            guard let digit else { return nil }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}

extension JSONShapeViolation {
    /// The answer to a body with this violation: 422 `invalid_request` with a field error at the
    /// pointer, or 400 `malformed_json` for a body that is not UTF-8.
    var problem: Problem {
        switch self {
        case .tooDeep(let pointer, let maxDepth):
            Problem(.unprocessableContent, "invalid_request", "the body nests arrays and objects more than \(maxDepth) deep",
                errors: [.init(pointer: pointer, message: "nested more than \(maxDepth) arrays and objects deep")])
        case .duplicateKey(let pointer):
            // The bad-input table: a duplicate key makes the JSON ambiguous, so it is malformed (400).
            Problem(.badRequest, "duplicate_key", "an object in the body repeats a key",
                errors: [.init(pointer: pointer, message: "duplicate key")])
        case .numberOutOfRange(let pointer):
            Problem(.unprocessableContent, "invalid_request", "a number in the body is out of range",
                errors: [.init(pointer: pointer, message: "number out of range (a 64-bit float holds at most about 1.8e308)")])
        case .unsupportedEncoding:
            Problem(.badRequest, "malformed_json", "the body is not UTF-8 JSON")
        }
    }
}

extension UInt8 {
    fileprivate static let quote = UInt8(ascii: "\"")
    fileprivate static let backslash = UInt8(ascii: "\\")
    fileprivate static let openBrace = UInt8(ascii: "{")
    fileprivate static let closeBrace = UInt8(ascii: "}")
    fileprivate static let openBracket = UInt8(ascii: "[")
    fileprivate static let closeBracket = UInt8(ascii: "]")
    fileprivate static let comma = UInt8(ascii: ",")
    fileprivate static let colon = UInt8(ascii: ":")
}
