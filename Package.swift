// swift-tools-version:6.1
import PackageDescription
import class Foundation.ProcessInfo

// Strict concurrency is the default in the Swift 6 language mode; warnings are errors in CI
// through `make` (see Makefile), not here, so that dependants are never broken by a new warning.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-uv-mqtt",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "UVMQTT", targets: ["UVMQTT"]),
        .library(name: "UVMQTTServiceLifecycle", targets: ["UVMQTTServiceLifecycle"]),
        .library(name: "UVMQTTConfiguration", targets: ["UVMQTTConfiguration"]),
        .library(name: "MQTTProtocol", targets: ["MQTTProtocol"]),
        .library(name: "UVReactor", targets: ["UVReactor"]),
        .library(name: "RingBuffers", targets: ["RingBuffers"]),
        .executable(name: "mqtt", targets: ["MQTTTool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        // Opt-in client metrics (`MQTTClientOptions.metrics`): CoreMetrics only, no global state.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        // `MQTTClientOptions(config:)` in the UVMQTTConfiguration product (JSON is its default trait).
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.0.0", traits: [.defaults, "YAML"]),
        // `mqtt bench --latency` percentiles (the tool only).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    ],
    targets: [
        // MARK: C libraries
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // Static inline wrappers for the OpenSSL macros Swift cannot import.
        .target(
            name: "CUVShims",
            dependencies: ["COpenSSL"]
        ),

        // MARK: Pure code (no sockets, no clocks)
        .target(
            name: "RingBuffers",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MQTTProtocol",
            dependencies: ["RingBuffers"],
            swiftSettings: swiftSettings
        ),

        // MARK: I/O
        .target(
            name: "UVReactor",
            dependencies: ["CLibUV", "COpenSSL", "CUVShims", "RingBuffers"],
            swiftSettings: swiftSettings
        ),

        // MARK: Public client
        .target(
            name: "UVMQTT",
            dependencies: [
                "MQTTProtocol", "UVReactor", "RingBuffers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // swift-configuration integration (`MQTTClientOptions(config:)`), a separate product
        // (as the service-lifecycle one) so that users of UVMQTT alone never build it or Yams.
        .target(
            name: "UVMQTTConfiguration",
            dependencies: [
                "UVMQTT",
                .product(name: "Configuration", package: "swift-configuration"),
            ],
            swiftSettings: swiftSettings
        ),

        // swift-service-lifecycle integration (`MQTTClientService`), a separate product so that
        // users of UVMQTT alone do not build it.
        .target(
            name: "UVMQTTServiceLifecycle",
            dependencies: [
                "UVMQTT",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Demo (`make demo`): the README's first example against a local broker.
        .executableTarget(
            name: "Demo",
            dependencies: ["UVMQTT"],
            swiftSettings: swiftSettings
        ),

        // MARK: Command-line tool `mqtt` (pub, sub, bench), public API only.
        .executableTarget(
            name: "MQTTTool",
            dependencies: [
                "UVMQTT", "MQTTProtocol", "UVReactor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        // Shared test harness (child processes that cannot outlive the test process, free
        // loopback ports, TLS fixtures made with `openssl`, mosquitto and s_server): a plain
        // target, depended on by the test targets only, never by a product.
        .target(
            name: "MQTTTestSupport",
            dependencies: ["CLibUV"],
            path: "Tests/MQTTTestSupport",
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MQTTProtocolTests",
            dependencies: ["MQTTProtocol", "RingBuffers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UVReactorTests",
            dependencies: ["UVReactor", "RingBuffers", "MQTTTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UVMQTTTests",
            dependencies: [
                "UVMQTT", "MQTTProtocol", "UVReactor", "RingBuffers", "MQTTTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UVMQTTServiceLifecycleTests",
            dependencies: [
                "UVMQTTServiceLifecycle", "UVMQTT", "MQTTTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UVMQTTConfigurationTests",
            dependencies: [
                "UVMQTTConfiguration", "UVMQTT",
                .product(name: "Configuration", package: "swift-configuration"),
            ],
            swiftSettings: swiftSettings
        ),
        // Runs the built `mqtt` executable against mosquitto (build it first: `make test` does).
        .testTarget(
            name: "MQTTToolTests",
            dependencies: ["MQTTTool", "MQTTTestSupport"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

// `make docs` (UVMQTT_DOCS=1): swift-docc-plugin's `generate-documentation`, only then, so that
// dependants and ordinary builds never resolve or build the plugin.
if ProcessInfo.processInfo.environment["UVMQTT_DOCS"] != nil {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"))
}
