import NIOSSL

/// TLS settings for a `rediss://` connection.
///
/// The server's certificate is always verified: against ``caFile`` when given, else against the
/// system's trust store, and its name against ``serverName`` (by default the host of the URL).
/// There is no switch to turn verification off.
///
/// ```swift
/// let configuration = try RedisConfiguration(
///     url: "rediss://redis.internal:6380?ca=/etc/tern/ca.pem&cert=/etc/tern/client.pem&key=/etc/tern/client.key")
/// ```
public struct RedisTLS: Sendable, Hashable {
    /// A PEM file of the certificate authorities to trust, or `nil` for the system's trust store.
    public var caFile: String?
    /// A PEM file with the client certificate (and any intermediates) for mutual TLS.
    public var certificateFile: String?
    /// The PEM private key of ``certificateFile``.
    public var keyFile: String?
    /// The name the server's certificate must carry, and the SNI name sent; `nil` for the host of
    /// the endpoint. Required to connect by IP address to a server whose certificate names a host.
    public var serverName: String?

    /// TLS with the system's trust store and the endpoint's host name.
    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }

    /// Builds the client context once per connection: the files are read here, so a missing or bad
    /// file is an ``RedisError/invalidConfiguration(_:)`` that names it.
    func makeContext() throws(RedisError) -> NIOSSLContext {
        if (certificateFile == nil) != (keyFile == nil) {
            throw .invalidConfiguration("TLS client authentication needs both cert and key")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .fullVerification
        do {
            if let caFile {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            }
            if let certificateFile, let keyFile {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            }
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw .invalidConfiguration("TLS files (ca \(caFile ?? "system"), cert \(certificateFile ?? "none"), key \(keyFile ?? "none")): \(error)")
        }
    }
}
