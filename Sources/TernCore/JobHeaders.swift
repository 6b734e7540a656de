import Foundation

/// A job's headers: string metadata that travels with the job from its enqueue to every attempt
/// (``JobContext/headers``) and shows in the API (`headers` on a job). Tracing context
/// (`traceparent`, `tracestate`), a tenant, a request id: whatever the task's input should not carry.
///
/// Names are 1 to 64 bytes of `a-z 0-9 - _ .` (lower case, so `Tenant` and `tenant` cannot both
/// exist); values are at most 1,024 bytes; a job has at most 32 headers of at most 8 KiB in all.
public enum JobHeaders {
    /// The most headers a job has.
    public static let maxCount = 32
    /// The longest name, in bytes.
    public static let maxNameBytes = 64
    /// The longest value, in bytes.
    public static let maxValueBytes = 1024
    /// The most bytes of names and values together.
    public static let maxTotalBytes = 8192

    /// Why `headers` break the limits above, or `nil` if they keep them.
    public static func problem(_ headers: [String: String]) -> String? {
        if headers.count > maxCount { return "a job has at most \(maxCount) headers, not \(headers.count)" }
        var total = 0
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            guard isValidName(name) else {
                return "header name '\(name.prefix(80))' must be 1 to \(maxNameBytes) bytes of a-z 0-9 - _ ."
            }
            guard value.utf8.count <= maxValueBytes else {
                return "header '\(name)' is \(value.utf8.count) bytes; a value is at most \(maxValueBytes)"
            }
            total += name.utf8.count + value.utf8.count
        }
        if total > maxTotalBytes { return "headers take \(total) bytes; at most \(maxTotalBytes) in all" }
        return nil
    }

    /// Whether `name` is a valid header name.
    public static func isValidName(_ name: String) -> Bool {
        (1...maxNameBytes).contains(name.utf8.count)
            && name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }

    /// `headers` as stored: a compact JSON object with sorted keys; empty for none.
    public static func encode(_ headers: [String: String]) -> String {
        guard !headers.isEmpty else { return "" }
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (index, name) in headers.keys.sorted().enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.string(name, into: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.string(headers[name]!, into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Stored headers read back; empty for none or for bytes that are not a JSON object of strings.
    public static func decode(_ bytes: [UInt8]) -> [String: String] {
        guard !bytes.isEmpty else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: Data(bytes))) ?? [:]
    }
}
