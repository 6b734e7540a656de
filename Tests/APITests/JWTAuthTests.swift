@testable import API
import Broker
import Crypto
import CryptoExtras
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JWTKit
import Logging
import NIOCore
import Tasks
import TernCore
import Testing

/// The claims the tests sign (absent members are left out of the token).
private struct TestClaims: JWTPayload {
    var sub: String? = "ci-bot"
    var exp: Double? = Date().timeIntervalSince1970 + 600
    var nbf: Double?
    var iss: String? = "https://issuer.test/"
    var aud: String? = "tern"
    var role: String? = "producer"
    var tern_tasks: [String]?
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Keys that sign tokens, and the JWKS of their public halves.
private struct TestKeys: Sendable {
    static let secret = "an HS256 secret of at least 32 bytes!"
    let signer = JWTKeyCollection()
    let rsa: JWTKit.Insecure.RSA.PrivateKey
    let ec = ES256PrivateKey()

    init() async throws {
        rsa = try JWTKit.Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
        await signer.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256, kid: "hs")
        await signer.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rsa-1")
        await signer.add(ecdsa: ec, kid: "ec-1")
    }

    func sign(_ claims: TestClaims = TestClaims(), kid: String) async throws -> String {
        try await signer.sign(claims, kid: JWKIdentifier(string: kid))
    }

    /// A JWKS with the RSA key under `rsaKid` and the EC key, plus keys Tern must skip.
    func jwks(rsaKid: String = "rsa-1") throws -> Data {
        let (n, e) = try rsa.publicKey.getKeyPrimitives()
        let (x, y) = try #require(ec.publicKey.parameters)
        let keys: [[String: Any]] = [
            ["kty": "RSA", "kid": rsaKid, "use": "sig", "n": Base64URLText.encode(n), "e": Base64URLText.encode(e)],
            ["kty": "EC", "kid": "ec-1", "crv": "P-256", "alg": "ES256", "x": x, "y": y],
            ["kty": "RSA", "kid": "enc-1", "use": "enc", "n": Base64URLText.encode(n), "e": Base64URLText.encode(e)],
            ["kty": "oct", "kid": "sym", "k": "c2VjcmV0"],
        ]
        return try JSONSerialization.data(withJSONObject: ["keys": keys])
    }
}

private enum Base64URLText {
    static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A token with `header` and `claims`, signed with HMAC-SHA-256 under `key` (or unsigned).
    static func token(header: String, claims: String, hmacKey: [UInt8]?) -> String {
        let signingInput = encode(Array(header.utf8)) + "." + encode(Array(claims.utf8))
        guard let hmacKey else { return signingInput + "." }
        let mac = HMAC<Crypto.SHA256>.authenticationCode(for: Array(signingInput.utf8), using: SymmetricKey(data: hmacKey))
        return signingInput + "." + encode(Array(mac))
    }
}

@Suite("HTTP API: JWT bearer tokens")
struct JWTAuthTests {
    private static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    private func configuration(jwksFile: String? = nil, jwksURL: String? = nil, secret: Bool = true) -> JWTConfiguration {
        var configuration = JWTConfiguration()
        configuration.secret = secret ? TestKeys.secret : nil
        configuration.jwksFile = jwksFile
        configuration.jwksURL = jwksURL
        configuration.issuer = "https://issuer.test/"
        configuration.audience = "tern"
        return configuration
    }

    private func withAPI(
        _ jwt: JWTConfiguration, _ test: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        let authenticator = try await JWTAuthenticator(configuration: jwt, logger: Self.quiet)
        let access = AccessPolicy.tokens([.init(secret: "tern_static", grant: TokenGrant(name: "static", role: .admin))], jwt: authenticator)
        let api = APIContext(broker: MemoryJobBroker(), registry: registry, configuration: APIConfiguration(), access: access, checkReady: {})
        try await Application(router: buildRouter(api)).test(.router) { try await test($0) }
    }

