import Tern

/// `import-catalog`: checks a batch of products, reporting progress as it goes; the result counts
/// the products accepted and lists the SKUs refused.
public struct ImportCatalog: TernTask {
    public struct Product: Codable, Sendable {
        public var sku: String
        public var name: String
        public var priceCents: Int

        public init(sku: String, name: String, priceCents: Int) {
            self.sku = sku
            self.name = name
            self.priceCents = priceCents
        }
    }

    public struct Input: Codable, Sendable {
        public var products: [Product]
        public init(products: [Product]) { self.products = products }
    }

    public struct Output: Codable, Sendable, Equatable {
        public var accepted: Int
        public var refused: [String]

        public init(accepted: Int, refused: [String]) {
            self.accepted = accepted
            self.refused = refused
        }
    }

    public static let name = "import-catalog"

    public init() {}

    public func run(_ input: Input, context: JobContext) async throws -> Output {
        var accepted = 0
        var refused: [String] = []
        for (index, product) in input.products.enumerated() {
            try Task.checkCancellation()
            if product.sku.isEmpty || product.name.isEmpty || product.priceCents <= 0 {
                refused.append(product.sku)
            } else {
                accepted += 1
            }
            let done = index + 1
            if done % max(1, input.products.count / 10) == 0 || done == input.products.count {
                try await context.progress(Double(done) / Double(input.products.count), "\(done) of \(input.products.count) products")
            }
        }
        return Output(accepted: accepted, refused: refused)
    }
}
