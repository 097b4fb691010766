// libFuzzer target for MQTTDecoder: `make fuzz` (see the Makefile and docs/architecture.md).
//
// Built with swiftc directly (not by SwiftPM) so that `swift build` never sees a target whose
// `main` comes from libFuzzer. Input layout: byte 0 picks the protocol level, the maximum packet
// size, the ring's initial capacity and the feed chunk size; byte 1 the ring's wrap offset; the
// rest is the network stream.
//
// Oracles, beyond "no crash, no sanitizer report":
// 1. Feeding the stream in chunks gives the same packets and the same error as feeding it whole.
// 2. Every decoded packet re-encodes without error, and the re-encoded bytes decode to the same
//    packet (the encoder accepts all the decoder accepts, and neither loses information).

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
    return 0
}
