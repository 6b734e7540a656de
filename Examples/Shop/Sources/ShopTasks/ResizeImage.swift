import Tern

/// `resize-image`: CPU work on its input. Scales a grayscale image (row-major pixels, 0–255) to
/// `width` columns with an area-averaging filter, keeping the aspect ratio.
public struct ResizeImage: TernTask {
    public struct Input: Codable, Sendable {
        public var width: Int
        public var height: Int
        public var pixels: [Int]
        public var targetWidth: Int

        public init(width: Int, height: Int, pixels: [Int], targetWidth: Int) {
            self.width = width
            self.height = height
            self.pixels = pixels
            self.targetWidth = targetWidth
        }
    }

    public struct Output: Codable, Sendable, Equatable {
        public var width: Int
        public var height: Int
        public var pixels: [Int]

        public init(width: Int, height: Int, pixels: [Int]) {
            self.width = width
            self.height = height
            self.pixels = pixels
        }
    }

    public static let name = "resize-image"
    public static let options = TaskOptions(queue: "images", maxAttempts: 2, softTimeLimit: .seconds(60))

    public init() {}

    public func run(_ input: Input, context: JobContext) async throws -> Output {
        guard input.width > 0, input.height > 0, input.pixels.count == input.width * input.height else {
            throw PermanentError("pixels must hold width × height values")
        }
        guard (1...input.width).contains(input.targetWidth) else {
            throw PermanentError("targetWidth must be 1...\(input.width)")
        }
        let targetHeight = max(1, input.height * input.targetWidth / input.width)
        var pixels: [Int] = []
        pixels.reserveCapacity(input.targetWidth * targetHeight)
        for row in 0..<targetHeight {
            let top = row * input.height / targetHeight, bottom = max(top + 1, (row + 1) * input.height / targetHeight)
            for column in 0..<input.targetWidth {
                let left = column * input.width / input.targetWidth
                let right = max(left + 1, (column + 1) * input.width / input.targetWidth)
                var sum = 0
                for y in top..<bottom {
                    for x in left..<right { sum += input.pixels[y * input.width + x] }
                }
                pixels.append(sum / ((bottom - top) * (right - left)))
            }
        }
        context.logger.info("image resized", metadata: ["from": "\(input.width)x\(input.height)", "to": "\(input.targetWidth)x\(targetHeight)"])
        return Output(width: input.targetWidth, height: targetHeight, pixels: pixels)
    }
}
