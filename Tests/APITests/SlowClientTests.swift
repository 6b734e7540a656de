import API
import Broker
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Tasks
import TernCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection to 127.0.0.1:`port` whose reads and writes give up after `timeoutSeconds`.
private func connectLocal(port: Int, timeoutSeconds: Int) throws -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw POSIXError(.EIO) }
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(descriptor)
        throw POSIXError(.ECONNREFUSED)
    }
    return descriptor
}

/// Sends `request` on a plain TCP connection to `port` and returns everything the server writes
/// until it closes the connection (or 20 s pass).
private func rawExchange(port: Int, _ request: [UInt8]) throws -> String {
    let descriptor = try connectLocal(port: port, timeoutSeconds: 20)
    defer { close(descriptor) }
    _ = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count <= 0 { break }
        received += buffer[0..<count]
    }
    return String(decoding: received, as: UTF8.self)
}

/// What a client that writes its whole request before reading saw: the status line of the answer,
/// or `reset`/`closed` if the connection ended without one.
private struct WholeBodyExchange: Sendable {
    var outcome: String
    var elapsed: Duration
}

/// Writes `head` and `bodyBytes` bytes of body on a new connection, all of it before reading (as
/// Python's urllib does), then reads one answer: its status line, or how the connection ended.
/// Writes and reads give up after 10 s each, so a server that stops reading shows as a slow exchange.
private func wholeBodyExchange(port: Int, head: String, bodyBytes: Int) throws -> WholeBodyExchange {
    let started = ContinuousClock.now
    let descriptor = try connectLocal(port: port, timeoutSeconds: 10)
    defer { close(descriptor) }
    var payload = Array(head.utf8)
    payload += [UInt8](repeating: UInt8(ascii: "a"), count: bodyBytes)
    var sent = 0
    while sent < payload.count {
        let count = payload[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if count <= 0 { break }  // the server closed or reset the connection, or the write timed out
        sent += count
    }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while !received.contains(UInt8(ascii: "\n")) {
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count < 0 { return WholeBodyExchange(outcome: errno == ECONNRESET ? "reset" : "timeout", elapsed: .now - started) }
        if count == 0 { return WholeBodyExchange(outcome: "closed", elapsed: .now - started) }
        received += buffer[0..<count]
    }
    let line = String(decoding: received, as: UTF8.self).split(separator: "\r\n").first.map(String.init) ?? ""
    return WholeBodyExchange(outcome: line, elapsed: .now - started)
}

/// Runs a blocking socket exchange on its own thread, off the threads Swift concurrency (and the
/// in-process server's handlers) need.
private func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

@Suite("HTTP API: slow and oversized clients")
struct SlowClientTests {
    @Test("a body that stops arriving is answered 408 body_timeout and the connection closed; an oversized head 400")
    func slowBodyAndLargeHead() async throws {
        var configuration = APIConfiguration()
        configuration.port = 0
        configuration.bodyTimeout = .seconds(1)
        configuration.maxHeaderBytes = 2048
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        let api = APIContext(broker: MemoryJobBroker(), registry: registry, configuration: configuration, access: .none, checkReady: {})
        try await buildApplication(api, logger: Logger(label: "slow")).test(.live) { client in
            let port = try #require(client.port)
            let start = ContinuousClock.now
            let partial = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"task\":"
            let answer = try await offPool { try rawExchange(port: port, Array(partial.utf8)) }
            #expect(answer.hasPrefix("HTTP/1.1 408"))
            #expect(answer.contains("body_timeout"))
            #expect(ContinuousClock.now - start < .seconds(15))
            let big = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: \(String(repeating: "a", count: 4096))\r\n\r\n"
            let refused = try await offPool { try rawExchange(port: port, Array(big.utf8)) }
            #expect(refused.hasPrefix("HTTP/1.1 400"))
        }
    }

    @Test("a refused body sent whole before reading gets its answer (or a reset) at once, whatever its size and headers")
    func refusedBodies() async throws {
        var configuration = APIConfiguration()
        configuration.port = 0
        let token = "tern_refused_" + UUID().uuidString
        let access = AccessPolicy.tokens([.init(secret: token, grant: TokenGrant(name: "producer", role: .producer))])
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        let api = APIContext(broker: MemoryJobBroker(), registry: registry, configuration: configuration, access: access, checkReady: {})
        try await buildApplication(api, logger: Logger(label: "refused")).test(.live) { client in
            let port = try #require(client.port)
            for size in [300 << 10, 4 << 20, 16 << 20] {
                for (line, extra, expected) in [
                    ("POST /v1/jobs", "Authorization: Bearer \(token)\r\n", "413"), ("POST /v1/jobs", "", "401"),
                    ("POST /v1/jobs", "Authorization: Bearer \(token)\r\nContent-Type: text/plain\r\n", "415"),
                    // A producer may not set limits: refused before the body is read, which is then dropped.
                    ("PUT /v1/queues/default/limits", "Authorization: Bearer \(token)\r\n", "403"),
                ] {
                    for connection in ["", "Connection: close\r\n", "Expect: 100-continue\r\n"] {
                        let type = extra.contains("Content-Type") ? "" : "Content-Type: application/json\r\n"
                        let head = "\(line) HTTP/1.1\r\nHost: x\r\n\(type)\(extra)\(connection)Content-Length: \(size)\r\n\r\n"
                        let exchange = try await offPool { try wholeBodyExchange(port: port, head: head, bodyBytes: size) }
                        let label = "\(line), \(size) bytes, \(expected), \(connection.isEmpty ? "keep-alive" : connection.trimmingCharacters(in: .whitespacesAndNewlines))"
                        // An answer, or a reset when the body is past what the server reads to drop it.
                        #expect(exchange.outcome.hasPrefix("HTTP/1.1 \(expected)") || exchange.outcome == "reset", "\(label): \(exchange.outcome)")
                        // Within 1 s on an idle machine; the bound is generous for a loaded one (a hang takes the full 10 s timeout).
                        #expect(exchange.elapsed < .seconds(5), "\(label): answered after \(exchange.elapsed)")
                    }
                }
                // The server still serves new connections.
                let health = try await offPool { try wholeBodyExchange(port: port, head: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", bodyBytes: 0) }
                #expect(health.outcome.hasPrefix("HTTP/1.1 200"), "\(health.outcome)")
            }
        }
    }
}
