@testable import API
import Foundation
import HTTPTypes
import Testing

/// Runs the check on `text` as `[UInt8]`, as `Data`, and as a collection without contiguous
/// storage, and expects all three to agree.
private func check(_ text: String, maxDepth: Int = 32) -> JSONShapeViolation? {
    check(Array(text.utf8), maxDepth: maxDepth)
}

private func check(_ bytes: [UInt8], maxDepth: Int = 32) -> JSONShapeViolation? {
    let result = JSONShapeCheck.violation(in: bytes, maxDepth: maxDepth)
    #expect(JSONShapeCheck.violation(in: Data(bytes), maxDepth: maxDepth) == result)
    #expect(JSONShapeCheck.violation(in: bytes.lazy.map { $0 }, maxDepth: maxDepth) == result)
    return result
}

private func nested(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
}

@Suite("JSON shape check")
struct JSONShapeCheckTests {
    @Test("well-formed bodies pass", arguments: [
        "{}", "[]", "1", #""text""#, "null", " \n\t ",
        #"{"task":"echo","input":{"n":1,"items":[1,"two",{"n":3}]},"priority":7}"#,
        #"{"a":{"a":{"a":1}},"b":{"a":2}}"#,
        #"[{"a":1},{"a":2},{"a":3}]"#,
        #"{"a":"a","b":"a","c":["a","a"]}"#,
        #"{"a":1,"A":2,"a ":3,"":4}"#,
        #"{"\\u0061":1,"a":2}"#,
        #"{"a\\":1,"a":2}"#,
        #"{"é":1,"e":2}"#,
    ])
    func passes(_ text: String) {
        #expect(check(text) == nil)
    }

    @Test("an empty body passes: the empty_body check answers it")
    func empty() {
        #expect(check([]) == nil)
    }

    @Test("nesting exactly at the limit passes; one more level is refused at the container's pointer")
    func depthLimit() {
        #expect(check(nested(32)) == nil)
        let pointer = String(repeating: "/0", count: 32)
        #expect(check(nested(33)) == .tooDeep(pointer: pointer, maxDepth: 32))
        #expect(check(#"{"a":{"b":[1]}}"#, maxDepth: 3) == nil)
        #expect(check(#"{"input":{"items":[1,2,3,[]]}}"#, maxDepth: 3) == .tooDeep(pointer: "/input/items/3", maxDepth: 3))
        #expect(check(#"{"input":{"x":{}}}"#, maxDepth: 2) == .tooDeep(pointer: "/input/x", maxDepth: 2))
        #expect(check("[[],[],[[]]]", maxDepth: 2) == .tooDeep(pointer: "/2/0", maxDepth: 2))
        #expect(check("{}", maxDepth: 0) == .tooDeep(pointer: "", maxDepth: 0))
        #expect(check("7", maxDepth: 0) == nil)
        #expect(check(nested(10_000)) == .tooDeep(pointer: pointer, maxDepth: 32))
    }

    @Test("a key repeated in one object is refused at its pointer, at the top level or nested in arrays")
    func duplicates() {
        #expect(check(#"{"a":1,"b":2,"a":3}"#) == .duplicateKey(pointer: "/a"))
        #expect(check(#"{"input":{"name":"x","name":"y"}}"#) == .duplicateKey(pointer: "/input/name"))
        #expect(check(#"{"jobs":[{"task":"x"},{"task":"y","input":1,"task":"z"}]}"#) == .duplicateKey(pointer: "/jobs/1/task"))
        #expect(check(#"[[1,[{"k":{},"k":[]}]]]"#) == .duplicateKey(pointer: "/0/1/0/k"))
        #expect(check(#"{"":1,"":2}"#) == .duplicateKey(pointer: "/"))
    }

