import Foundation
import Tern

/// The shop's application: its tasks and the resources they use.
public struct Shop: TernApplication {
    public static func tasks(_ tasks: inout TaskRegistry, _ dependencies: inout Dependencies) throws {
        try tasks.register(ResizeImage.self)
        try tasks.register(ImportCatalog.self)
        try tasks.register(SendInvoice.self)
        try tasks.register(BuildGallery.self)
        // Made once per worker process, on the first invoice; closed when the worker stops.
        let outbox = ProcessInfo.processInfo.environment["SHOP_OUTBOX"] ?? ".data/outbox"
        dependencies.register((any Mailer).self) {
            try OutboxMailer(directory: outbox)
        } shutdown: { mailer in
            try await mailer.close()
        }
    }

    /// Every job carries the storefront it was enqueued for (docs/tasks.md#headers-and-middleware).
    public static func middleware(_ middleware: inout Middleware) {
        middleware.enqueue.append(StorefrontMiddleware())
        middleware.execution.append(StorefrontMiddleware())
    }
}
