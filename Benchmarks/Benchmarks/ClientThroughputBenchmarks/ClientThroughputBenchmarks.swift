import Benchmark
import CoreMetrics
import MQTTProtocol
import RingBuffers
import Synchronization
import UVMQTT
import UVReactor
#if canImport(Glibc)
import Glibc
#endif

// End-to-end client throughput against an in-process fake broker: the public NodeMCU-style
// client (its own event loop thread) publishes over loopback TCP to a broker on a second loop
// thread that decodes every PUBLISH (and answers PUBACK for QoS 1). One scaled iteration is one
// message, so the throughput column reads as messages per second and the malloc count divided
// by the iterations is the allocations per message (goal: 0; the count covers both threads).
//
// Publishing follows `mqtt bench pub`: from the client's loop thread, at most 1,000 (QoS 0) or
// 100 (QoS 1, refilled at 50) messages not yet done.

/// Runs `body` on `loop` and waits for its result (set-up only; polls, bounded to 10 s).
func onLoop<T: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () -> T) -> T {
    let result = Mutex<T?>(nil)
    loop.execute { let value = body(); result.withLock { $0 = value } }
    for _ in 0..<100_000 {
        if let value = result.withLock({ $0 }) { return value }
        usleep(100)
    }
    fatalError("event loop did not answer within 10 s")
}

/// A broker for the benchmarks' clients (one publishes at a time): CONNACK, SUBACK, counts PUBLISH, PUBACK for QoS 1.
final class InProcessBroker: @unchecked Sendable {
    let loop = EventLoop()
    let published = Atomic<Int>(0)
    private(set) var port = 0
    private var listener: TCPListener?
    /// One decoder per connection: the idle clients of the other benchmarks send PINGREQs
    /// while one publishes, and a shared decoder would mix their frames.
    private final class Session { var decoder = MQTTDecoder() }
    private var count = 0

    init() {
        loop.start()
        port = onLoop(loop) { [self] in
            do {
                let listener = try loop.listen(host: "127.0.0.1", port: 0) { [self] connection in
                    let session = Session()
                    connection.onRead = { [self] c in serve(c, session) }
                }
                self.listener = listener
                return listener.port
            } catch {
                fatalError("listen failed: \(error)")
            }
        }
    }

    private func serve(_ c: TCPConnection, _ session: Session) {
        do {
            while let packet = try session.decoder.next(in: c.inbound) {
                switch packet {
                case .publish(let view):
                    count &+= 1
                    if view.qos == .atLeastOnce { try MQTTEncoder.encodeAck(.puback, packetID: view.packetID, into: c.outbound) }
                case .connect:
                    try MQTTEncoder.encodeConnAck(ConnAckPacket(), version: .v3_1_1, into: c.outbound)
                case .subscribe(let s):
                    try MQTTEncoder.encodeSubAck(SubAckPacket(packetID: s.packetID, returnCodes: s.subscriptions.map { .granted($0.qos) }),
                                                 into: c.outbound)
                case .pingreq:
                    MQTTEncoder.encodePingResp(into: c.outbound)
                case .disconnect:
                    c.close()
                default:
                    break
                }
                session.decoder.releaseLastFrame(in: c.inbound)
            }
        } catch {
            fatalError("fake broker: \(error)")
        }
        c.flush()
        published.store(count, ordering: .releasing)
    }
}

/// Publishes from the client's loop thread with the bench driver's window.
final class Publisher: @unchecked Sendable {
    let client: NodeMCUClient
    let payload: [UInt8]
    let qos: QoS
    let window: Int
    // Loop thread only.
    private var remaining = 0
    private var outstanding = 0
    private var scheduled = false

