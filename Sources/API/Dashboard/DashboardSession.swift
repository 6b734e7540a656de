import Foundation
import TernCore

/// The dashboard's signed session: who logged in, until when, and the CSRF token that goes with it.
///
/// The cookie's value is `<payload>.<mac>`, both base64url: the payload is `v1|<token name>|<expiry
/// in seconds since 1970>|<random nonce>`, the MAC is HMAC-SHA-256 of the payload under the
/// server's session secret. Nothing secret is in it: the token itself never leaves the login
/// request. A session names its token, so removing the token from the configuration ends its
/// sessions, and changing the token's role changes theirs.
///
/// A session opened with a JWT carries the grant its claims made instead (payload `v2|<base64url
/// JSON of name, role, tasks, queues>|<expiry>|<nonce>`), and ends no later than the JWT.
struct DashboardSession: Sendable, Equatable {
    /// The name of the cookie.
    static let cookieName = "tern_session"

    /// The name of the token that logged in.
    var tokenName: String
    /// The end of the session, in seconds since 1970.
    var expires: Int64
    /// Random, per session: the CSRF token is derived from it.
    var nonce: String
    /// The grant of a session opened with a JWT; `nil` for a static token's (looked up by name).
    var grant: TokenGrant? = nil

    /// A new session for `tokenName`, valid for `lifetime` from `now`; for a JWT's `grant`, no
    /// longer than the JWT (`until`).
    static func start(
        tokenName: String, lifetime: Duration, grant: TokenGrant? = nil, until: Date? = nil, now: Date = Date()
    ) -> DashboardSession {
        var generator = SystemRandomNumberGenerator()
        let nonce = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var expires = Int64(now.timeIntervalSince1970) + lifetime.components.seconds
        if let until { expires = min(expires, Int64(until.timeIntervalSince1970)) }
        return DashboardSession(tokenName: tokenName, expires: expires, nonce: Base64URL.encode(nonce), grant: grant)
    }

    /// The signed cookie value.
    func cookieValue(secret: [UInt8]) -> String {
        let payload: [UInt8]
        if let grant {
            payload = Array("v2|\(grant.signedForm)|\(expires)|\(nonce)".utf8)
        } else {
            payload = Array("v1|\(tokenName)|\(expires)|\(nonce)".utf8)
        }
        return Base64URL.encode(payload) + "." + Base64URL.encode(HMACSHA256.mac(key: secret, message: payload))
    }

    /// The session in a cookie value, if its signature is the server's and it has not expired.
    static func verify(_ value: Substring, secret: [UInt8], now: Date = Date()) -> DashboardSession? {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Base64URL.decode(parts[0]), let mac = Base64URL.decode(parts[1]),
            constantTimeEqual(mac, HMACSHA256.mac(key: secret, message: payload))
        else { return nil }
        let fields = String(decoding: payload, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        // A token's name may itself contain `|`: it is everything between the version and the expiry.
        guard fields.count >= 4, fields[0] == "v1" || fields[0] == "v2", let expires = Int64(fields[fields.count - 2]),
            expires > Int64(now.timeIntervalSince1970)
        else { return nil }
        if fields[0] == "v2" {
            guard fields.count == 4, let grant = TokenGrant(signedForm: fields[1]) else { return nil }
            return DashboardSession(tokenName: grant.name, expires: expires, nonce: String(fields[3]), grant: grant)
        }
        let name = fields[1..<(fields.count - 2)].joined(separator: "|")
        return DashboardSession(tokenName: name, expires: expires, nonce: String(fields[fields.count - 1]))
    }

    /// The CSRF token every state-changing request of this session must carry in `X-CSRF-Token`.
    func csrfToken(secret: [UInt8]) -> String {
        Base64URL.encode(HMACSHA256.mac(key: secret, message: Array("csrf|\(nonce)".utf8)))
    }

    /// Whether `candidate` is this session's CSRF token (compared in constant time).
    func acceptsCSRF(_ candidate: Substring?, secret: [UInt8]) -> Bool {
        guard let candidate else { return false }
        return Self.constantTimeEqual(Array(candidate.utf8), Array(csrfToken(secret: secret).utf8))
    }

    /// The `Set-Cookie` value that stores this session: HttpOnly, SameSite=Strict, for the whole site.
    func setCookie(secret: [UInt8], secure: Bool, now: Date = Date()) -> String {
        let maxAge = max(0, expires - Int64(now.timeIntervalSince1970))
        return "\(Self.cookieName)=\(cookieValue(secret: secret)); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict"
            + (secure ? "; Secure" : "")
    }

    /// The `Set-Cookie` value that deletes the session cookie.
    static let clearCookie = "\(cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"

    /// The session cookie's value in a `Cookie` header, if there is one.
    static func cookie(in header: String?) -> Substring? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let trimmed = pair.drop { $0 == " " }
            if trimmed.hasPrefix(cookieName + "=") { return trimmed.dropFirst(cookieName.count + 1) }
        }
        return nil
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}

extension TokenGrant {
    /// The grant as base64url JSON (`name`, `role`, `tasks`, `queues`), in the signed payloads of
    /// session cookies and stream tickets.
    var signedForm: String {
        var fields: [String: Any] = ["name": name, "role": role.rawValue]
        if let tasks { fields["tasks"] = tasks.sorted() }
        if let queues { fields["queues"] = queues.map(\.rawValue).sorted() }
        return Base64URL.encode((try? JSONWriter.bytes(fields)) ?? [])
    }

    /// The grant of a ``signedForm``; `nil` for other text, or JSON without a role.
    init?(signedForm: Substring) {
        guard let json = Base64URL.decode(signedForm),
            let fields = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
            let name = fields["name"] as? String, let role = (fields["role"] as? String).flatMap(Role.init(rawValue:))
        else { return nil }
        self.init(
            name: name, role: role, tasks: (fields["tasks"] as? [String]).map(Set.init),
            queues: (fields["queues"] as? [String]).map { Set($0.compactMap(QueueName.init)) })
    }
}

/// Base64url without padding (RFC 4648 §5), for cookie values.
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: Substring) -> [UInt8]? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
        return Data(base64Encoded: standard).map(Array.init)
    }
}
