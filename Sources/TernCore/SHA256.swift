import Crypto

/// SHA-256, for hashing idempotency keys and API tokens before they are stored (swift-crypto's
/// implementation; this type keeps the two shapes Tern uses).
public enum SHA256 {
    /// The digest of `bytes` as 32 bytes.
    public static func digest(_ bytes: some Collection<UInt8>) -> [UInt8] {
        Array(Crypto.SHA256.hash(data: Array(bytes)))
    }

    /// The digest of `text`'s UTF-8 bytes as 64 lower-case hex digits.
    public static func hex(_ text: String) -> String { hex(bytes: text.utf8) }

    /// The digest of `bytes` as 64 lower-case hex digits.
    public static func hex(bytes: some Collection<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in Crypto.SHA256.hash(data: Array(bytes)) {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// HMAC-SHA-256 (swift-crypto's), for signing the dashboard's session cookies.
public enum HMACSHA256 {
    /// The 32-byte authentication code of `message` under `key`.
    public static func mac(key: [UInt8], message: some Collection<UInt8>) -> [UInt8] {
        Array(HMAC<Crypto.SHA256>.authenticationCode(for: Array(message), using: SymmetricKey(data: key)))
    }
}
