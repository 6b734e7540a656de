import Foundation
import ShopTasks
import Synchronization
import Tern
import TernTesting
import Testing

/// A mailer double: keeps what it was asked to send.
final class RecordingMailer: Mailer {
    let messages = Mutex<[String]>([])
    func send(to recipient: String, subject: String, body: String) async throws -> String {
        messages.withLock { $0.append("\(recipient) | \(subject) | \(body)") }
        return "test-\(messages.withLock { $0.count })"
    }
    func close() async throws {}
    var sent: [String] { messages.withLock { $0 } }
}

@Suite("Shop's tasks")
struct ShopTests {
    @Test("resize-image averages areas and keeps the aspect ratio")
    func resize() async throws {
        let tern = try TernTestHarness(Shop.self)
        let input = ResizeImage.Input(width: 4, height: 2, pixels: [0, 10, 20, 30, 40, 50, 60, 70], targetWidth: 2)
        let output = try await tern.run(ResizeImage.self, input)
        #expect(output == .init(width: 2, height: 1, pixels: [25, 45]))
        await #expect(throws: PermanentError.self) {
            try await tern.run(ResizeImage.self, .init(width: 2, height: 2, pixels: [1], targetWidth: 1))
        }
    }

    @Test("import-catalog reports progress and refuses bad products")
    func importCatalog() async throws {
        let tern = try TernTestHarness(Shop.self)
        let products = (1...20).map { ImportCatalog.Product(sku: "sku-\($0)", name: $0 == 7 ? "" : "Product \($0)", priceCents: 100 * $0) }
        let output = try await tern.run(ImportCatalog.self, .init(products: products))
        #expect(output == .init(accepted: 19, refused: ["sku-7"]))
        #expect(tern.progress.count == 10)
        #expect(tern.progress.last?.value == 1.0)
        #expect(tern.progress.last?.message == "20 of 20 products")
    }

    @Test("checkout code enqueues an invoice on the mail queue; draining sends it through the mailer double")
    func invoiceThroughTheBroker() async throws {
        let mailer = RecordingMailer()
        let tern = try TernTestHarness(Shop.self) { dependencies in
            dependencies.register((any Mailer).self, value: mailer)
        }
        // The code under test: whatever in the app enqueues an invoice.
        _ = try await tern.client.enqueue(SendInvoice.self, .init(order: 42, email: "ada@example.com", totalCents: 1999))
        let jobs = try await tern.enqueued(SendInvoice.self)
        #expect(jobs.map(\.input) == [.init(order: 42, email: "ada@example.com", totalCents: 1999)])
        #expect(jobs.first?.queue == "mail")
        #expect(mailer.sent.isEmpty)
        let report = try await tern.drain()
        #expect(report.succeeded == 1)
        #expect(mailer.sent == ["ada@example.com | Invoice for order 42 | Total: 19.99 EUR"])
    }

    @Test("an invoice enqueued for a storefront carries it in a header to the worker, which names it in the subject")
    func storefront() async throws {
        let mailer = RecordingMailer()
        let tern = try TernTestHarness(Shop.self) { $0.register((any Mailer).self, value: mailer) }
        let handle = try await Storefront.$current.withValue("eu") {
            try await tern.client.enqueue(SendInvoice.self, .init(order: 5, email: "ada@example.com", totalCents: 250))
        }
        #expect(try await handle.status().headers == ["storefront": "eu"])
        #expect(try await tern.drain().succeeded == 1)
        #expect(mailer.sent == ["ada@example.com | Invoice for order 5 (eu store) | Total: 2.50 EUR"])
    }

    @Test("one invoice per order at a time: a second enqueue answers the waiting job")
    func oneInvoicePerOrder() async throws {
        let mailer = RecordingMailer()
        let tern = try TernTestHarness(Shop.self) { $0.register((any Mailer).self, value: mailer) }
        let first = try await tern.client.enqueue(SendInvoice.self, .init(order: 7, email: "ada@example.com", totalCents: 100))
        let again = try await tern.client.enqueue(SendInvoice.self, .init(order: 7, email: "bob@example.com", totalCents: 100))
        #expect(again.id == first.id && again.receipt?.duplicate == true)
        #expect(try await tern.enqueued(SendInvoice.self).count == 1)
        #expect(try await tern.drain().succeeded == 1)
        #expect(mailer.sent == ["ada@example.com | Invoice for order 7 | Total: 1.00 EUR"])
        let later = try await tern.client.enqueue(SendInvoice.self, .init(order: 7, email: "bob@example.com", totalCents: 100))
        #expect(later.receipt?.created == true, "once the invoice was sent, the order's key is free")
    }

    @Test("a gallery is a chord: every image resized, then one build-gallery with the thumbnails in order")
    func galleryChord() async throws {
        let tern = try TernTestHarness(Shop.self) { $0.register((any Mailer).self, value: RecordingMailer()) }
        let images = [4, 8, 6].map { width in
            ResizeImage.Input(width: width, height: 2, pixels: Array(repeating: 100, count: width * 2), targetWidth: width / 2)
        }
        let gallery = try await tern.client.enqueue(.chord(images.map { ResizeImage.job($0) }, then: BuildGallery.self))
        #expect(try await gallery.status().jobs.map(\.state) == [.queued, .queued, .queued, .waiting])
        let report = try await tern.drain()
        #expect(report.succeeded == 4)
        let layout = try await gallery.result(timeout: .seconds(5))
        #expect(layout == BuildGallery.Output(images: 3, width: 9, height: 1, offsets: [0, 2, 6]))
        #expect(try await gallery.status().state == .succeeded)
    }

    @Test("a bad address fails the invoice at once, without retries")
    func badAddress() async throws {
        let tern = try TernTestHarness(Shop.self) { $0.register((any Mailer).self, value: RecordingMailer()) }
        let handle = try await tern.client.enqueue(SendInvoice.self, .init(order: 1, email: "nobody", totalCents: 1))
        let report = try await tern.drain()
        #expect(report == .init(succeeded: 0, retried: 0, failed: 1))
        let record = try await tern.broker.job(handle.id)
        #expect(record?.state == .failed && record?.attempts == 1 && record?.error == "not an email address: nobody")
    }
}