    init(port: Int, payloadSize: Int, qos: QoS, metrics: (any MetricsFactory)? = nil) {
        self.payload = [UInt8](repeating: UInt8(ascii: "x"), count: payloadSize)
        self.qos = qos
        self.window = qos == .atMostOnce ? 1_000 : 100
        var options = MQTTClientOptions(clientID: "bench-\(qos.rawValue)-\(payloadSize)\(metrics == nil ? "" : "-m")", inflightWindow: 100)
        options.metrics = metrics.map { MQTTMetrics(factory: $0) }
        client = NodeMCUClient(options: options)
        let connected = Atomic<Bool>(false)
        // A fast QoS 0 publisher follows the connection's writability: above the high-water mark
        // it stops and resumes when the bytes drained (a publish without completion that finds
        // the send queue full would be dropped).
        client.on(.writable) { [self] _, writable in
            if writable && remaining > 0 && !scheduled { schedule() }
        }
        client.on(.puback) { [self] _ in
            outstanding -= 1
            if remaining > 0 && !scheduled && outstanding <= window / 2 { schedule() }
        }
        try! client.connect("127.0.0.1", port: port, connected: { _ in connected.store(true, ordering: .releasing) })
        for _ in 0..<100_000 where !connected.load(ordering: .acquiring) { usleep(100) }
        precondition(connected.load(ordering: .acquiring), "client did not connect")
    }

    /// Starts publishing `count` messages (returns at once).
    func start(_ count: Int) {
        client.eventLoop.execute { [self] in
            remaining = count
            pump()
        }
    }

    private func schedule() {
        scheduled = true
        client.eventLoop.execute { [self] in pump() }
    }

    private func pump() {
        scheduled = false
        if qos == .atMostOnce {
            // Done when written: one batch per loop turn, written at the end of the turn.
            var batch = min(window, remaining)
            while batch > 0 && client.isWritable {
                try! client.publish("bench/t", payload, qos: qos)
                batch -= 1
                remaining -= 1
            }
            // Not writable: the `writable` event schedules the next batch.
            if remaining > 0 && client.isWritable { schedule() }
        } else {
            while remaining > 0 && outstanding < window {
                outstanding += 1
                remaining -= 1
                try! client.publish("bench/t", payload, qos: qos)
            }
        }
    }
}

/// A lock-free metrics backend (an atomic per counter, the last value per recorder and timer),
/// standing in for a real one such as swift-prometheus (whose counters are atomics too): the
/// metrics-on rows measure the client's own cost, not a backend's.
final class AtomicMetricsFactory: MetricsFactory {
    final class Handler: CounterHandler, RecorderHandler, TimerHandler, MeterHandler {
        let value = Atomic<Int64>(0)
        func increment(by amount: Int64) { value.wrappingAdd(amount, ordering: .relaxed) }
        func reset() { value.store(0, ordering: .relaxed) }
        func record(_ value: Int64) { self.value.store(value, ordering: .relaxed) }
        func record(_ value: Double) { self.value.store(Int64(value), ordering: .relaxed) }
        func recordNanoseconds(_ duration: Int64) { value.store(duration, ordering: .relaxed) }
        func set(_ value: Int64) { self.value.store(value, ordering: .relaxed) }
        func set(_ value: Double) { self.value.store(Int64(value), ordering: .relaxed) }
        func increment(by amount: Double) { value.wrappingAdd(Int64(amount), ordering: .relaxed) }
        func decrement(by amount: Double) { value.wrappingSubtract(Int64(amount), ordering: .relaxed) }
    }
    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { Handler() }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { Handler() }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { Handler() }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { Handler() }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
}

let broker = InProcessBroker()

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .cpuTotal, .mallocCountTotal],
        scalingFactor: .mega,
        maxDuration: .seconds(5),
        maxIterations: 5
    )
    let cases: [(QoS, Int, Bool)] = [(.atMostOnce, 16, false), (.atMostOnce, 256, false), (.atLeastOnce, 16, false),
                                     (.atMostOnce, 16, true), (.atLeastOnce, 16, true)]
    for (qos, payloadSize, withMetrics) in cases {
        let publisher = Publisher(port: broker.port, payloadSize: payloadSize, qos: qos,
                                  metrics: withMetrics ? AtomicMetricsFactory() : nil)
        // One scaled iteration = one message (1,000,000 per sample): the starred rows are per message.
        let suffix = withMetrics ? " (metrics on)" : ""
        Benchmark("E2E publish QoS\(qos.rawValue) \(payloadSize)B -> in-process broker\(suffix)") { benchmark in
            let count = benchmark.scaledIterations.count
            let target = broker.published.load(ordering: .acquiring) + count
            benchmark.startMeasurement()
            publisher.start(count)
            var waited = 0
            while broker.published.load(ordering: .acquiring) < target {
                usleep(50)
                waited += 1
                precondition(waited < 1_200_000, "broker did not receive every message within 60 s")
            }
            benchmark.stopMeasurement()
        }
    }
}
