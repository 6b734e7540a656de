import Foundation
import Synchronization

/// Sends mail. A protocol, so that tests swap in a double.
public protocol Mailer: Sendable {
    /// Sends one message and returns its id.
    func send(to recipient: String, subject: String, body: String) async throws -> String
    /// Flushes and releases what the mailer holds.
    func close() async throws
}

/// A mailer that writes each message to a file in an outbox folder (a stand-in for SMTP that a
/// newcomer can watch work): `<directory>/<id>.eml`.
public final class OutboxMailer: Mailer {
    private let directory: String
    private let sent = Mutex(0)

    /// Creates the folder if needed.
    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
    }

    public func send(to recipient: String, subject: String, body: String) async throws -> String {
        let id = UUID().uuidString.lowercased()
        let message = "To: \(recipient)\r\nSubject: \(subject)\r\n\r\n\(body)\r\n"
        try Data(message.utf8).write(to: URL(fileURLWithPath: "\(directory)/\(id).eml"), options: .atomic)
        sent.withLock { $0 += 1 }
        return id
    }

    public func close() async throws {
        let count = sent.withLock { $0 }
        FileHandle.standardError.write(Data("shop: outbox mailer closed after \(count) message(s)\n".utf8))
    }
}
