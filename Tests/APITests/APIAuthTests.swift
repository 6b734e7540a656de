@testable import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Tasks
import TernCore
import Testing

/// A token per role, plus a producer limited to the sleep task on the default queue.
private let tokens: [String: TokenGrant] = [
    "t-reader": TokenGrant(name: "r", role: .reader),
    "t-producer": TokenGrant(name: "p", role: .producer),
    "t-operator": TokenGrant(name: "o", role: .operator),
    "t-admin": TokenGrant(name: "a", role: .admin),
    "t-sleep-only": TokenGrant(name: "s", role: .producer, tasks: ["sleep"], queues: ["default"]),
]

private func withSecuredAPI(_ test: @escaping @Sendable (any TestClientProtocol, MemoryJobBroker) async throws -> Void) async throws {
    let broker = MemoryJobBroker()
    var registry = TaskRegistry()
    try SampleTasks.register(in: &registry, includingTestTasks: false)
    let access = AccessPolicy.tokens(tokens.map { AccessPolicy.Token(secret: $0.key, grant: $0.value) })
    let api = APIContext(broker: broker, registry: registry, configuration: APIConfiguration(), access: access, checkReady: {})
    try await Application(router: buildRouter(api)).test(.router) { client in try await test(client, broker) }
}

private func headers(_ token: String?) -> HTTPFields {
    var fields: HTTPFields = [.contentType: "application/json"]
    if let token { fields[.authorization] = "Bearer \(token)" }
    return fields
}

private func code(_ response: TestResponse) -> String? {
    let object = try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
    return object?["code"] as? String
}

@Suite("HTTP API: authentication and roles")
struct APIAuthTests {
    @Test("each role × each class of endpoint: read for all, enqueue for producers, operate for operators, admin for all", arguments: Role.allCases)
    func roleMatrix(_ role: Role) async throws {
        try await withSecuredAPI { client, broker in
            let token = "t-\(role.rawValue)"
            let job = try await broker.enqueue([EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions())])[0]
            let read = try await client.execute(uri: "/v1/queues", method: .get, headers: headers(token)) { $0.status }
            #expect(read == .ok)
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: headers(token)) { $0.status }
            #expect(metrics == .ok)
            let enqueue = try await client.execute(
                uri: "/v1/jobs", method: .post, headers: headers(token), body: ByteBuffer(string: #"{"task":"echo","input":1}"#)
            ) { ($0.status, code($0)) }
            #expect(enqueue.0 == ([.producer, .admin].contains(role) ? .created : .forbidden))
            if enqueue.0 == .forbidden { #expect(enqueue.1 == "forbidden") }
            let cancel = try await client.execute(uri: "/v1/jobs/\(job.id.rawValue)/cancel", method: .post, headers: headers(token)) { $0.status }
            #expect(cancel == ([.operator, .admin].contains(role) ? .ok : .forbidden))
            let pause = try await client.execute(uri: "/v1/queues/default/pause", method: .post, headers: headers(token)) { $0.status }
            #expect(pause == ([.operator, .admin].contains(role) ? .ok : .forbidden))
            let purge = try await client.execute(uri: "/v1/queues/default/purge?state=failed", method: .post, headers: headers(token)) { $0.status }
            #expect(purge == ([.operator, .admin].contains(role) ? .ok : .forbidden))
            // The job was cancelled above by the roles that may: then it can be deleted.
            let delete = try await client.execute(uri: "/v1/jobs/\(job.id.rawValue)", method: .delete, headers: headers(token)) { $0.status }
            #expect(delete == ([.operator, .admin].contains(role) ? .noContent : .forbidden))
        }
    }

