import Benchmark
import MQTTProtocol
import RingBuffers

// Loops run over `0..<scaledIterations.count`: iterating `scaledIterations` itself goes through
// unspecialised generic code that costs more than encoding a packet.
//
// Protocol-core throughput: one scaled iteration is one packet, so the throughput column reads
// directly as packets per second (scaled by the column's unit), and mallocs are counted over the
// whole run (goal on the decode path: 0).
//
// The decode benchmarks include refilling the ring with a block of encoded packets (a memcpy,
// standing in for the socket read); "Ring refill only" measures that part alone.

/// `count` encoded QoS 0 PUBLISH packets with `payloadSize`-byte payloads on topic "sensors/room1/t".
func publishBlock(payloadSize: Int, count: Int) -> [UInt8] {
    let buffer = OutboundBuffer(initialCapacity: 64 * 1024)
    let packet = Packet.publish(PublishPacket(topic: "sensors/room1/t", payload: [UInt8](repeating: 0x5A, count: payloadSize)))
    for _ in 0..<count {
        try! MQTTEncoder.encode(packet, version: .v3_1_1, into: buffer)
    }
    return buffer.bytes()
}

/// Decodes `benchmark.scaledIterations.count` packets from a ring refilled with `block` (which
/// holds `perBlock` packets) whenever it runs dry.
@inline(never)
func decodeRun(
    _ benchmark: Benchmark, block: [UInt8], perBlock: Int, payloadSize: Int, ringCapacity: Int, oneAtATime: Bool
) -> Int {
    let ring = ByteRing(initialCapacity: ringCapacity, maximumCapacity: ringCapacity)
    var decoder = MQTTDecoder()
    let packetSize = block.count / perBlock
    var payloadBytes = 0
    block.withUnsafeBytes { blockBytes in
        var offset = 0
        benchmark.startMeasurement()
        // The reactor's pattern: after each read, decode every complete packet.
        let target = benchmark.scaledIterations.count
        var decoded = 0
        while decoded < target {
            if oneAtATime {
                // One packet per "read", appended while the previous frame is still held: the
                // write position walks around the ring, so packets straddle its end at the rate
                // the sizes dictate.
                ring.append(UnsafeRawBufferPointer(rebasing: blockBytes[offset..<(offset + packetSize)]))
                offset += packetSize
                if offset == blockBytes.count { offset = 0 }
            } else {
                ring.append(blockBytes)
            }
            do {
                while decoded < target, let packet = try decoder.next(in: ring) {
                    if case .publish(let view) = packet {
                        payloadBytes &+= view.payload.count
                    }
                    decoded &+= 1
                }
            } catch {
                fatalError("benchmark input does not decode: \(error)")
            }
            if !oneAtATime {
                // Drop a partly decoded block (the last round) before refilling.
                decoder.releaseLastFrame(in: ring)
            }
        }
        benchmark.stopMeasurement()
    }
    // Every iteration decoded a packet.
    precondition(payloadBytes == benchmark.scaledIterations.count * payloadSize)
    blackHole(decoder.scratchCopies)
    return payloadBytes
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal, .instructions],
        scalingFactor: .mega,
        maxDuration: .seconds(3),
        maxIterations: 20
    )

    for payloadSize in [16, 256] {
        let perBlock = payloadSize == 16 ? 1500 : 200
        let block = publishBlock(payloadSize: payloadSize, count: perBlock)

        Benchmark("Decode QoS0 PUBLISH \(payloadSize)B") { benchmark in
            blackHole(decodeRun(benchmark, block: block, perBlock: perBlock, payloadSize: payloadSize, ringCapacity: 64 * 1024, oneAtATime: false))
        }

        Benchmark("Encode QoS0 PUBLISH \(payloadSize)B (fast path)") { benchmark in
            let buffer = OutboundBuffer(initialCapacity: 256 * 1024)
            let topic = Array("sensors/room1/t".utf8)
            let payload = [UInt8](repeating: 0x5A, count: payloadSize)
            topic.withUnsafeBytes { topicBytes in
                payload.withUnsafeBytes { payloadBytes in
                    benchmark.startMeasurement()
                    for _ in 0..<benchmark.scaledIterations.count {
                        try? MQTTEncoder.encodePublish(
                            topic: topicBytes, payload: payloadBytes, qos: .atMostOnce, retain: false, dup: false,
                            packetID: 0, into: buffer)
                        // Stands in for the socket write draining the buffer.
                        if buffer.readableBytes > 128 * 1024 { buffer.removeAll() }
                    }
                    benchmark.stopMeasurement()
                }
            }
            blackHole(buffer.readableBytes)
        }

        Benchmark("Encode QoS0 PUBLISH \(payloadSize)B (owned Packet)") { benchmark in
            let buffer = OutboundBuffer(initialCapacity: 256 * 1024)
            let packet = Packet.publish(PublishPacket(topic: "sensors/room1/t", payload: [UInt8](repeating: 0x5A, count: payloadSize)))
            benchmark.startMeasurement()
            for _ in 0..<benchmark.scaledIterations.count {
                try? MQTTEncoder.encode(packet, version: .v3_1_1, into: buffer)
                if buffer.readableBytes > 128 * 1024 { buffer.removeAll() }
            }
            benchmark.stopMeasurement()
            blackHole(buffer.readableBytes)
        }
    }

    // Wrapped packets: one 256-byte PUBLISH (276 bytes on the wire) per read. In a 1 KiB ring a
    // packet straddles the ring's end with probability 275/1024 (27%) and takes the scratch-copy
    // path; in a 64 KiB ring 275/65536 (0.4%). The difference between the two is the cost of
    // the wrapped path.
    let block256 = publishBlock(payloadSize: 256, count: 200)
    Benchmark("Decode 256B one per read, 64 KiB ring (~0.4% wrap)") { benchmark in
        blackHole(decodeRun(benchmark, block: block256, perBlock: 200, payloadSize: 256, ringCapacity: 64 * 1024, oneAtATime: true))
    }
    Benchmark("Decode 256B one per read, 1 KiB ring (27% wrap, scratch copy)") { benchmark in
        blackHole(decodeRun(benchmark, block: block256, perBlock: 200, payloadSize: 256, ringCapacity: 1024, oneAtATime: true))
    }

    Benchmark("Ring refill only, 16B packets (memcpy baseline)") { benchmark in
        let block = publishBlock(payloadSize: 16, count: 1500)
        let ring = ByteRing(initialCapacity: 64 * 1024, maximumCapacity: 64 * 1024)
        let packetSize = block.count / 1500
        block.withUnsafeBytes { blockBytes in
            benchmark.startMeasurement()
            for i in 0..<benchmark.scaledIterations.count {
                if i % 1500 == 0 {
                    ring.consume(ring.readableBytes)
                    ring.append(blockBytes)
                }
            }
            benchmark.stopMeasurement()
        }
        blackHole(ring.readableBytes / packetSize)
    }
}
