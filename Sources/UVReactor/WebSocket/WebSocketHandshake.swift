import COpenSSL

/// The opening handshake of a WebSocket client (RFC 6455 §4.1): the upgrade request and the
/// check of the server's response.
struct WebSocketHandshake {
    /// The GUID appended to the key for `Sec-WebSocket-Accept` (§1.3).
    static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The base64 of 16 random bytes sent in `Sec-WebSocket-Key`.
    let key: String
    /// The subprotocol the server must select.
    let subprotocol: String

    /// Creates a handshake with a fresh random key (§4.1: 16 random bytes, base64).
    init(subprotocol: String) {
        var generator = SystemRandomNumberGenerator()
        var nonce = [UInt8]()
        for _ in 0..<2 {
            withUnsafeBytes(of: generator.next() as UInt64) { nonce.append(contentsOf: $0) }
        }
        self.init(key: Base64.encode(nonce), subprotocol: subprotocol)
    }

    /// Creates a handshake with a given key (tests: the RFC's example key).
    init(key: String, subprotocol: String) {
        self.key = key
        self.subprotocol = subprotocol
    }

    /// The request: `GET path HTTP/1.1` with the upgrade headers, then the extra ones.
    func request(configuration: WebSocketConfiguration, host: String) -> String {
        var lines = [
            "GET \(configuration.path) HTTP/1.1",
            "Host: \(configuration.hostHeader ?? host)",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: \(key)",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: \(subprotocol)",
        ]
        for header in configuration.extraHeaders {
            lines.append("\(header.name): \(header.value)")
        }
        return lines.joined(separator: "\r\n") + "\r\n\r\n"
    }

    /// The `Sec-WebSocket-Accept` value a server must answer `key` with:
    /// base64(SHA-1(key + GUID)).
    static func expectedAccept(for key: String) -> String {
        let input = Array((key + acceptGUID).utf8)
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let status = EVP_Digest(input, input.count, &digest, &length, EVP_sha1(), nil)
        precondition(status == 1 && length == 20, "SHA-1 unavailable")
        return Base64.encode(digest[0..<20])
    }

    /// Checks the response header block (status line to the empty line, exclusive).
    ///
    /// - Throws: ``WebSocketError/handshakeStatus(_:_:)``, ``WebSocketError/malformedHandshake(_:)``,
    ///   ``WebSocketError/missingUpgrade``, ``WebSocketError/missingAccept``,
    ///   ``WebSocketError/wrongAccept(expected:received:)``,
    ///   ``WebSocketError/wrongSubprotocol(expected:received:)``,
    ///   ``WebSocketError/unexpectedExtension(_:)``.
    func validate(response: [UInt8]) throws(WebSocketError) {
        // Header bytes are ASCII (RFC 7230 allows obs-text in values; decoded leniently).
        let text = String(decoding: response, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        guard let statusLine = lines.popFirst() else { throw .malformedHandshake("empty response") }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", parts[1].count == 3, let status = Int(parts[1]) else {
            throw .malformedHandshake("status line '\(statusLine.prefix(80))'")
        }
        if status != 101 {
            throw .handshakeStatus(status, parts.count > 2 ? String(parts[2]) : "")
        }
        var upgrade = false
        var connection = false
        var accept: String?
        var selected: String?
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else {
                throw .malformedHandshake("header line '\(line.prefix(80))'")
            }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces()
            switch name {
            case "upgrade":
                upgrade = value.lowercased() == "websocket"
            case "connection":
                // A token list: "Upgrade" or "keep-alive, Upgrade".
                if value.split(separator: ",").contains(where: { $0.trimmingSpaces().lowercased() == "upgrade" }) {
                    connection = true
                }
            case "sec-websocket-accept":
                accept = String(value)
            case "sec-websocket-protocol":
                selected = String(value)
            case "sec-websocket-extensions":
                if !value.isEmpty { throw .unexpectedExtension(String(value)) }
            default:
                break
            }
        }
        guard upgrade && connection else { throw .missingUpgrade }
        guard let accept else { throw .missingAccept }
        let expected = WebSocketHandshake.expectedAccept(for: key)
        guard accept == expected else { throw .wrongAccept(expected: expected, received: accept) }
        guard selected == subprotocol else { throw .wrongSubprotocol(expected: subprotocol, received: selected) }
    }
}

extension Substring {
    /// The text without leading and trailing spaces and tabs (HTTP optional white space).
    func trimmingSpaces() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result.removeFirst() }
        while let last = result.last, last == " " || last == "\t" { result.removeLast() }
        return result
    }
}

/// Base64 (RFC 4648 §4, with padding): the encoding the WebSocket handshake needs.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Encodes `bytes` with padding.
    static func encode<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = iterator.next()
            let group = UInt32(b0) << 16 | UInt32(b1 ?? 0) << 8 | UInt32(b2 ?? 0)
            output.append(alphabet[Int(group >> 18 & 0x3F)])
            output.append(alphabet[Int(group >> 12 & 0x3F)])
            output.append(b1 == nil ? UInt8(ascii: "=") : alphabet[Int(group >> 6 & 0x3F)])
            output.append(b2 == nil ? UInt8(ascii: "=") : alphabet[Int(group & 0x3F)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}
