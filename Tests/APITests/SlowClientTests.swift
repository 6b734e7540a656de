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

/// Sends `request` on a plain TCP connection to `port` and returns everything the server writes
/// until it closes the connection (or 20 s pass).
private func rawExchange(port: Int, _ request: [UInt8]) throws -> String {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw POSIXError(.EIO) }
    defer { close(descriptor) }
    var timeout = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
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
}
