// libFuzzer target for MQTTDecoder: `make fuzz` (see the Makefile and docs/architecture.md).
//
// Built with swiftc directly (not by SwiftPM) so that `swift build` never sees a target whose
// `main` comes from libFuzzer. Input layout: byte 0 picks the protocol level, the maximum packet
// size, the ring's initial capacity and the feed chunk size; byte 1 the ring's wrap offset; the
// rest is the network stream. Bit 7 of byte 0 selects the WebSocket-framed mode: the stream
// is what a WebSocket server sends (RFC 6455 frames; the frame decoder of
// Sources/UVReactor/WebSocket is compiled into this target), and the MQTT decoder sees the
// payload of its data frames.
//
// Oracles, beyond "no crash, no sanitizer report":
// 1. Feeding the stream in chunks gives the same packets and the same error as feeding it whole.
// 2. Every decoded packet re-encodes without error, and the re-encoded bytes decode to the same
//    packet (the encoder accepts all the decoder accepts, and neither loses information).
// WebSocket mode, in addition:
// 3. Deframing in chunks, with a sink that takes only part of what it is offered, gives the
//    same payload, control frames and error as deframing the stream whole.
// 4. The payload framed again (frames of another size, fragmented) deframes to the same bytes.

import MQTTProtocol
import RingBuffers

struct Outcome: Equatable {
    var packets: [Packet] = []
    var error: MQTTProtocolError?
}

func run(_ stream: UnsafeRawBufferPointer, version: ProtocolVersion, maximumPacketSize: Int,
         capacity: Int, chunk: Int, offset: Int) -> Outcome {
    let ring = ByteRing(initialCapacity: capacity, maximumCapacity: 1 << 16)
    // Start the stream at `offset` inside the storage, so packets cross the wrap point.
    let start = offset % (ring.capacity - 1)
    ring.append([UInt8](repeating: 0, count: start + 1))
    ring.consume(start)
    var decoder = MQTTDecoder(maximumPacketSize: maximumPacketSize, version: version)
    var outcome = Outcome()
    var index = 0
    var filler = true
    while index < stream.count {
        let n = min(chunk, stream.count - index)
        let copied = ring.append(UnsafeRawBufferPointer(rebasing: stream[index..<(index + n)]))
        index += copied
        if filler {
            ring.consume(1)
            filler = false
        }
        do {
            while let packet = try decoder.next(in: ring) {
                outcome.packets.append(packet.makeOwned())
            }
        } catch {
            outcome.error = error
            return outcome
        }
        if copied == 0 { break }  // the ring is at its maximum: stop like a reader would
    }
    return outcome
}

struct Deframed: Equatable {
    var payload: [UInt8] = []
    var controls: [[UInt8]] = []
    var error: WebSocketError?
}

/// Deframes like `WebSocketTransform` does: bytes the decoder cannot use yet are held and given
/// again with the next chunk; the sink takes at most `sinkLimit` bytes per call; a close frame
/// ends the stream.
func deframe(_ stream: UnsafeRawBufferPointer, chunk: Int, sinkLimit: Int) -> Deframed {
    var decoder = WebSocketFrameDecoder()
    var result = Deframed()
    var held: [UInt8] = []
    var index = 0
    while index < stream.count {
        let n = min(chunk, stream.count - index)
        held += stream[index..<(index + n)]
        index += n
        var used = 0
        // Bounded: every step consumes bytes or stops this inner loop.
        while true {
            let step: WebSocketFrameDecoder.Step
            do {
                step = try held.withUnsafeBytes { all in
                    try decoder.decode(UnsafeRawBufferPointer(rebasing: all[used...])) { payload in
                        let taken = min(payload.count, sinkLimit)
                        result.payload += payload[0..<taken]
                        return taken
                    }
                }
            } catch {
                // withUnsafeBytes rethrows untyped: the decoder throws WebSocketError only.
                result.error = error as? WebSocketError
                return result
            }
            switch step {
            case .needMore(let consumed):
                used += consumed
            case .sinkFull(let consumed):
                used += consumed
                continue
            case .control(let consumed, let opcode, let payload):
                used += consumed
                result.controls.append([opcode.rawValue] + Array(payload))
                if opcode == .close {
                    do {
                        _ = try WebSocketFrameDecoder.parseClose(payload)
                    } catch {
                        result.error = error
                    }
                    return result
                }
                continue
            }
            break
        }
        held.removeFirst(used)
    }
    return result
}

