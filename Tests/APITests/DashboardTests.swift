import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Tasks
import TernCore
import Testing

@testable import API

private let tokens: [String: TokenGrant] = [
    "t-reader": TokenGrant(name: "r", role: .reader),
    "t-operator": TokenGrant(name: "o", role: .operator),
]

private func dashboardAPI(
    tokens grants: [String: TokenGrant] = tokens, secret: [UInt8] = Array(repeating: 7, count: 32), dashboard: Bool = true,
    adjust: (inout APIConfiguration) -> Void = { _ in }
) throws -> APIContext {
    var registry = TaskRegistry()
    try SampleTasks.register(in: &registry, includingTestTasks: false)
    var configuration = APIConfiguration()
    configuration.sessionSecret = secret
    configuration.dashboard = dashboard
    adjust(&configuration)
    let access = AccessPolicy.tokens(grants.map { AccessPolicy.Token(secret: $0.key, grant: $0.value) })
    return APIContext(broker: MemoryJobBroker(), registry: registry, configuration: configuration, access: access, checkReady: {})
}

private func withDashboard(_ api: APIContext, _ test: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
    try await Application(router: buildRouter(api)).test(.router) { client in try await test(client) }
}

private struct Login {
    var cookie: String
    var setCookie: String
    var csrf: String
}

private func login(_ client: any TestClientProtocol, token: String) async throws -> Login {
    try await client.execute(
        uri: "/ui/login", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"token":"\#(token)"}"#)
    ) { response in
        #expect(response.status == .ok)
        let setCookie = response.headers[.setCookie] ?? ""
        let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        return Login(
            cookie: String(setCookie.split(separator: ";")[0]), setCookie: setCookie, csrf: object?["csrf"] as? String ?? "")
    }
}

private func code(_ response: TestResponse) -> String? {
    let object = try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
    return object?["code"] as? String
}

@Suite("Dashboard: pages, sessions, CSRF and roles")
struct DashboardTests {
    @Test("a stream ticket ends after 60 s, with its static token, or under another secret; a JWT's carries its grant")
    func streamTicketLife() {
        let secret = Array("secret-one".utf8)
        let reader = TokenGrant(name: "r", role: .reader)
        let policy = AccessPolicy.tokens([.init(secret: "t-reader", grant: reader)])
        let start = Date(timeIntervalSince1970: 1_000_000)
        let ticket = Substring(StreamTicket.issue(reader, ends: nil, secret: secret, now: start).value)
        #expect(StreamTicket.grant(ticket, secret: secret, policy: policy, now: start.addingTimeInterval(59))?.0 == reader)
        #expect(StreamTicket.grant(ticket, secret: secret, policy: policy, now: start.addingTimeInterval(60)) == nil)
        #expect(StreamTicket.grant(ticket, secret: Array("secret-two".utf8), policy: policy, now: start) == nil)
        #expect(StreamTicket.grant(ticket, secret: secret, policy: .tokens([]), now: start) == nil, "its token was removed")
        let jwt = TokenGrant(name: "jwt:alice", role: .producer, tasks: ["sleep"], queues: ["default"])
        let carried = Substring(StreamTicket.issue(jwt, ends: start.addingTimeInterval(600), secret: secret, now: start).value)
        #expect(StreamTicket.grant(carried, secret: secret, policy: .tokens([]), now: start)?.0 == jwt)
        // No longer than the JWT.
        let ending = Substring(StreamTicket.issue(jwt, ends: start.addingTimeInterval(10), secret: secret, now: start).value)
        #expect(StreamTicket.grant(ending, secret: secret, policy: .tokens([]), now: start.addingTimeInterval(10)) == nil)
        // Only the two event streams.
        for (path, accepted) in [
            ("/v1/jobs/01J.default/events", true), ("/v1/queues/default/events", true), ("/v1/queues/events", false),
            ("/v1/schedules/events", false), ("/v1/jobs/x/events/", false), ("/v1/jobs//events", false), ("/v1/workers/x/events", false),
        ] {
            #expect(StreamTicket.accepted(on: path) == accepted, "\(path)")
        }
        // A session cookie is not a ticket.
        let session = DashboardSession.start(tokenName: "r", lifetime: .seconds(600), now: start).cookieValue(secret: secret)
        #expect(StreamTicket.grant(Substring(session), secret: secret, policy: policy, now: start) == nil)
        #expect(DashboardSession.verify(ticket, secret: secret, now: start) == nil, "nor a ticket a session cookie")
    }

