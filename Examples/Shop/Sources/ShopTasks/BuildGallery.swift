import Tern

/// `build-gallery`: a chord's callback. Takes the thumbnails of a `resize-image` group, in the
/// order the images were given, and lays them out in one row: the gallery's size and pixel count.
///
/// ```swift
/// let gallery = try await tern.enqueue(.chord(images.map { ResizeImage.job($0) }, then: BuildGallery.self))
/// let layout = try await gallery.result()   // a BuildGallery.Output
/// ```
public struct BuildGallery: TernTask {
    /// The thumbnails, one per image, in order (the compiler checks this is `[ResizeImage.Output]`).
    public typealias Input = [ResizeImage.Output]

    public struct Output: Codable, Sendable, Equatable {
        public var images: Int
        public var width: Int
        public var height: Int
        /// Each thumbnail's left edge in the row.
        public var offsets: [Int]

        public init(images: Int, width: Int, height: Int, offsets: [Int]) {
            self.images = images
            self.width = width
            self.height = height
            self.offsets = offsets
        }
    }

    public static let name = "build-gallery"
    public static let options = TaskOptions(queue: "images")

    public init() {}

    public func run(_ input: Input, context: JobContext) async throws -> Output {
        var offsets: [Int] = []
        var width = 0
        for thumbnail in input {
            offsets.append(width)
            width += thumbnail.width
        }
        context.logger.info("gallery built", metadata: ["images": "\(input.count)"])
        return Output(images: input.count, width: width, height: input.map(\.height).max() ?? 0, offsets: offsets)
    }
}
