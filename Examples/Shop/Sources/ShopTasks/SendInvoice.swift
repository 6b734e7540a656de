import Foundation
import Tern

/// `send-invoice`: mails an order's invoice through the process's ``Mailer``, a dependency. One
/// invoice per order at a time: a second enqueue for an order whose invoice waits or runs answers
/// that job (a unique key built from `order`). An invoice enqueued for a storefront
/// (``Storefront``) names it in its subject.
public struct SendInvoice: TernTask {
    public struct Input: Codable, Sendable, Equatable {
        public var order: Int
        public var email: String
        public var totalCents: Int

        public init(order: Int, email: String, totalCents: Int) {
            self.order = order
            self.email = email
            self.totalCents = totalCents
        }
    }

    public struct Output: Codable, Sendable, Equatable {
        public var messageID: String

        public init(messageID: String) { self.messageID = messageID }
    }

    public static let name = "send-invoice"
    public static let options = TaskOptions(queue: "mail", maxAttempts: 5, unique: .whileActive.keyed(by: "order"))

    public init() {}

    public func run(_ input: Input, context: JobContext) async throws -> Output {
        guard input.email.contains("@") else { throw PermanentError("not an email address: \(input.email)") }
        let mailer = try await context.dependency((any Mailer).self)
        let total = "\(input.totalCents / 100).\(String(format: "%02d", input.totalCents % 100))"
        let id = try await mailer.send(to: input.email, subject: "Invoice for order \(input.order)\(Storefront.current.map { " (\($0) store)" } ?? "")", body: "Total: \(total) EUR")
        context.logger.info("invoice sent", metadata: ["order": "\(input.order)"])
        return Output(messageID: id)
    }
}
