import API
import Broker
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import TernCore
import Testing

/// The generated OpenAPI document checked by real tools against a live server on real Redis:
/// `openapi-spec-validator` validates it against the OpenAPI 3.1 schema, and `schemathesis`
/// fuzzes every operation from it and fails on any 5xx or any answer that breaks the document.
/// scripts/test installs both (pinned); outside CI, the test is skipped when they are missing.
@Suite("OpenAPI conformance", .enabled(if: TestRedis.enabled && ConformanceTools.enabled, ConformanceTools.reason))
struct OpenAPIConformanceTests {
    @Test("the document is valid OpenAPI 3.1, and schemathesis finds no 5xx and no schema violation")
    func conformance() async throws {
        let environment = try await JobEnvironment.start()
        defer { environment.stop() }
        var configuration = APIConfiguration()
        configuration.port = 0
        // Fuzzed jobs never run here: keep waits and streams short.
        configuration.maxWaitSeconds = 1
        configuration.maxEventStreamSeconds = 1
        let token = "tern_conformance_" + UUID().uuidString
        let access = AccessPolicy.tokens([.init(secret: token, grant: TokenGrant(name: "fuzzer", role: .admin))])
        let api = APIContext(broker: environment.broker, registry: environment.registry, configuration: configuration, access: access) {}
        try await buildApplication(api, logger: .init(label: "conformance")).test(.live) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let document = try await client.execute(uri: "/openapi.json", method: .get) { Data($0.body.readableBytesView) }
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("tern-openapi-\(UUID().uuidString).json").path
            #expect(FileManager.default.createFile(atPath: path, contents: document))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let validator = try await ConformanceTools.run(["-m", "openapi_spec_validator", path])
            #expect(validator.status == 0, "openapi-spec-validator: \(validator.output)")
            let fuzz = try await ConformanceTools.run([
                "-m", "schemathesis.cli", "run", base + "/openapi.json", "--url", base,
                "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
                "--max-examples", "25", "--seed", "1", "--request-timeout", "10", "--no-color",
                "--header", "Authorization: Bearer \(token)",
            ])
            #expect(fuzz.status == 0, "schemathesis: \(fuzz.output.suffix(6000))")
            // A body the schema of PUT /v1/schedules/{name} allows is one the route accepts.
            let schedules = try await ConformanceTools.run([
                "-m", "schemathesis.cli", "run", base + "/openapi.json", "--url", base,
                "--include-path-regex", "^/v1/schedules/\\{name\\}$", "--include-method", "PUT",
                "--mode", "positive", "--phases", "fuzzing", "--checks", "positive_data_acceptance,not_a_server_error",
                "--max-examples", "50", "--seed", "1", "--request-timeout", "10", "--no-color",
                "--header", "Authorization: Bearer \(token)",
            ])
            #expect(schedules.status == 0, "schemathesis (schedules): \(schedules.output.suffix(6000))")
        }
    }
}

/// The Python tools, run as `python3 -m ...` with their output captured in a file.
enum ConformanceTools {
    static let enabled: Bool =
        ProcessInfo.processInfo.environment["CI"] == "true" || (try? probe()) == true
    static let reason: Comment = "openapi-spec-validator and schemathesis are not installed (scripts/test installs them)"

    private static func probe() throws -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import openapi_spec_validator, schemathesis"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    /// Runs `python3 arguments` to its end; returns its exit status and output.
    static func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tern-tool-\(UUID().uuidString).log").path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? log.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        // schemathesis keeps a .schemathesis/ folder in its working directory: not in the checkout.
        process.currentDirectoryURL = FileManager.default.temporaryDirectory
        process.standardOutput = log
        process.standardError = log
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let output = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return (status, output)
    }
}
