// swift-tools-version:6.1
import PackageDescription

// Benchmarks live in their own package so that normal builds and CI never fetch or build the
// benchmark harness. Run: `make bench-core` from the repository root.
let package = Package(
    name: "swift-uv-mqtt-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Explicit name: the checkout's folder name differs between clones and worktrees.
        .package(name: "swift-uv-mqtt", path: ".."),
        // The metrics-on rows of ClientThroughputBenchmarks (a lock-free factory of their own).
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ProtocolCoreBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MQTTProtocol", package: "swift-uv-mqtt"),
                .product(name: "RingBuffers", package: "swift-uv-mqtt"),
            ],
            path: "Benchmarks/ProtocolCoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // End-to-end client throughput against an in-process fake broker (`make bench-client`).
        .executableTarget(
            name: "ClientThroughputBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "UVMQTT", package: "swift-uv-mqtt"),
                .product(name: "MQTTProtocol", package: "swift-uv-mqtt"),
                .product(name: "UVReactor", package: "swift-uv-mqtt"),
                .product(name: "RingBuffers", package: "swift-uv-mqtt"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Benchmarks/ClientThroughputBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