    @Test("keys are compared after their escapes are decoded")
    func escapedDuplicates() {
        #expect(check(#"{"a":1,"\u0061":2}"#) == .duplicateKey(pointer: "/a"))
        #expect(check(#"{"\u00E9":1,"é":2}"#) == .duplicateKey(pointer: "/é"))
        #expect(check(#"{"\n":1,"\u000a":2}"#) == .duplicateKey(pointer: "/\n"))
        #expect(check(#"{"/":1,"\/":2}"#) == .duplicateKey(pointer: "/~1"))
        #expect(check(#"{"😀":1,"\ud83d\ude00":2}"#) == .duplicateKey(pointer: "/😀"))
        #expect(check(#"{"\t\b\f\r":1,"\u0009\u0008\u000C\u000D":2}"#) == .duplicateKey(pointer: "/\t\u{8}\u{C}\r"))
        // Canonically equivalent keys collide in a Swift dictionary, so they are duplicates too.
        #expect(check(#"{"\u00e9":1,"e\u0301":2}"#) == .duplicateKey(pointer: "/e\u{301}"))
    }

    @Test("braces, brackets, quotes, commas and colons inside strings are not structure")
    func structureInStrings() {
        #expect(check(#"{"k":"[[[{{{"}"#, maxDepth: 1) == nil)
        #expect(check(#"["]]]]}}}}"]"#, maxDepth: 1) == nil)
        #expect(check(#"[["]]]]"],[[]]]"#, maxDepth: 2) == .tooDeep(pointer: "/1/0", maxDepth: 2))
        #expect(check(#"{"a":"x,\"a\":1","b":"y:z"}"#) == nil)
        #expect(check(#"{"a":"\\","a":1}"#) == .duplicateKey(pointer: "/a"))
        #expect(check(#"{"a":"\\\"{[","b":[1]}"#, maxDepth: 2) == nil)
    }

    @Test("escaped quotes and backslashes inside keys")
    func escapedQuotesInKeys() {
        #expect(check(#"{"a\"b":1,"a\"b":2}"#) == .duplicateKey(pointer: "/a\"b"))
        #expect(check(#"{"a\"b":1,"a":2,"b":3}"#) == nil)
        #expect(check(#"{"\\":{"x":1,"x":2}}"#) == .duplicateKey(pointer: "/\\/x"))
        #expect(check(#"{"\"":{"\"{":[]}}"#, maxDepth: 2) == .tooDeep(pointer: "/\"/\"{", maxDepth: 2))
    }

    @Test("~ and / in keys are escaped in pointers as ~0 and ~1")
    func pointerEscapes() {
        #expect(check(#"{"a/b":{"c~d":{"~1":1,"~1":2}}}"#) == .duplicateKey(pointer: "/a~1b/c~0d/~01"))
        #expect(check(#"{"a/b":{"c~d":[]}}"#, maxDepth: 2) == .tooDeep(pointer: "/a~1b/c~0d", maxDepth: 2))
    }

    @Test("long keys are cut to 64 characters in pointers")
    func longKeys() {
        let key = String(repeating: "k", count: 10_000)
        #expect(check(#"{"\#(key)":1,"\#(key)":2}"#) == .duplicateKey(pointer: "/" + String(repeating: "k", count: 64)))
    }

    @Test("UTF-16 and UTF-32 bodies, and NUL bytes, are refused")
    func encodings() throws {
        let text = #"{"a":1,"a":2}"#
        for encoding: String.Encoding in [.utf16LittleEndian, .utf16BigEndian, .utf16, .utf32LittleEndian, .utf32BigEndian] {
            let data = try #require(text.data(using: encoding))
            #expect(check([UInt8](data)) == .unsupportedEncoding)
        }
        #expect(check(Array(#"{"a":"x"#.utf8) + [0] + Array(#""}"#.utf8)) == .unsupportedEncoding)
        #expect(check([0]) == .unsupportedEncoding)
    }

    @Test("malformed and truncated bodies return without crashing", arguments: [
        "{", "[", "\"", "\\", "\"abc", #"{"a"#, #"{"a\"#, #""\"#, #"{"a\u"#, #"{"a\u00"#, #"{"\ud83d"#,
        "]]]}}}", "}{", "[}", "{]", ":::,,,", #"{"a" "a"}"#, #"{"a":1,"a""#, #"{"a":[1,2"#,
        #"{"\u12":1,"\u12":2}"#, #"{"\uZZZZ":1}"#, #"{"\ud800":1,"\udc00":2}"#, #"{"\ud800\u":1}"#,
        #"{"\ud800\udbff":1}"#, #"{"\q\":1}"#, #"{,"a":1}"#, #"{{"a":1}}"#, "[,,[,]", "tru", "-",
    ])
    func malformed(_ text: String) {
        _ = check(text)
        _ = check(text, maxDepth: 1)
        _ = check(text, maxDepth: 0)
    }

