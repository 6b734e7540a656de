import Foundation
import TernCore

/// A short-lived credential for the event streams, given as `?ticket=`: a browser's `EventSource`
/// cannot send an `Authorization` header. `POST /v1/stream-tickets` issues one for the caller's
/// grant; it is good for ``lifetime`` on `GET` of the two event streams (``accepted(on:)``), and
/// nowhere else.
///
/// It is signed with the dashboard's session secret (``APIConfiguration/sessionSecret``), so every
/// API replica with the same secret accepts it, and nothing is stored. A static token's ticket
/// names the token, whose grant is looked up again when the ticket is used: a removed token's
/// tickets stop at once. A JWT's ticket carries the JWT's grant, and ends no later than the JWT.
/// Tickets are signed, not encrypted: the token's name (a JWT's grant) can be read from one.
struct StreamTicket {
    /// How long a ticket is good for: long enough to open a stream, short enough that one seen in
    /// a log or a browser's history is stale.
    static let lifetime: Int64 = 60

    /// Whether a ticket counts on `GET` of `path`: the two event streams, `/v1/jobs/{id}/events` and
    /// `/v1/queues/{queue}/events`, and no other route.
    static func accepted(on path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 5 && parts[0].isEmpty && parts[1] == "v1" && (parts[2] == "jobs" || parts[2] == "queues")
            && !parts[3].isEmpty && parts[4] == "events"
    }

    /// A signed ticket for `grant`, and when it ends (seconds since 1970). `ends` is when the
    /// caller's credential ends, for a grant that is not a static token's (a JWT's): the ticket then
    /// holds the grant whole, and ends no later than the credential.
    static func issue(_ grant: TokenGrant, ends: Date?, secret: [UInt8], now: Date = Date()) -> (value: String, expires: Int64) {
        var expires = Int64(now.timeIntervalSince1970) + lifetime
        let named: String
        if let ends {
            expires = min(expires, Int64(ends.timeIntervalSince1970))
            named = grant.signedForm
        } else {
            named = Base64URL.encode((try? JSONWriter.bytes(["name": grant.name])) ?? [])
        }
        let payload = Array("t1|\(named)|\(expires)".utf8)
        return (Base64URL.encode(payload) + "." + Base64URL.encode(HMACSHA256.mac(key: secret, message: payload)), expires)
    }

    /// The grant a ticket stands for, if its signature is the server's, it has not expired and (for
    /// a static token's) the token still exists; with, for a carried grant, when the ticket ends.
    static func grant(_ value: Substring, secret: [UInt8], policy: AccessPolicy, now: Date = Date()) -> (TokenGrant, Date?)? {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Base64URL.decode(parts[0]), let mac = Base64URL.decode(parts[1]),
            DashboardSession.constantTimeEqual(mac, HMACSHA256.mac(key: secret, message: payload))
        else { return nil }
        let fields = String(decoding: payload, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0] == "t1", let expires = Int64(fields[2]), expires > Int64(now.timeIntervalSince1970)
        else { return nil }
        if let carried = TokenGrant(signedForm: fields[1]) { return (carried, Date(timeIntervalSince1970: TimeInterval(expires))) }
        guard let json = Base64URL.decode(fields[1]),
            let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any], let name = object["name"] as? String
        else { return nil }
        return policy.grant(named: name).map { ($0, nil) }
    }
}
