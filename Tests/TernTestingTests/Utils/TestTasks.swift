import Foundation
import Logging
import Synchronization
import Tern

/// What the tests' tasks send through: a protocol, so a test can swap in a double.
protocol Mailer: Sendable {
    func send(to: String, subject: String) async throws
}

/// A mailer double that keeps what it was asked to send.
final class RecordingMailer: Mailer {
    let sent = Mutex<[String]>([])
    func send(to: String, subject: String) async throws { sent.withLock { $0.append("\(to): \(subject)") } }
    var messages: [String] { sent.withLock { $0 } }
}

/// Counts how often a resource was made and closed, in order.
final class Ledger: Sendable {
    let events = Mutex<[String]>([])
    func note(_ event: String) { events.withLock { $0.append(event) } }
    var all: [String] { events.withLock { $0 } }
}

/// `send-invoice`: mails an invoice through the declared mailer, reporting progress.
struct SendInvoice: TernTask {
    struct Input: Codable, Sendable, Equatable {
        var order: Int
        var email: String
    }
    struct Output: Codable, Sendable, Equatable { var sent: Bool }
    static let name = "send-invoice"
    static let options = TaskOptions(queue: "mail", priority: 7, maxAttempts: 4)
    func run(_ input: Input, context: JobContext) async throws -> Output {
        let mailer = try await context.dependency((any Mailer).self)
        try await context.progress(0.5, "rendered")
        try await mailer.send(to: input.email, subject: "Invoice \(input.order)")
        context.logger.info("invoice sent")
        return Output(sent: true)
    }
}

/// `checkout`: enqueues an invoice for its order: a job that enqueues another.
struct Checkout: TernTask {
    struct Input: Codable, Sendable { var order: Int }
    typealias Output = String
    static let name = "checkout"
    func run(_ input: Input, context: JobContext) async throws -> String {
        let client = try await context.dependency(TernClient.self)
        let handle = try await client.enqueue(SendInvoice.self, .init(order: input.order, email: "buyer@example.com"))
        return "\(handle.id)"
    }
}

/// `wobbly`: fails until its attempt reaches `succeedOn`.
struct Wobbly: TernTask {
    struct Input: Codable, Sendable { var succeedOn: Int }
    typealias Output = Int
    static let name = "wobbly"
    static let options = TaskOptions(maxAttempts: 3, retryBackoff: .fixed(.seconds(10)))
    struct Wobble: Error, CustomStringConvertible { var description: String { "wobble" } }
    func run(_ input: Input, context: JobContext) async throws -> Int {
        guard context.attempt >= input.succeedOn else { throw Wobble() }
        return context.attempt
    }
}

/// The tests' application.
struct Shop: TernApplication {
    static func tasks(_ tasks: inout TaskRegistry, _ dependencies: inout Dependencies) throws {
        try tasks.register(SendInvoice.self)
        try tasks.register(Checkout.self)
        try tasks.register(Wobbly.self)
        dependencies.register((any Mailer).self) { RecordingMailer() }
    }
}

/// A log handler that keeps every message with its merged metadata.
struct CapturingLogHandler: LogHandler {
    final class Store: Sendable {
        let entries = Mutex<[(message: String, metadata: [String: String])]>([])
        var all: [(message: String, metadata: [String: String])] { entries.withLock { $0 } }
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        for (key, value) in event.metadata ?? [:] { merged[key] = value }
        let flat = merged.mapValues { "\($0)" }
        store.entries.withLock { $0.append((event.message.description, flat)) }
    }
}