    /// The status and `WWW-Authenticate` of `POST /v1/jobs` (echo) with `token`.
    private func enqueue(_ client: any TestClientProtocol, _ token: String, task: String = "echo") async throws -> (HTTPResponse.Status, String?) {
        try await client.execute(
            uri: "/v1/jobs", method: .post,
            headers: [.contentType: "application/json", .authorization: "Bearer \(token)"],
            body: ByteBuffer(string: #"{"task":"\#(task)","input":1}"#)
        ) { ($0.status, $0.headers[.wwwAuthenticate]) }
    }

    private func jwksFile(_ data: Data) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString).json").path
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("HS256, RS256 and ES256 tokens give their role; each refusal is a 401 that says why")
    func verification() async throws {
        let keys = try await TestKeys()
        let path = try jwksFile(try keys.jwks())
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withAPI(configuration(jwksFile: path)) { client in
            for kid in ["hs", "rsa-1", "ec-1"] {
                #expect(try await enqueue(client, try await keys.sign(kid: kid)).0 == .created, "\(kid)")
            }
            #expect(try await enqueue(client, "tern_static").0 == .created, "static tokens still work beside JWTs")
            let now = Date().timeIntervalSince1970
            var reader = TestClaims()
            reader.role = "reader"
            #expect(try await enqueue(client, try await keys.sign(reader, kid: "rsa-1")).0 == .forbidden)
            var limited = TestClaims()
            limited.tern_tasks = ["sleep"]
            #expect(try await enqueue(client, try await keys.sign(limited, kid: "ec-1")).0 == .forbidden)
            var withinLeeway = TestClaims()
            withinLeeway.exp = now - 30
            #expect(try await enqueue(client, try await keys.sign(withinLeeway, kid: "hs")).0 == .created, "60 s of leeway")

            func refused(_ claims: TestClaims, kid: String = "rsa-1", _ description: String) async throws {
                let (status, challenge) = try await enqueue(client, try await keys.sign(claims, kid: kid))
                #expect(status == .unauthorized)
                #expect(challenge == #"Bearer realm="tern", error="invalid_token", error_description="\#(description)""#)
            }
            var claims = TestClaims()
            claims.exp = now - 120
            try await refused(claims, "the token has expired")
            claims = TestClaims()
            claims.exp = nil
            try await refused(claims, kid: "hs", "the token has no exp claim")
            claims = TestClaims()
            claims.nbf = now + 120
            try await refused(claims, kid: "ec-1", "the token is not valid yet")
            claims = TestClaims()
            claims.aud = "another-api"
            try await refused(claims, "the token is not meant for this API (aud)")
            claims = TestClaims()
            claims.iss = "https://evil.test/"
            try await refused(claims, "the token's issuer is not trusted")
            claims = TestClaims()
            claims.role = "superuser"
            try await refused(claims, "the token's role claim names no role (reader, producer, operator or admin)")

            // A token signed by another key under a known kid, or naming an unknown kid.
            let other = JWTKeyCollection()
            await other.add(ecdsa: ES256PrivateKey(), kid: "ec-1")
            let forged = try await other.sign(TestClaims(), kid: "ec-1")
            #expect(try await enqueue(client, forged).1?.contains("the token's signature does not verify") == true)
            await other.add(ecdsa: ES256PrivateKey(), kid: "ec-9")
            #expect(try await enqueue(client, try await other.sign(TestClaims(), kid: "ec-9")).1?.contains("the token's key (kid) is not known") == true)
            let tampered = try await keys.sign(kid: "rsa-1").dropLast(4) + "AAAA"
            #expect(try await enqueue(client, String(tampered)).0 == .unauthorized)
            #expect(try await enqueue(client, "eyJhbGciOi.not-base64.x").1?.contains("the token is malformed") == true)
        }
    }

