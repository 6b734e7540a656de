import Foundation
import TernCore
import Testing

@Suite("JSON writer")
struct JSONWriterTests {
    func text(_ value: Any) throws -> String { String(decoding: try JSONWriter.bytes(value), as: UTF8.self) }

    @Test("objects with sorted keys, arrays, strings, Swift numbers and Booleans, null")
    func shapes() throws {
        let object: [String: Any] = [
            "b": [1, 2.5, true, NSNull()] as [Any], "a": "x", "c": ["z": Int64(-7), "y": [String]()] as [String: Any],
            "d": 3.0, "e": Optional<String>.none as Any, "f": Optional<Int>.some(4) as Any,
        ]
        #expect(try text(object) == #"{"a":"x","b":[1,2.5,true,null],"c":{"y":[],"z":-7},"d":3,"e":null,"f":4}"#)
    }

    @Test("strings: quotes, backslashes and control characters escaped; slashes and non-ASCII as they are")
    func strings() throws {
        #expect(try text("a\"b\\c/d\n\r\t\u{01}\u{1f}é😀") == #""a\"b\\c/d\n\r\t\u0001\u001fé😀""#)
        #expect(try text("<script>") == #""<script>""#)
    }

    @Test("parsed stored JSON is written back with its Booleans and numbers intact")
    func foundationValues() throws {
        let parsed = try JSONSerialization.jsonObject(with: Data(#"{"t":true,"f":false,"n":12,"x":0.1,"big":1e300,"s":"q"}"#.utf8))
        let again = try JSONSerialization.jsonObject(with: Data(try JSONWriter.bytes(parsed))) as? [String: Any]
        #expect(again?["t"] as? Bool == true)
        #expect(again?["f"] as? Bool == false)
        #expect((again?["n"] as? NSNumber)?.intValue == 12)
        #expect((again?["x"] as? NSNumber)?.doubleValue == 0.1)
        #expect((again?["big"] as? NSNumber)?.doubleValue == 1e300)
        #expect(try text(parsed).hasPrefix(#"{"big":"#))
    }

    @Test("values JSON cannot hold are refused")
    func refused() {
        #expect(throws: JSONWriter.Unwritable.self) { try JSONWriter.bytes(Double.nan) }
        #expect(throws: JSONWriter.Unwritable.self) { try JSONWriter.bytes(["d": Date()]) }
    }
}
