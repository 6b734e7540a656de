import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import NIOCore
import NIOHTTP1
import TernCore

/// Verifies JWT bearer tokens and turns their claims into a ``TokenGrant``
/// (docs/http-api.md#jwt-bearer-tokens).
///
/// The algorithm comes from the key, never from the token alone: HS256 only with the configured
/// secret, RS256 and ES256 only with a JWKS key of that type named by the token's `kid` (or the
/// only key, for a token without one). `alg: none`, any other algorithm, and a token whose `alg`
/// differs from its key's (an HS256 token signed with an RSA public key) are refused before any
/// signature is checked.
public actor JWTAuthenticator {
    private let configuration: JWTConfiguration
    private let logger: Logger
    private var hmac: JWTKeyCollection?
    /// The JWKS keys and the algorithm of each, by `kid`.
    private var jwks = JWKSKeys()
    private var jwksRead: ContinuousClock.Instant?
    private var jwksFileStamp: Date?
    private var refreshing: Task<Void, Never>?

    /// Loads the keys; throws if the secret is too short or the JWKS cannot be read or holds no
    /// usable key.
    public init(configuration: JWTConfiguration, logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        if let secret = configuration.secret {
            guard secret.utf8.count >= 32 else { throw JWTSetupError("the JWT secret must have at least 32 bytes") }
            let keys = JWTKeyCollection()
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            hmac = keys
        }
        if configuration.jwksFile != nil || configuration.jwksURL != nil {
            jwks = try await Self.load(configuration)
            jwksRead = .now
            jwksFileStamp = configuration.jwksFile.flatMap(Self.stamp)
        }
    }

    /// Who a verified token names, and until when it is valid.
    public struct Identity: Sendable, Hashable {
        public var grant: TokenGrant
        /// The token's `exp`.
        public var expires: Date
    }

    /// Whether `credential` has the shape of a JWT (three base64url parts, the first a JSON object).
    public static func looksLikeJWT(_ credential: Substring) -> Bool {
        credential.hasPrefix("eyJ") && credential.utf8.count(where: { $0 == UInt8(ascii: ".") }) == 2
    }

    /// The identity `token` proves, or why it is refused.
    public func verify(_ token: Substring, now: Date = Date()) async -> Result<Identity, JWTFailure> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]),
            let header = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any],
            let alg = header["alg"] as? String
        else { return .failure(.malformed) }
        let kid = header["kid"] as? String
        let keys: JWTKeyCollection
        switch alg {
        case "HS256":
            guard let hmac else { return .failure(.algorithm(alg)) }
            keys = hmac
        case "RS256", "ES256":
            guard !jwks.algorithms.isEmpty else { return .failure(.algorithm(alg)) }
            await refreshIfStale(unknownKid: kid.map { jwks.algorithms[$0] == nil } ?? false)
            let keyAlgorithm = kid.flatMap { jwks.algorithms[$0] } ?? (kid == nil ? jwks.onlyAlgorithm : nil)
            guard let keyAlgorithm else { return .failure(.unknownKey) }
            guard keyAlgorithm == alg else { return .failure(.algorithm(alg)) }
            keys = jwks.keys
        default:
            return .failure(.algorithm(alg))
        }
        let claims: [String: JSONValue]
        do {
            claims = try await keys.verify(String(token), as: Claims.self).all
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return .failure(.badSignature)
        } catch let error as JWTError where error.errorType == .noKeyProvided || error.errorType == .unknownKID {
            return .failure(.unknownKey)
        } catch {
            return .failure(.malformed)
        }
        return check(claims, now: now)
    }

    /// The time, issuer and audience checks, then the grant the claims make.
    private func check(_ claims: [String: JSONValue], now: Date) -> Result<Identity, JWTFailure> {
        let seconds = now.timeIntervalSince1970
        let leeway = Double(configuration.leeway.components.seconds)
        guard case .number(let exp)? = claims["exp"] else { return .failure(.claims("the token has no exp claim")) }
        guard exp + leeway > seconds else { return .failure(.expired) }
        if let nbf = claims["nbf"] {
            guard case .number(let value) = nbf else { return .failure(.claims("the token's nbf claim is not a number")) }
            guard value - leeway <= seconds else { return .failure(.notYetValid) }
        }
        if let issuer = configuration.issuer, claims["iss"] != .string(issuer) { return .failure(.wrongIssuer) }
        if let audience = configuration.audience {
            let audiences: [JSONValue] = switch claims["aud"] {
            case .array(let items)?: items
            case let one?: [one]
            case nil: []
            }
            guard audiences.contains(.string(audience)) else { return .failure(.wrongAudience) }
        }
        let roles: [String] = strings(claims[configuration.roleClaim]) ?? []
        guard let role = Role.allCases.last(where: { roles.contains($0.rawValue) }) else {
            return .failure(.claims("the token's \(configuration.roleClaim) claim names no role (reader, producer, operator or admin)"))
        }
        var subject = "unknown"
        if case .string(let text)? = claims["sub"] { subject = String(text.prefix(128)) }
        var grant = TokenGrant(name: "jwt:" + subject, role: role)
        if role == .producer {
            grant.tasks = strings(claims[configuration.tasksClaim]).map(Set.init)
            grant.queues = strings(claims[configuration.queuesClaim]).map { Set($0.compactMap(QueueName.init)) }
        }
        return .success(Identity(grant: grant, expires: Date(timeIntervalSince1970: exp)))
    }

    /// A claim's strings: a string, or an array of strings; `nil` when absent or of another shape.
    private func strings(_ value: JSONValue?) -> [String]? {
        switch value {
        case .string(let text)?: return [text]
        case .array(let items)?:
            let texts = items.compactMap { item -> String? in
                if case .string(let text) = item { return text }
                return nil
            }
            return texts.count == items.count ? texts : nil
        default: return nil
        }
    }

    /// Reads the JWKS again when its time is up, or, for a token naming an unknown key, when the
    /// last read is older than ``JWTConfiguration/minimumRefresh``; keeps the old keys if it fails.
    private func refreshIfStale(unknownKid: Bool) async {
        let age = jwksRead.map { ContinuousClock.now - $0 } ?? .seconds(Int64.max / 2)
        var due = age >= configuration.jwksRefresh || (unknownKid && age >= JWTConfiguration.minimumRefresh)
        if !due, let file = configuration.jwksFile, let stamp = Self.stamp(file), stamp != jwksFileStamp { due = true }
        guard due else { return }
        if let refreshing { return await refreshing.value }
        let configuration = configuration
        let task = Task { () -> Void in
            do {
                let keys = try await Self.load(configuration)
                self.replace(keys, stamp: configuration.jwksFile.flatMap(Self.stamp))
            } catch {
                self.failedRefresh(error)
            }
        }
        refreshing = task
        await task.value
        refreshing = nil
    }

    private func replace(_ keys: JWKSKeys, stamp: Date?) {
        jwks = keys
        jwksRead = .now
        jwksFileStamp = stamp
    }

    private func failedRefresh(_ error: any Error) {
        // Tried again after the shortest pause, not on every request.
        jwksRead = .now - configuration.jwksRefresh + JWTConfiguration.minimumRefresh
        logger.error("JWKS not read again; keeping the keys read before", metadata: ["error": "\(error)"])
    }

    private static func stamp(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }

    /// Reads the JWKS of the file and the URL.
    private static func load(_ configuration: JWTConfiguration) async throws -> JWKSKeys {
        var documents: [(String, Data)] = []
        if let path = configuration.jwksFile {
            do {
                documents.append((path, try Data(contentsOf: URL(fileURLWithPath: path))))
            } catch {
                throw JWTSetupError("cannot read the JWKS file \(path): \(error.localizedDescription)")
            }
        }
        if let url = configuration.jwksURL { documents.append((url, try await fetch(url))) }
        return try await JWKSKeys(documents)
    }

    private static func fetch(_ url: String) async throws -> Data {
        do {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            guard response.status == .ok else { throw JWTSetupError("HTTP \(response.status.code)") }
            return Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        } catch let error as JWTSetupError {
            throw JWTSetupError("cannot fetch the JWKS at \(url): \(error.description)")
        } catch {
            throw JWTSetupError("cannot fetch the JWKS at \(url): \(error)")
        }
    }
}

