// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "tern",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TernCore", targets: ["TernCore"]),
        .library(name: "Broker", targets: ["Broker"]),
        .library(name: "Worker", targets: ["Worker"]),
        // The one entry point of an application: `TernApplication`, every command, `import Tern`.
        .library(name: "Tern", targets: ["Tern"]),
        // For users' tests of their tasks: run inline, assert what was enqueued, drain on a test clock.
        .library(name: "TernTesting", targets: ["TernTesting"]),
        .executable(name: "tern", targets: ["tern"]),
        .executable(name: "worker", targets: ["worker"]),
        .executable(name: "api", targets: ["api"]),
        .executable(name: "scheduler", targets: ["scheduler"]),
        .executable(name: "tern-bench", targets: ["tern-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // YAML for config/tern.yaml: the format operators expect for a job system's config.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // /metrics in the Prometheus text format.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        // TLS to Redis (rediss://): hiredis keeps the protocol, SwiftNIO and its TLS own the transport.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // Every long-running part is a Service; each command runs one ServiceGroup, which handles the signals.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // JWT bearer tokens for the API (HS256, RS256, ES256, JWKS): Vapor's maintained JWT library,
        // on the swift-crypto we already build; signature checks are not something to write by hand.
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        // Tracing: the API every Swift server library traces with (Hummingbird already uses it), and
        // OpenTelemetry's Swift SDK to export it over OTLP/HTTP only (no gRPC in the build).
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "TernCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Broker",
            dependencies: [
                "TernCore", "CHiredis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Worker",
            dependencies: [
                "TernCore", "Broker",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Scheduler",
            dependencies: [
                "TernCore", "Broker", .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "API",
            dependencies: [
                "TernCore", "Broker", "Scheduler",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "JWTKit", package: "jwt-kit"),
                // Fetches a JWKS from its URL.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "Tasks", dependencies: ["TernCore", "Tern"], swiftSettings: swiftSettings),
        .target(
            name: "Tern",
            dependencies: [
                "TernCore", "Broker", "Worker", "Scheduler", "API",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
                // The CLI's HTTP client: the Swift server ecosystem's own, already built for Hummingbird's tests.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TernTesting",
            dependencies: ["TernCore", "Broker", "Worker", "Tern", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "tern", dependencies: ["Tasks", "Tern"], swiftSettings: swiftSettings),
        .executableTarget(name: "worker", dependencies: ["Tasks", "Tern"], swiftSettings: swiftSettings),
        .executableTarget(name: "api", dependencies: ["Tasks", "Tern"], swiftSettings: swiftSettings),
        .executableTarget(name: "scheduler", dependencies: ["Tasks", "Tern"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "tern-bench",
            dependencies: [
                "Broker", "TernCore", "Worker", "Tasks", "TernTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "TernCoreTests", dependencies: ["TernCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "TernTestingTests",
            dependencies: ["TernTesting", "Tern", "TernCore", "Broker", "Worker", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WorkerTests",
            dependencies: [
                "Broker", "TernCore", "Worker", "Tasks", "TernTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SchedulerTests", dependencies: ["Scheduler", "TernCore", "Broker"], swiftSettings: swiftSettings),
        .testTarget(
            name: "APITests",
            dependencies: [
                "API", "Broker", "TernCore", "Tasks",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RedisTests",
            dependencies: [
                "Broker", "TernCore", "Worker", "Tasks", "API", "Scheduler", "TernTesting", "Tern",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
    ]
)
