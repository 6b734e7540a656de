import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// HTTPS for the API itself: a certificate chain and its private key, both PEM files, read at
/// start-up and read again when either file changes (checked at most once a second, on a new
/// connection's handshake), so that a renewed certificate is served without a restart. A file that
/// cannot be read or parsed at start-up stops the API with a clear error; later, the certificate
/// in use stays and the failure is logged.
///
/// TLS 1.2 and 1.3 only, with swift-nio-ssl's default cipher suites (forward-secret AEAD ciphers).
public final class APITLS: Sendable {
    /// The certificate chain's file (`api.tls.cert_file`): the server's certificate first, then
    /// any intermediates.
    public let certificateFile: String
    /// The private key's file (`api.tls.key_file`).
    public let keyFile: String
    private let logger: Logger
    private let state: Mutex<State>

    private struct State {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var stamps: [Date?]
        var checked: ContinuousClock.Instant
    }

    /// Reads both files.
    /// - Throws: ``APITLSError`` naming the file that cannot be read or parsed.
    public init(certificateFile: String, keyFile: String, logger: Logger = Logger(label: "tern.api.tls")) throws {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.logger = logger
        let (chain, key) = try Self.load(certificateFile, keyFile)
        state = Mutex(State(chain: chain, key: key, stamps: Self.stamps(certificateFile, keyFile), checked: .now))
    }

    /// The server's TLS configuration: TLS 1.2 at least, and the certificate in use at each
    /// handshake.
    public func serverConfiguration() -> TLSConfiguration {
        let current = state.withLock { ($0.chain, $0.key) }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: current.0.map { .certificate($0) }, privateKey: .privateKey(current.1))
        configuration.minimumTLSVersion = .tlsv12
        configuration.sslContextCallback = { [self] _, promise in
            let (chain, key) = self.current()
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = chain.map { .certificate($0) }
            override.privateKey = .privateKey(key)
            promise.succeed(override)
        }
        return configuration
    }

    /// The certificate and key to serve now, read again if a file changed since the last check.
    func current() -> ([NIOSSLCertificate], NIOSSLPrivateKey) {
        let due = state.withLock { state -> Bool in
            guard ContinuousClock.now - state.checked >= .seconds(1) else { return false }
            state.checked = .now
            return true
        }
        if due {
            let stamps = Self.stamps(certificateFile, keyFile)
            if stamps != state.withLock({ $0.stamps }) {
                do {
                    let (chain, key) = try Self.load(certificateFile, keyFile)
                    state.withLock { ($0.chain, $0.key, $0.stamps) = (chain, key, stamps) }
                    logger.notice("TLS certificate reloaded", metadata: ["file": .string(certificateFile)])
                } catch {
                    // Keep serving the old one; try again at the next change.
                    state.withLock { $0.stamps = stamps }
                    logger.error("TLS certificate not reloaded; the previous one stays", metadata: ["error": "\(error)"])
                }
            }
        }
        return state.withLock { ($0.chain, $0.key) }
    }

    private static func load(_ certificateFile: String, _ keyFile: String) throws -> ([NIOSSLCertificate], NIOSSLPrivateKey) {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
        } catch {
            throw APITLSError.unreadable(certificateFile, "\(error)")
        }
        guard !chain.isEmpty else { throw APITLSError.unreadable(certificateFile, "no certificate in the file") }
        do {
            return (chain, try NIOSSLPrivateKey(file: keyFile, format: .pem))
        } catch {
            throw APITLSError.unreadable(keyFile, "\(error)")
        }
    }

    private static func stamps(_ files: String...) -> [Date?] {
        files.map { (try? FileManager.default.attributesOfItem(atPath: $0)[.modificationDate]) as? Date }
    }
}

/// Why the API's TLS files cannot be used.
public enum APITLSError: Error, CustomStringConvertible, Sendable {
    case unreadable(String, String)

    public var description: String {
        switch self {
        case .unreadable(let file, let why): "cannot use the TLS file \(file): \(why)"
        }
    }
}