/// A JWT configuration that cannot work: a short secret, a JWKS that cannot be read.
public struct JWTSetupError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Every claim of a token, for ``JWTAuthenticator`` to check.
private struct Claims: JWTPayload {
    let all: [String: JSONValue]

    init(from decoder: any Decoder) throws { all = try [String: JSONValue](from: decoder) }
    func encode(to encoder: any Encoder) throws { try all.encode(to: encoder) }
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// The usable keys of JWKS documents: RSA keys for RS256 and P-256 keys for ES256, each with a
/// `kid`; keys for encryption, of other types or algorithms are left out.
struct JWKSKeys: Sendable {
    var keys = JWTKeyCollection()
    var algorithms: [String: String] = [:]

    init() {}

    init(_ documents: [(source: String, data: Data)]) async throws {
        var kept: [[String: Any]] = []
        for (source, data) in documents {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let entries = object["keys"] as? [[String: Any]]
            else { throw JWTSetupError("the JWKS at \(source) is not a JSON object with a keys array") }
            for var key in entries where key["use"] as? String != "enc" {
                guard let kid = key["kid"] as? String, algorithms[kid] == nil else { continue }
                let algorithm: String
                switch (key["kty"] as? String, key["crv"] as? String, key["alg"] as? String) {
                case ("RSA", _, nil), ("RSA", _, "RS256"?): algorithm = "RS256"
                case ("EC", "P-256"?, nil), ("EC", "P-256"?, "ES256"?): algorithm = "ES256"
                default: continue
                }
                key["alg"] = algorithm
                algorithms[kid] = algorithm
                kept.append(key)
            }
        }
        guard !kept.isEmpty else { throw JWTSetupError("the JWKS holds no RS256 or ES256 key with a kid") }
        let json = try JSONSerialization.data(withJSONObject: ["keys": kept])
        do {
            try await keys.add(jwksJSON: String(decoding: json, as: UTF8.self))
        } catch {
            throw JWTSetupError("the JWKS has a key that cannot be read: \(error)")
        }
        // A token without a kid is accepted only when there is one key to choose.
        if kept.count > 1 { _ = await keys.clearDefault() }
    }

    /// The algorithm of the only key, if there is exactly one.
    var onlyAlgorithm: String? { algorithms.count == 1 ? algorithms.values.first : nil }
}
