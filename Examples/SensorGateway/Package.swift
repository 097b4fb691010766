// swift-tools-version:6.1
import PackageDescription

// An example daemon built on swift-uv-mqtt: subscribes to `sensors/#`, keeps the latest value
// per topic, and serves them and Prometheus metrics over HTTP. Its own package (depending on
// the library by path), so that the library's users and its CI's `make test` never build
// Hummingbird. Build: `swift build` here; test: `scripts/integration-test.sh`.
let package = Package(
    name: "SensorGateway",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Explicit name: the checkout's folder name differs between clones and worktrees.
        .package(name: "swift-uv-mqtt", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        .executableTarget(
            name: "SensorGateway",
            dependencies: [
                .product(name: "UVMQTT", package: "swift-uv-mqtt"),
                .product(name: "UVMQTTServiceLifecycle", package: "swift-uv-mqtt"),
                .product(name: "UVMQTTConfiguration", package: "swift-uv-mqtt"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
