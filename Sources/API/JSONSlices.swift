import Foundation

/// Finds where values sit in a JSON text already known to be valid (``JSONSerialization`` parsed
/// it), so that a job's input is stored exactly as the client sent it, without serialising it again.
enum JSONSlices {
    /// The byte ranges of the members of the object at `range`, by key; `nil` if it is not an object.
    static func members(_ bytes: [UInt8], in range: Range<Int>) -> [String: Range<Int>]? {
        var index = skipSpace(bytes, range.lowerBound, range.upperBound)
        guard index < range.upperBound, bytes[index] == UInt8(ascii: "{") else { return nil }
        var members: [String: Range<Int>] = [:]
        index = skipSpace(bytes, index + 1, range.upperBound)
        while index < range.upperBound, bytes[index] == UInt8(ascii: "\"") {
            let keyEnd = skipString(bytes, index, range.upperBound)
            let key = decodeKey(bytes, index..<keyEnd)
            index = skipSpace(bytes, keyEnd, range.upperBound)
            index = skipSpace(bytes, index + 1, range.upperBound)  // the colon
            let valueEnd = skipValue(bytes, index, range.upperBound)
            members[key] = index..<valueEnd  // the last of duplicate keys, as JSONSerialization keeps
            index = skipSpace(bytes, valueEnd, range.upperBound)
            if index < range.upperBound, bytes[index] == UInt8(ascii: ",") { index = skipSpace(bytes, index + 1, range.upperBound) }
        }
        return members
    }

    /// The byte ranges of the elements of the array at `range`; `nil` if it is not an array.
    static func elements(_ bytes: [UInt8], in range: Range<Int>) -> [Range<Int>]? {
        var index = skipSpace(bytes, range.lowerBound, range.upperBound)
        guard index < range.upperBound, bytes[index] == UInt8(ascii: "[") else { return nil }
        var elements: [Range<Int>] = []
        index = skipSpace(bytes, index + 1, range.upperBound)
        while index < range.upperBound, bytes[index] != UInt8(ascii: "]") {
            let end = skipValue(bytes, index, range.upperBound)
            elements.append(index..<end)
            index = skipSpace(bytes, end, range.upperBound)
            if index < range.upperBound, bytes[index] == UInt8(ascii: ",") { index = skipSpace(bytes, index + 1, range.upperBound) }
        }
        return elements
    }

    private static func skipSpace(_ bytes: [UInt8], _ start: Int, _ end: Int) -> Int {
        var index = start
        while index < end, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        return index
    }

    /// The index after the string starting at `start` (its opening quote).
    private static func skipString(_ bytes: [UInt8], _ start: Int, _ end: Int) -> Int {
        var index = start + 1
        while index < end {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        return end
    }

    /// The index after the value starting at `start`.
    private static func skipValue(_ bytes: [UInt8], _ start: Int, _ end: Int) -> Int {
        guard start < end else { return end }
        switch bytes[start] {
        case UInt8(ascii: "\""):
            return skipString(bytes, start, end)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var index = start
            while index < end {
                switch bytes[index] {
                case UInt8(ascii: "\""): index = skipString(bytes, index, end); continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return index + 1 }
                default: break
                }
                index += 1
            }
            return end
        default:  // number, true, false, null
            var index = start
            while index < end, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) {
                index += 1
            }
            return index
        }
    }

    /// A key's text: its bytes when it has no escapes, else decoded as a JSON string.
    private static func decodeKey(_ bytes: [UInt8], _ range: Range<Int>) -> String {
        let inner = bytes[(range.lowerBound + 1)..<max(range.lowerBound + 1, range.upperBound - 1)]
        guard inner.contains(UInt8(ascii: "\\")) else { return String(decoding: inner, as: UTF8.self) }
        return (try? JSONDecoder().decode(String.self, from: Data(bytes[range]))) ?? ""
    }
}