/// Frames `payload` as a server would: binary frames of `size` bytes, every other one split into a
/// fragmented message, with the smallest length encoding.
func frame(_ payload: [UInt8], size: Int) -> [UInt8] {
    var out: [UInt8] = []
    var index = 0
    var fragmented = false
    func header(_ first: UInt8, _ count: Int) {
        out.append(first)
        if count < 126 {
            out.append(UInt8(count))
        } else if count <= 0xFFFF {
            out += [126, UInt8(count >> 8), UInt8(count & 0xFF)]
        } else {
            out.append(127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: count >> shift)) }
        }
    }
    while index < payload.count {
        let count = min(size, payload.count - index)
        let last = index + count == payload.count
        if !fragmented && !last && (index / size) % 2 == 1 {
            header(0x02, count)  // first fragment
            fragmented = true
        } else if fragmented {
            header(0x80, count)  // last fragment
            fragmented = false
        } else {
            header(0x82, count)
        }
        out += payload[index..<(index + count)]
        index += count
    }
    if fragmented { header(0x80, 0) }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let options = data[0]
    let version: ProtocolVersion = options & 1 == 0 ? .v3_1_1 : .v3_1
    let maximumPacketSize = [64, 256, 4096, 1 << 20][Int(options >> 1) & 3]
    let capacity = [64, 128, 1024, 1 << 16][Int(options >> 3) & 3]
    let chunk = [1, 3, 17, 1 << 20][Int(options >> 5) & 3]
    let offset = Int(data[1])
    let stream = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    guard options & 0x80 != 0 else {
        checkMQTT(stream, version: version, maximumPacketSize: maximumPacketSize, capacity: capacity, chunk: chunk, offset: offset)
        return 0
    }
    let whole = deframe(stream, chunk: 1 << 20, sinkLimit: 1 << 20)
    let chunked = deframe(stream, chunk: chunk, sinkLimit: 1 + offset)
    if whole != chunked {
        fatalError("chunked deframing differs: \(whole) vs \(chunked)")
    }
    let reframed = frame(whole.payload, size: 1 + offset * 3)
    let again = reframed.withUnsafeBytes { deframe($0, chunk: 1 << 20, sinkLimit: 1 << 20) }
    if again.payload != whole.payload || again.error != nil {
        fatalError("reframed payload deframes differently: \(whole.payload) vs \(again)")
    }
    whole.payload.withUnsafeBytes { payload in
        checkMQTT(payload, version: version, maximumPacketSize: maximumPacketSize, capacity: capacity, chunk: chunk, offset: offset)
    }
    return 0
}

/// Oracles 1 and 2 on one MQTT byte stream.
func checkMQTT(_ stream: UnsafeRawBufferPointer, version: ProtocolVersion, maximumPacketSize: Int,
               capacity: Int, chunk: Int, offset: Int) {
    let whole = run(stream, version: version, maximumPacketSize: maximumPacketSize, capacity: 256, chunk: 1 << 20, offset: 0)
    let chunked = run(stream, version: version, maximumPacketSize: maximumPacketSize, capacity: capacity, chunk: chunk, offset: offset)
    // A ring that stops growing (maximum 64 KiB) can lower the limit: compare only when the
    // stream fits the ring whole.
    if stream.count < (1 << 16) - 300 && whole != chunked {
        fatalError("chunked decoding differs: \(whole) vs \(chunked)")
    }
    for packet in whole.packets {
        let buffer = OutboundBuffer(initialCapacity: 256)
        do {
            try MQTTEncoder.encode(packet, version: version, into: buffer)
        } catch {
            fatalError("decoded packet does not re-encode: \(packet): \(error)")
        }
        let again = run(buffer.readableRegion, version: version, maximumPacketSize: 1 << 20, capacity: 256, chunk: 1 << 20, offset: 0)
        if again.packets != [packet] || again.error != nil {
            fatalError("re-encoded packet decodes differently: \(packet) vs \(again)")
        }
    }
}