    @Test("alg none and algorithm confusion are refused before any signature is checked")
    func algorithms() async throws {
        let keys = try await TestKeys()
        let path = try jwksFile(try keys.jwks())
        defer { try? FileManager.default.removeItem(atPath: path) }
        let claims = String(decoding: try JSONEncoder().encode(TestClaims()), as: UTF8.self)
        let none = Base64URLText.token(header: #"{"alg":"none","typ":"JWT"}"#, claims: claims, hmacKey: nil)
        let noneWithKid = Base64URLText.token(header: #"{"alg":"none","kid":"rsa-1"}"#, claims: claims, hmacKey: nil)
        // HS256 "signed" with the RSA public key's PEM: the classic confusion attack.
        let pem = Array(keys.rsa.publicKey.pemRepresentation.utf8)
        let confused = Base64URLText.token(header: #"{"alg":"HS256","kid":"rsa-1","typ":"JWT"}"#, claims: claims, hmacKey: pem)
        let wrongKind = Base64URLText.token(header: #"{"alg":"ES256","kid":"rsa-1"}"#, claims: claims, hmacKey: pem)
        let hs512 = Base64URLText.token(header: #"{"alg":"HS512"}"#, claims: claims, hmacKey: Array(TestKeys.secret.utf8))
        // Without an HS256 secret, HS256 is not accepted at all.
        try await withAPI(configuration(jwksFile: path, secret: false)) { client in
            for (token, alg) in [(none, "none"), (noneWithKid, "none"), (confused, "HS256"), (wrongKind, "ES256"), (hs512, "HS512")] {
                let (status, challenge) = try await enqueue(client, token)
                #expect(status == .unauthorized)
                #expect(challenge?.contains("the token's algorithm '\(alg)' is not accepted") == true, "\(alg): \(challenge ?? "-")")
            }
        }
        // With one, the confused token is checked against the secret, never the public key.
        try await withAPI(configuration(jwksFile: path)) { client in
            let confusedChallenge = try await enqueue(client, confused).1
            let noneChallenge = try await enqueue(client, none).1
            #expect(confusedChallenge?.contains("the token's signature does not verify") == true)
            #expect(noneChallenge?.contains("the token's algorithm 'none' is not accepted") == true)
        }
    }

    @Test("a JWKS file is read again when it changes: a rotated key works at once, the removed one stops")
    func rotation() async throws {
        let keys = try await TestKeys()
        let path = try jwksFile(try keys.jwks())
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withAPI(configuration(jwksFile: path)) { client in
            #expect(try await enqueue(client, try await keys.sign(kid: "rsa-1")).0 == .created)
            try keys.jwks(rsaKid: "rsa-2").write(to: URL(fileURLWithPath: path))
            // A later modification time, whatever the file system's resolution.
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: path)
            await keys.signer.add(rsa: keys.rsa, digestAlgorithm: .sha256, kid: "rsa-2")
            #expect(try await enqueue(client, try await keys.sign(kid: "rsa-2")).0 == .created)
            #expect(try await enqueue(client, try await keys.sign(kid: "rsa-1")).1?.contains("(kid) is not known") == true)
        }
    }

    @Test("a JWKS URL is fetched; a bad JWKS stops the start with the reason")
    func jwksURL() async throws {
        let keys = try await TestKeys()
        let document = try keys.jwks()
        let router = Router()
        router.get("/.well-known/jwks.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: document)))
        }
        try await Application(router: router).test(.live) { server in
            let port = try #require(server.port)
            let url = "http://127.0.0.1:\(port)/.well-known/jwks.json"
            try await withAPI(configuration(jwksURL: url, secret: false)) { client in
                let status = try await enqueue(client, try await keys.sign(kid: "ec-1")).0
                #expect(status == .created)
            }
            var missing = configuration(jwksURL: "http://127.0.0.1:\(port)/nothing", secret: false)
            missing.jwksRefresh = .seconds(60)
            await #expect(throws: JWTSetupError.self) { try await JWTAuthenticator(configuration: missing, logger: Self.quiet) }
        }
        let empty = try jwksFile(Data(#"{"keys":[{"kty":"oct","kid":"s","k":"eA"}]}"#.utf8))
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let error = await #expect(throws: JWTSetupError.self) {
            try await JWTAuthenticator(configuration: configuration(jwksFile: empty), logger: Self.quiet)
        }
        #expect(error?.description == "the JWKS holds no RS256 or ES256 key with a kid")
    }

    @Test("the dashboard's login takes a JWT: the session carries its role and ends with it; refusals are counted by reason")
    func dashboardLogin() async throws {
        let keys = try await TestKeys()
        try await withAPI(configuration()) { client in
            var claims = TestClaims()
            claims.role = "operator"
            claims.exp = Date().timeIntervalSince1970 + 120
            let token = try await keys.sign(claims, kid: "hs")
            let cookie = try await client.execute(
                uri: "/ui/login", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"token":"\#(token)"}"#)
            ) { response -> String in
                #expect(response.status == .ok)
                let object = try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                #expect(object["role"] as? String == "operator" && object["name"] as? String == "jwt:ci-bot")
                let setCookie = try #require(response.headers[.setCookie])
                let maxAge = try #require(setCookie.split(separator: ";").first { $0.contains("Max-Age=") }.flatMap { Int($0.split(separator: "=")[1]) })
                #expect(maxAge <= 120, "the session ends no later than the JWT")
                return String(setCookie.split(separator: ";")[0])
            }
            try await client.execute(uri: "/v1/queues", method: .get, headers: [.cookie: cookie]) { #expect($0.status == .ok) }

            // A JWT's stream ticket carries its grant, and ends no later than the JWT (30 s here).
            var short = claims
            short.exp = Date().timeIntervalSince1970 + 30
            let shortToken = try await keys.sign(short, kid: "hs")
            let issued = try await client.execute(uri: "/v1/stream-tickets", method: .post, headers: [.authorization: "Bearer \(shortToken)"]) { response in
                #expect(response.status == .created)
                return try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            }
            let left = try #require(issued["expires_in_seconds"] as? Int)
            #expect(left <= 30 && left > 0, "\(left)")
            let signed = try #require((issued["ticket"] as? String)?.split(separator: ".").first)
            let payload = String(decoding: try #require(Base64URL.decode(signed)), as: UTF8.self)
            #expect(payload.hasPrefix("t1|") && !payload.hasPrefix("t1|eyJuYW1lIjoiand0OmNpLWJvdCJ9|"), "the grant is carried: \(payload)")

            var expired = TestClaims()
            expired.exp = Date().timeIntervalSince1970 - 600
            let old = try await keys.sign(expired, kid: "hs")
            try await client.execute(
                uri: "/ui/login", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"token":"\#(old)"}"#)
            ) { #expect($0.status == .unauthorized) }
            _ = try await enqueue(client, old)
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer tern_static"]) { response in
                let text = String(buffer: response.body)
                #expect(text.contains(#"tern_auth_failures_total{reason="jwt_expired"} 2"#), "\(text.split(separator: "\n").filter { $0.contains("auth_failures") })")
                #expect(text.contains(#"tern_token_requests_total{token="jwt:ci-bot"}"#))
            }
        }
    }
}
