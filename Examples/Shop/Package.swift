// swift-tools-version: 6.1
// An application with its own tasks, built on Tern's one entry point (`TernApplication`).
// It depends on Tern by path here; your package would use
// `.package(url: "https://github.com/<owner>/tern", from: "<version>")` instead.
import PackageDescription

let package = Package(
    name: "shop",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "tern", path: "../.."),
    ],
    targets: [
        // The tasks and the application: a library, so the tests can use them.
        .target(name: "ShopTasks", dependencies: [.product(name: "Tern", package: "tern")]),
        // `swift run shop worker|api|scheduler|dev|…`: every part of Tern, for these tasks.
        .executableTarget(name: "shop", dependencies: ["ShopTasks"]),
        .testTarget(
            name: "ShopTests",
            dependencies: ["ShopTasks", .product(name: "TernTesting", package: "tern")]
        ),
    ]
)
