import Foundation
import Hummingbird
import TernCore

/// Builds JSON responses from `JSONSerialization` objects, so stored JSON (inputs, results) is
/// embedded as it is.
enum JSONResponse {
    static func make(_ object: Any, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        let data = try JSONWriter.bytes(object)
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `value`, or JSON `null` when it is `nil`.
    static func orNull(_ value: Any?) -> Any { value ?? NSNull() }

    /// Stored JSON as an object for embedding; `NSNull` for none.
    static func embed(_ data: Data?) -> Any {
        guard let data, !data.isEmpty, let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        else { return NSNull() }
        return value
    }
}
