import Broker
import Foundation
import TernCore
import TernTesting
import Testing

extension HeavyProcessTests {
    @Suite("tern api re-reads its tokens on SIGHUP", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct APITokenReloadTests {
        @Test("SIGHUP: a token taken out of the file is refused, one put in is accepted; a broken file keeps the tokens in use")
        func reload() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let directory = environment.server.directory
            let config = directory + "/tern-api.yaml"
            let log = directory + "/tern-api.log"
            try Self.tokens([("first", "token-first")]).write(toFile: config, atomically: true, encoding: .utf8)
            let port = try LocalRedisServer.freePort()
            let api = try WorkerBinary.launch(
                ["--config", config, "--redis-url", environment.server.url, "--port", String(port)], log: log, executable: "api",
                environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TERN_") }
                    .merging(["TERN_PREFIX": environment.broker.keys.prefix]) { $1 })
            defer { if api.isRunning { api.terminate() } }
            let url = "http://127.0.0.1:\(port)"

            // Started: the first token works, the second is not known yet.
            try await eventually(within: .seconds(60)) {
                try #require(api.isRunning, "tern api stopped: \(Self.text(log))")
                let answer = try await Self.queues(url, token: "token-first")
                guard answer.status == 0 else { throw WaitError("the API does not answer yet: \(answer.output)") }
            }
            var second = try await Self.queues(url, token: "token-second")
            #expect(second.status == 4 && second.output.contains("refused the token"), "\(second.output)")

            // The file now has the second token only.
            try Self.tokens([("second", "token-second")]).write(toFile: config, atomically: true, encoding: .utf8)
            kill(api.processIdentifier, SIGHUP)
            try await eventually(within: .seconds(30)) {
                second = try await Self.queues(url, token: "token-second")
                guard second.status == 0 else { throw WaitError("the second token is not accepted yet: \(second.output)") }
            }
            let first = try await Self.queues(url, token: "token-first")
            #expect(first.status == 4 && first.output.contains("refused the token"), "\(first.output)")
            #expect(Self.text(log).contains("API tokens reloaded"), "\(Self.text(log))")

            // A file that does not validate changes nothing: the tokens in use stay, and the log says why.
            try "api:\n  tokens:\n    - name: broken\n      role: admin\n      sha256: nothex\n"
                .write(toFile: config, atomically: true, encoding: .utf8)
            kill(api.processIdentifier, SIGHUP)
            try await eventually(within: .seconds(30)) {
                guard Self.text(log).contains("API tokens not reloaded") else { throw WaitError("no 'not reloaded' line yet") }
            }
            #expect(Self.text(log).contains("sha256 must be 64 hexadecimal digits"), "\(Self.text(log))")
            second = try await Self.queues(url, token: "token-second")
            #expect(second.status == 0, "\(second.output)")
            #expect(api.isRunning)

            api.terminate()
            await waitForExit(api)
            #expect(api.terminationStatus == 0, "\(Self.text(log))")
        }

        /// A configuration file with these (name, secret) admin tokens.
        static func tokens(_ tokens: [(String, String)]) -> String {
            "api:\n  tokens:\n" + tokens.map { "    - name: \($0.0)\n      role: admin\n      sha256: \(SHA256.hex($0.1))\n" }.joined()
        }

        /// `tern queues` against `url` with `token`: its exit status and output.
        static func queues(_ url: String, token: String) async throws -> (status: Int32, output: String) {
            try await runTool([WorkerBinary.path.replacingOccurrences(of: "/worker", with: "/tern"), "queues", "--api", url, "--token", token])
        }

        static func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
    }
}