    @Test("no token or a wrong one is a 401 with WWW-Authenticate; public routes need none")
    func unauthenticated() async throws {
        try await withSecuredAPI { client, _ in
            for (token, challenge) in [(nil, #"Bearer realm="tern""#), ("nope", #"Bearer realm="tern", error="invalid_token""#)] {
                try await client.execute(uri: "/v1/queues", method: .get, headers: headers(token)) { response in
                    #expect(response.status == .unauthorized)
                    #expect(response.headers[.wwwAuthenticate] == challenge)
                    #expect(response.headers[.contentType] == "application/problem+json")
                    #expect(code(response) == "unauthorized")
                }
            }
            try await client.execute(uri: "/v1/jobs", method: .post, headers: headers(nil), body: ByteBuffer(string: "{}")) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/metrics", method: .get) { #expect($0.status == .unauthorized) }
            for path in ["/healthz", "/readyz", "/openapi.json", "/docs"] {
                try await client.execute(uri: path, method: .get) { #expect($0.status == .ok, "\(path)") }
                // Probes behind a proxy that adds its own credentials still answer.
                var basic = headers(nil)
                basic[.authorization] = "Basic dXNlcjpwYXNz"
                try await client.execute(uri: path, method: .get, headers: basic) { #expect($0.status == .ok, "\(path)") }
            }
            // "bearer" in any case, and a token without the scheme is refused.
            var lower = headers(nil)
            lower[.authorization] = "bearer t-reader"
            try await client.execute(uri: "/v1/queues", method: .get, headers: lower) { #expect($0.status == .ok) }
            var bare = headers(nil)
            bare[.authorization] = "t-reader"
            try await client.execute(uri: "/v1/queues", method: .get, headers: bare) { #expect($0.status == .unauthorized) }
        }
    }

    @Test("a producer limited to tasks and queues gets 403 outside them, per job in a batch")
    func limitedProducer() async throws {
        try await withSecuredAPI { client, broker in
            let token = headers("t-sleep-only")
            try await client.execute(uri: "/v1/jobs", method: .post, headers: token, body: ByteBuffer(string: #"{"task":"sleep","input":{"ms":1}}"#)) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/v1/jobs", method: .post, headers: token, body: ByteBuffer(string: #"{"task":"echo","input":1}"#)) {
                #expect($0.status == .forbidden)
                #expect(code($0) == "forbidden")
            }
            try await client.execute(
                uri: "/v1/jobs", method: .post, headers: token, body: ByteBuffer(string: #"{"task":"sleep","input":{"ms":1},"queue":"other"}"#)
            ) { #expect($0.status == .forbidden) }
            let batch = #"{"jobs":[{"task":"sleep","input":{"ms":1}},{"task":"echo","input":1}]}"#
            try await client.execute(uri: "/v1/jobs/batch", method: .post, headers: token, body: ByteBuffer(string: batch)) { response in
                #expect(response.status == .ok)
                let object = try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                #expect(object["enqueued"] as? Int == 1)
                let results = try #require(object["results"] as? [[String: Any]])
                #expect((results[1]["error"] as? [String: Any])?["status"] as? Int == 403)
            }
            // A workflow: every job must be within the token's tasks and queues; the pointer names the one that is not.
            let flow = #"{"chain": [{"task": "sleep", "input": {"ms": 1}}, {"task": "echo"}]}"#
            try await client.execute(uri: "/v1/workflows", method: .post, headers: token, body: ByteBuffer(string: flow)) { response in
                #expect(response.status == .forbidden)
                let object = try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                #expect((object["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/chain/1/task")
            }
            #expect(try await broker.stats(.default).waiting == 0, "nothing of the refused workflow was made")
        }
    }

    @Test("token digests: a configured SHA-256 matches its token only")
    func digests() {
        let digest = SHA256.digest(Array("secret-1".utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(AccessPolicy.Token(sha256Hex: digest, grant: TokenGrant(name: "x", role: .reader)) != nil)
        #expect(AccessPolicy.Token(sha256Hex: String(digest.dropLast()), grant: TokenGrant(name: "x", role: .reader)) == nil)
        #expect(AccessPolicy.Token(sha256Hex: String(repeating: "g", count: 64), grant: TokenGrant(name: "x", role: .reader)) == nil)
    }
}

@Suite("HTTP API: tokens replaced while it serves")
struct AccessReplacementTests {
    @Test("a replaced policy applies from the next request: a token taken out is a 401, its dashboard session ends, a new one works; turning authentication off is refused")
    func replace() async throws {
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        let grant = TokenGrant(name: "old", role: .admin)
        let api = APIContext(
            broker: MemoryJobBroker(), registry: registry, configuration: APIConfiguration(),
            access: .tokens([.init(secret: "t-old", grant: grant)]), checkReady: {})
        try await Application(router: buildRouter(api)).test(.router) { client in
            let login = try await client.execute(
                uri: "/ui/login", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"token":"t-old"}"#)
            ) { String(($0.headers[.setCookie] ?? "").split(separator: ";").first ?? "") }
            #expect(login.hasPrefix("tern_session="))
            func status(_ fields: HTTPFields) async throws -> HTTPResponse.Status {
                try await client.execute(uri: "/v1/queues", method: .get, headers: fields) { $0.status }
            }
            #expect(try await status(headers("t-old")) == .ok)
            #expect(try await status([.cookie: login]) == .ok)
            #expect(try await status(headers("t-new")) == .unauthorized)

            try api.accessControl.replace(with: .tokens([.init(secret: "t-new", grant: TokenGrant(name: "new", role: .reader))]))
            #expect(try await status(headers("t-old")) == .unauthorized)
            #expect(try await status([.cookie: login]) == .unauthorized)
            #expect(try await status(headers("t-new")) == .ok)
            #expect(api.access.tokenCount == 1)

            #expect(throws: AccessControlError.authenticationModeChanged) { try api.accessControl.replace(with: .none) }
            #expect(try await status(headers(nil)) == .unauthorized)
            #expect(try await status(headers("t-new")) == .ok)
        }
    }

    @Test("a stream ticket opens an event stream without the Authorization header, on GET of /events routes only")
    func streamTickets() async throws {
        try await withSecuredAPI { client, broker in
            // A finished job: its stream sends the whole job and ends.
            let id = try await broker.enqueue([EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions())])[0].id
            let job = try #require(try await broker.claim(queue: .default, limit: 1, worker: "w", lease: .seconds(30)).first)
            _ = try await broker.complete(job.lease, result: Data("1".utf8))
            let issued = try await client.execute(uri: "/v1/stream-tickets", method: .post, headers: headers("t-reader")) { response in
                #expect(response.status == .created)
                return try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            }
            #expect(issued["expires_in_seconds"] as? Int == 60 && issued["expires_at"] is String)
            let ticket = try #require(issued["ticket"] as? String)
            // A static token's ticket names the token only: its grant is looked up when the ticket is used.
            let signed = try #require(ticket.split(separator: ".").first)
            let payload = String(decoding: try #require(Base64URL.decode(signed)), as: UTF8.self)
            let named = String(decoding: try #require(Base64URL.decode(payload.split(separator: "|")[1])), as: UTF8.self)
            #expect(named == #"{"name":"r"}"#)
            let stream = try await client.execute(uri: "/v1/jobs/\(id.rawValue)/events?ticket=\(ticket)", method: .get) { response in
                #expect(response.status == .ok)
                return String(buffer: response.body)
            }
            #expect(stream.contains("event: job") && stream.contains(#""state":"succeeded""#), "\(stream)")
            // Not a credential for anything else.
            let other = try await client.execute(uri: "/v1/jobs/\(id.rawValue)?ticket=\(ticket)", method: .get) { $0.status }
            #expect(other == .unauthorized)
            let forged = try await client.execute(uri: "/v1/jobs/\(id.rawValue)/events?ticket=x\(ticket.dropFirst())", method: .get) { response in
                (response.status, String(buffer: response.body))
            }
            #expect(forged.0 == .unauthorized && forged.1.contains("stream ticket"), "\(forged.1)")
            let anonymous = try await client.execute(uri: "/v1/stream-tickets", method: .post, headers: headers(nil)) { $0.status }
            #expect(anonymous == .unauthorized)
        }
    }
}
