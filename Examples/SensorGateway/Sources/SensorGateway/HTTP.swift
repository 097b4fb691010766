import Foundation
import Hummingbird
import Logging
import Prometheus

/// `/latest` as JSON.
struct LatestResponse: ResponseEncodable {
    let topics: [String: LatestValues.Entry]
}

/// The HTTP side: `/latest` (all topics), `/latest/<topic>` (one, `404` when unknown),
/// `/metrics` (Prometheus text format), `/healthz` (200 while the MQTT client is connected,
/// 503 otherwise).
func makeRouter(latest: LatestValues, registry: PrometheusCollectorRegistry, isConnected: @escaping @Sendable () -> Bool) -> Router<BasicRequestContext> {
    let router = Router()
    router.get("latest") { _, _ in
        LatestResponse(topics: latest.snapshot)
    }
    router.get("latest/**") { request, context -> Response in
        let topic = context.parameters.getCatchAll().joined(separator: "/")
        guard let entry = latest.snapshot[topic] else {
            return Response(status: .notFound)
        }
        let body = try JSONEncoder().encode(entry)
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
    router.get("metrics") { _, _ -> Response in
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
    }
    router.get("healthz") { _, _ -> HTTPResponse.Status in
        isConnected() ? .ok : .serviceUnavailable
    }
    return router
}
