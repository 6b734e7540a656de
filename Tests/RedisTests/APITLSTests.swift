import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Tasks
import TernCore
import Testing

/// `curl` with `arguments`: its exit status and its output (headers included with `-i`).
private func curl(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await runTool(["/usr/bin/curl", "-s", "-S", "--max-time", "20"] + arguments)
}

private func api(_ configuration: APIConfiguration) throws -> APIContext {
    var registry = TaskRegistry()
    try SampleTasks.register(in: &registry, includingTestTasks: false)
    return APIContext(broker: MemoryJobBroker(), registry: registry, configuration: configuration, access: .none, checkReady: {})
}

@Suite("HTTPS served by the API")
struct APITLSTests {
    @Test("with a certificate: curl with the test CA succeeds and sees HSTS; without it, or in plain HTTP, it fails; a renewed certificate is served without a restart")
    func servesTLS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        var configuration = APIConfiguration()
        configuration.port = 0
        configuration.tls = try APITLS(certificateFile: certificates.serverCertificate, keyFile: certificates.serverKey)
        try await buildApplication(try api(configuration), logger: Logger(label: "tls")).test(.live) { client in
            let port = try #require(client.port)
            let url = "https://localhost:\(port)/healthz"
            let trusted = try await curl(["-i", "--cacert", certificates.ca, url])
            #expect(trusted.status == 0, "\(trusted.output)")
            #expect(trusted.output.hasPrefix("HTTP/1.1 200"))
            #expect(trusted.output.lowercased().contains("strict-transport-security: max-age=31536000"))
            #expect(try await curl([url]).status != 0, "a certificate of an unknown CA is refused")
            #expect(try await curl(["--cacert", certificates.otherCA, url]).status != 0)
            #expect(try await curl(["http://localhost:\(port)/healthz"]).status != 0, "plain HTTP gets no answer on the TLS port")

            // Renew the certificate in place, signed by the other CA: new connections get it.
            let directory = certificates.directory
            let (status, output) = try await runTool([
                "/usr/bin/openssl", "x509", "-req", "-in", "\(directory)/server.csr", "-CA", certificates.otherCA,
                "-CAkey", "\(directory)/other-ca.key", "-CAcreateserial", "-out", "\(directory)/renewed.pem", "-days", "2",
                "-extfile", "\(directory)/server.ext",
            ])
            #expect(status == 0, "\(output)")
            try FileManager.default.removeItem(atPath: certificates.serverCertificate)
            try FileManager.default.moveItem(atPath: "\(directory)/renewed.pem", toPath: certificates.serverCertificate)
            try await eventually(within: .seconds(20)) {
                let renewed = try await curl(["--cacert", certificates.otherCA, url])
                guard renewed.status == 0 else { throw WaitError("the renewed certificate is not served yet: \(renewed.output)") }
            }
            #expect(try await curl(["--cacert", certificates.ca, url]).status != 0, "the old certificate is no longer served")
        }
    }

    @Test("tls.required behind a proxy: /v1 and /ui need X-Forwarded-Proto https (then with HSTS); probes stay open")
    func requiredBehindAProxy() async throws {
        var configuration = APIConfiguration()
        configuration.tlsRequired = true
        try await Application(router: buildRouter(try api(configuration))).test(.router) { client in
            try await client.execute(uri: "/v1/queues", method: .get) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("tls_required"))
            }
            try await client.execute(uri: "/ui", method: .get) { response in #expect(response.status == .forbidden) }
            try await client.execute(uri: "/v1/queues", method: .get, headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.strictTransportSecurity] == "max-age=31536000")
            }
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok && response.headers[.strictTransportSecurity] == nil)
            }
        }
        // A session cookie is Secure whenever HTTPS is served or required.
        let login = try await Application(router: buildRouter(try api(configuration))).test(.router) { client in
            try await client.execute(
                uri: "/ui/login", method: .post,
                headers: [.contentType: "application/json", HTTPField.Name("X-Forwarded-Proto")!: "https"],
                body: ByteBuffer(string: #"{"token": "anything"}"#)
            ) { response in response.headers[.setCookie] ?? "" }
        }
        #expect(login.contains("Secure"), "\(login)")
    }

    @Test("tern api: a certificate without its key, or one that cannot be read, stops it with exit 64 and says why")
    func settings() async throws {
        for (environment, message) in [
            (["TERN_API_TLS_CERT_FILE": "/nonexistent/cert.pem"], "api.tls.cert_file and api.tls.key_file go together"),
            (["TERN_API_TLS_CERT_FILE": "/nonexistent/cert.pem", "TERN_API_TLS_KEY_FILE": "/nonexistent/key.pem"],
             "cannot use the TLS file /nonexistent/cert.pem"),
        ] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: WorkerBinary.path.replacingOccurrences(of: "/worker", with: "/api"))
            process.environment = ProcessInfo.processInfo.environment.merging(environment.merging(["TERN_API_AUTH": "none"]) { $1 }) { $1 }
            process.currentDirectoryURL = FileManager.default.temporaryDirectory
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("tern-api-tls-\(UUID().uuidString).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            defer { try? FileManager.default.removeItem(at: log) }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: log)
            process.standardInput = FileHandle.nullDevice
            try process.run()
            await waitForExit(process)
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(process.terminationStatus == 64, "\(output)")
            #expect(output.contains(message), "\(output)")
        }
    }

    @Test("a certificate file that cannot be read is a clear error at start-up")
    func unreadable() {
        #expect(throws: APITLSError.self) { try APITLS(certificateFile: "/nonexistent/cert.pem", keyFile: "/nonexistent/key.pem") }
    }
}