    @Test("the page and its assets come with a strict CSP, no framing, and no inline script or style")
    func securityHeaders() async throws {
        try await withDashboard(try dashboardAPI()) { client in
            for uri in ["/ui", "/ui/app.js", "/ui/app.css"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .ok)
                    let policy = response.headers[.contentSecurityPolicy] ?? ""
                    #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"))
                    #expect(!policy.contains("unsafe-inline"))
                    #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
                    #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
                }
            }
            let html = try await client.execute(uri: "/ui", method: .get) { String(buffer: $0.body) }
            #expect(html.contains(#"<script src="/ui/app.js" defer></script>"#))
            #expect(html.components(separatedBy: "<script").count == 2, "one script element, with a src")
            #expect(!html.contains("<style") && !html.contains(" style=") && !html.contains("onclick"))
            #expect(!DashboardAssets.script.contains("innerHTML"), "job data must never be parsed as markup")
        }
    }

    @Test("login sets an HttpOnly, SameSite=Strict session cookie that holds no token; a wrong token or body is refused")
    func loginCookie() async throws {
        try await withDashboard(try dashboardAPI()) { client in
            let session = try await login(client, token: "t-operator")
            #expect(session.setCookie.hasPrefix("tern_session="))
            #expect(session.setCookie.contains("HttpOnly") && session.setCookie.contains("SameSite=Strict"))
            #expect(session.setCookie.contains("Path=/") && session.setCookie.contains("Max-Age=28800"))
            #expect(!session.setCookie.contains("t-operator"))
            #expect(!session.csrf.isEmpty)
            let wrong = try await client.execute(
                uri: "/ui/login", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"token":"nope"}"#)
            ) { ($0.status, $0.headers[.setCookie]) }
            #expect(wrong.0 == .unauthorized && wrong.1 == nil)
            let form = try await client.execute(uri: "/ui/login", method: .post, body: ByteBuffer(string: "token=t-operator")) { code($0) }
            #expect(form == "unsupported_media_type", "a cross-site form cannot log a browser in")
            let malformed = try await client.execute(
                uri: "/ui/login", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"key":"t-operator"}"#)
            ) { code($0) }
            #expect(malformed == "invalid_login")
            let me = try await client.execute(uri: "/ui/session", method: .get, headers: [.cookie: session.cookie]) { response in
                try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
            }
            #expect(me?["name"] as? String == "o" && me?["role"] as? String == "operator" && me?["csrf"] as? String == session.csrf)
            let anonymous = try await client.execute(uri: "/ui/session", method: .get) { $0.status }
            #expect(anonymous == .unauthorized)
        }
    }

    @Test("a session reads like its token; its changes need the CSRF token and its role")
    func csrfAndRoles() async throws {
        let api = try dashboardAPI()
        // The queue must exist before it can be paused.
        _ = try await api.broker.enqueue([EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions())])
        try await withDashboard(api) { client in
            let operatorSession = try await login(client, token: "t-operator")
            let read = try await client.execute(uri: "/v1/queues", method: .get, headers: [.cookie: operatorSession.cookie]) { $0.status }
            #expect(read == .ok)
            let csrf = DashboardRoutes.csrfHeader
            for (headers, expected) in [
                ([.cookie: operatorSession.cookie] as HTTPFields, "csrf_failed"),
                ([.cookie: operatorSession.cookie, csrf: "wrong"] as HTTPFields, "csrf_failed"),
            ] {
                let refused = try await client.execute(uri: "/v1/queues/default/pause", method: .post, headers: headers) { ($0.status, code($0)) }
                #expect(refused.0 == .forbidden && refused.1 == expected)
            }
            let allowed = try await client.execute(
                uri: "/v1/queues/default/pause", method: .post, headers: [.cookie: operatorSession.cookie, csrf: operatorSession.csrf]
            ) { $0.status }
            #expect(allowed == .ok)
            #expect(try await api.broker.stats(.default).paused)
            let readerSession = try await login(client, token: "t-reader")
            let reader = try await client.execute(
                uri: "/v1/queues/default/pause", method: .post, headers: [.cookie: readerSession.cookie, csrf: readerSession.csrf]
            ) { ($0.status, code($0)) }
            #expect(reader.0 == .forbidden && reader.1 == "forbidden")
            // Another session's CSRF token does not fit.
            let crossed = try await client.execute(
                uri: "/v1/queues/default/pause", method: .post, headers: [.cookie: operatorSession.cookie, csrf: readerSession.csrf]
            ) { code($0) }
            #expect(crossed == "csrf_failed")
        }
    }

    @Test("a forged, expired or orphaned session is refused with 401 and asks to log in again")
    func invalidSessions() async throws {
        let secret = Array(repeating: UInt8(7), count: 32)
        let session = DashboardSession.start(tokenName: "o", lifetime: .seconds(3600))
        let value = session.cookieValue(secret: secret)
        #expect(DashboardSession.verify(Substring(value), secret: secret) == session)
        #expect(DashboardSession.verify(Substring(value), secret: Array(repeating: 8, count: 32)) == nil)
        #expect(DashboardSession.verify(Substring(value), secret: secret, now: Date().addingTimeInterval(3601)) == nil)
        var forged = Array(value.utf8)
        forged[3] = forged[3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(DashboardSession.verify(Substring(String(decoding: forged, as: UTF8.self)), secret: secret) == nil)
        let piped = DashboardSession.start(tokenName: "ops|eu", lifetime: .seconds(60))
        #expect(DashboardSession.verify(Substring(piped.cookieValue(secret: secret)), secret: secret)?.tokenName == "ops|eu")

        // The token "o" is gone from this server's configuration: its sessions end.
        let api = try dashboardAPI(tokens: ["t-reader": TokenGrant(name: "r", role: .reader)], secret: secret)
        try await withDashboard(api) { client in
            for cookie in ["tern_session=\(value)", "tern_session=\(value)x", "tern_session=garbage"] {
                let answer = try await client.execute(uri: "/v1/queues", method: .get, headers: [.cookie: cookie]) { response in
                    (response.status, String(buffer: response.body))
                }
                #expect(answer.0 == .unauthorized)
                #expect(answer.1.contains("log in again"))
            }
            let loggedOut = try await client.execute(uri: "/ui/logout", method: .post) { $0.headers[.setCookie] }
            #expect(loggedOut?.contains("Max-Age=0") == true)
        }
    }

    @Test("/ui/live: a hello saying whether changes are pushed, within the waiter cap, for sessions only")
    func liveStream() async throws {
        let api = try dashboardAPI { $0.maxEventStreamSeconds = 1 }
        try await withDashboard(api) { client in
            let anonymous = try await client.execute(uri: "/ui/live", method: .get) { $0.status }
            #expect(anonymous == .unauthorized)
            let session = try await login(client, token: "t-reader")
            let started = ContinuousClock.now
            let stream = try await client.execute(uri: "/ui/live", method: .get, headers: [.cookie: session.cookie]) { response in
                (response.status, response.headers[.contentType], String(buffer: response.body))
            }
            #expect(stream.0 == .ok && stream.1 == "text/event-stream")
            // The memory broker pushes nothing: the page keeps polling.
            #expect(stream.2.hasPrefix("event: hello\ndata: {\"pushed\":false}\n\n"))
            #expect(!stream.2.contains("event: change"))
            #expect(ContinuousClock.now - started < .seconds(30), "the stream ends after maxEventStreamSeconds")
        }
        let full = try dashboardAPI { $0.maxWaiters = 0 }
        try await withDashboard(full) { client in
            let session = try await login(client, token: "t-reader")
            let refused = try await client.execute(uri: "/ui/live", method: .get, headers: [.cookie: session.cookie]) { ($0.status, code($0)) }
            #expect(refused.0 == .serviceUnavailable && refused.1 == "too_many_waiters")
        }
    }

    @Test("api.secure_cookie: the session cookie carries Secure")
    func secureCookie() async throws {
        try await withDashboard(try dashboardAPI { $0.secureCookie = true }) { client in
            let session = try await login(client, token: "t-reader")
            #expect(session.setCookie.hasSuffix("; Secure"))
        }
        try await withDashboard(try dashboardAPI()) { client in
            let session = try await login(client, token: "t-reader")
            #expect(!session.setCookie.contains("Secure"), "off by default: the API serves plain HTTP")
        }
    }

    @Test("api.dashboard false: no /ui routes at all")
    func turnedOff() async throws {
        try await withDashboard(try dashboardAPI(dashboard: false)) { client in
            for (uri, method) in [("/ui", HTTPRequest.Method.get), ("/ui/app.js", .get), ("/ui/login", .post)] {
                let status = try await client.execute(uri: uri, method: method) { $0.status }
                #expect(status == .notFound)
            }
        }
    }
}
