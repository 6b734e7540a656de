import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The options every client command takes: where the API is, the token, and `--json`.
struct ClientOptions: ParsableArguments {
    @Option(name: .customLong("api"), help: ArgumentHelp("The API's URL. Environment: TERN_API_URL. (default: http://127.0.0.1:8080)", valueName: "url"))
    var api: String?

    @Option(help: ArgumentHelp("The bearer token. Environment: TERN_TOKEN; else the file ~/.config/tern/token (mode 0600), else .data/dev-token (written by scripts/dev).", valueName: "token"))
    var token: String?

    @Flag(help: "Print the API's JSON instead of a table, for scripts.")
    var json = false

    func client() throws -> APIClient {
        let environment = ProcessInfo.processInfo.environment
        let base = api ?? nonEmpty(environment["TERN_API_URL"]) ?? "http://127.0.0.1:8080"
        guard let url = URL(string: base), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw CLIFailure(.usage, "--api must be an http:// or https:// URL, not '\(base)'")
        }
        return APIClient(base: base.hasSuffix("/") ? String(base.dropLast()) : base, token: try token ?? Self.storedToken(environment))
    }

    /// `TERN_TOKEN`, else the token file (refused unless only its owner can read it), else the dev token.
    private static func storedToken(_ environment: [String: String]) throws -> String? {
        if let token = nonEmpty(environment["TERN_TOKEN"]) { return token }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let configDirectory = nonEmpty(environment["XDG_CONFIG_HOME"]) ?? home + "/.config"
        for (path, checkMode) in [(configDirectory + "/tern/token", true), (".data/dev-token", false)] {
            guard FileManager.default.fileExists(atPath: path) else { continue }
            if checkMode {
                let mode = ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int) ?? 0
                guard mode & 0o077 == 0 else {
                    throw CLIFailure(.usage, "\(path) is readable by others (mode \(String(mode, radix: 8))): run chmod 600 \(path)")
                }
            }
            let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            if let text, !text.isEmpty { return text }
        }
        return nil
    }
}

/// Why a client command failed, with its documented exit code.
struct CLIFailure: Error, CustomStringConvertible {
    enum Code: Int32 {
        /// The job failed or was cancelled (`wait`).
        case jobFailed = 1
        /// A usage error: a bad flag or argument, or a request the API refused as invalid.
        case usage = 2
        case notFound = 3
        /// The API cannot be reached, is unavailable, or refused the token.
        case unavailable = 4
    }

    let code: Code
    let description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// Calls the HTTP API and turns its answers into JSON or a ``CLIFailure``.
struct APIClient {
    let base: String
    let token: String?

    /// One HTTP client for the process (never shut down: the process ends instead). A refused or
    /// silent address fails within the 3 s connect timeout rather than the request's.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(3))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// Sends a request; returns the JSON answer (or `nil` for an empty one).
    func call(_ method: HTTPMethod, _ path: String, body: Any? = nil, headers extra: [(String, String)] = [], timeout: TimeAmount = .seconds(60)) async throws -> Any? {
        try await exchange(method, path, body: body, headers: extra, timeout: timeout).answer
    }

    /// Every queue: the pages of `GET /v1/queues`, followed through their `next_cursor`.
    func allQueues() async throws -> [[String: Any]] {
        var queues: [[String: Any]] = []
        var cursor: String?
        repeat {
            // Queue names need no escaping: a-z, 0-9, _ and -.
            let path = "/v1/queues" + (cursor.map { "?cursor=" + $0 } ?? "")
            let page = try await call(.GET, path) as? [String: Any]
            queues += page?["queues"] as? [[String: Any]] ?? []
            cursor = page?["next_cursor"] as? String
        } while cursor != nil
        return queues
    }

    /// Sends a request; returns the status of a 2xx answer and its JSON.
    func exchange(
        _ method: HTTPMethod, _ path: String, body: Any? = nil, headers extra: [(String, String)] = [], timeout: TimeAmount = .seconds(60)
    ) async throws -> (status: Int, answer: Any?) {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body, options: [.fragmentsAllowed])))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await Self.http.execute(request, timeout: timeout)
            bytes = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw CLIFailure(.unavailable, "cannot reach the API at \(base) (\(error)): start it with `tern api` or scripts/dev, or point --api / TERN_API_URL at it")
        }
        let data = Data(bytes.readableBytesView)
        let object = data.isEmpty ? nil : try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        switch response.status.code {
        case 200..<300:
            return (Int(response.status.code), object)
        default:
            throw failure(status: Int(response.status.code), problem: object as? [String: Any])
        }
    }

    private func failure(status: Int, problem: [String: Any]?) -> CLIFailure {
        let detail = Output.clean(problem?["detail"] as? String ?? "HTTP \(status)")
        let fields = (problem?["errors"] as? [[String: Any]] ?? []).map {
            "\n  \(Output.clean($0["pointer"] as? String ?? "")): \(Output.clean($0["message"] as? String ?? ""))"
        }.joined()
        switch status {
        case 401: return CLIFailure(.unavailable, "the API refused the token (\(detail)): pass --token or set TERN_TOKEN (tern dev prints one; scripts/dev writes .data/dev-token)")
        case 403: return CLIFailure(.unavailable, "the token may not do this: \(detail)")
        case 404: return CLIFailure(.notFound, detail)
        case 400..<500: return CLIFailure(.usage, detail + fields)
        default: return CLIFailure(.unavailable, "the API is unavailable (\(status)): \(detail); retry shortly")
        }
    }
}

/// Runs a client command body, printing a failure on stderr and exiting with its code.
func runClient(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as CLIFailure {
        FileHandle.standardError.write(Data("tern: \(failure.description)\n".utf8))
        throw ExitCode(failure.code.rawValue)
    }
}