    @Test("every prefix of a body, and invalid UTF-8, return without crashing")
    func truncations() {
        let text = #"{"task":"echo","input":{"a\"b":[1,{"\u00e9\ud83d\ude00":"x\\"}],"c~d/e":"]}"},"p":7}"#
        let bytes = Array(text.utf8)
        #expect(check(bytes) == nil)
        for end in 0...bytes.count {
            _ = check(Array(bytes[..<end]))
            _ = check(Array(bytes[..<end]), maxDepth: 2)
        }
        #expect(check([0x7B, 0x22, 0xFF, 0xC3, 0x22, 0x3A, 0x31, 0x7D]) == nil)
        _ = check((0..<256).map { UInt8($0) }.filter { $0 != 0 })
    }

    @Test("random bytes from the structural alphabet return without crashing")
    func randomInput() {
        let alphabet = Array(#"{}[]",:\ua0Fd1 "#.utf8)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2_000 {
            var bytes: [UInt8] = []
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            for _ in 0..<Int(state >> 58) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes.append(alphabet[Int(state >> 33) % alphabet.count])
            }
            _ = check(bytes, maxDepth: 3)
        }
    }

    @Test("a number beyond a 64-bit float is found at its pointer; numbers in range, and numbers in strings, are not")
    func numbersOutOfRange() {
        #expect(check(#"{"a":[1,1e400]}"#) == .numberOutOfRange(pointer: "/a/1"))
        #expect(check(#"{"input":{"ms":-2.5E+309},"x":1}"#) == .numberOutOfRange(pointer: "/input/ms"))
        #expect(check("1e999") == .numberOutOfRange(pointer: ""))
        #expect(check("[" + String(repeating: "9", count: 310) + "]") == .numberOutOfRange(pointer: "/0"))
        for fine in [#"{"a":1e308,"b":-1.7976931348623157e308,"c":1e-400,"d":12345678901234567890}"#, #"{"a":"1e400"}"#, "[0,-0.5,3e2]"] {
            #expect(check(fine) == nil, "\(fine)")
        }
        let problem = JSONShapeViolation.numberOutOfRange(pointer: "/a/1").problem
        #expect(problem.status == .unprocessableContent && problem.code == "invalid_request")
        #expect(problem.errors.map(\.pointer) == ["/a/1"])
    }

    @Test("too deep answers 422 invalid_request at its pointer; a duplicate key 400 duplicate_key; not UTF-8, 400 malformed_json")
    func problems() {
        let deep = JSONShapeViolation.tooDeep(pointer: "/input/x", maxDepth: 2).problem
        #expect(deep.status == .unprocessableContent)
        #expect(deep.code == "invalid_request")
        #expect(deep.errors.map(\.pointer) == ["/input/x"])
        let duplicate = JSONShapeViolation.duplicateKey(pointer: "/a").problem
        #expect(duplicate.status == .badRequest)
        #expect(duplicate.code == "duplicate_key")
        #expect(duplicate.errors == [.init(pointer: "/a", message: "duplicate key")])
        let encoding = JSONShapeViolation.unsupportedEncoding.problem
        #expect(encoding.status == .badRequest)
        #expect(encoding.code == "malformed_json")
    }

    @Test("large flat bodies are scanned in one linear pass")
    func large() {
        let count = 100_000
        let array = "[" + Array(repeating: "0", count: count).joined(separator: ",") + "]"
        let started = ContinuousClock.now
        #expect(check(array, maxDepth: 1) == nil)
        #expect(check(String(array.dropLast()) + ",[]]", maxDepth: 1) == .tooDeep(pointer: "/\(count)", maxDepth: 1))
        let members = (0..<count).map { #""k\#($0)":\#($0)"# }
        #expect(check("{" + members.joined(separator: ",") + "}") == nil)
        #expect(check("{" + members.joined(separator: ",") + #","k0":0}"#) == .duplicateKey(pointer: "/k0"))
        // A quadratic scan would take minutes here, even in a release build.
        #expect(ContinuousClock.now - started < .seconds(20))
    }
}
