import CLibUV
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Socket address helpers (IP literals and printing).
enum SocketAddress {
    /// Parses an IPv4 or IPv6 literal (`127.0.0.1`, `::1`, `[::1]`); nil for anything else.
    static func ipLiteral(_ host: String, port: Int) -> sockaddr_storage? {
        var storage = sockaddr_storage()
        let isIPv4 = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(host, Int32(port), $0) == 0 }
        }
        if isIPv4 { return storage }
        var literal = Substring(host)
        if literal.hasPrefix("[") && literal.hasSuffix("]") {
            literal = literal.dropFirst().dropLast()
        }
        let isIPv6 = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_addr(String(literal), Int32(port), $0) == 0 }
        }
        return isIPv6 ? storage : nil
    }

    /// `address:port`, with brackets around IPv6 addresses.
    static func describe(_ storage: sockaddr_storage) -> String {
        var storage = storage
        var name = [CChar](repeating: 0, count: 64)
        let family = Int32(storage.ss_family)
        let port: UInt16
        if family == AF_INET {
            port = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    uv_ip4_name($0, &name, name.count)
                    return UInt16(bigEndian: $0.pointee.sin_port)
                }
            }
            return "\(String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)):\(port)"
        } else if family == AF_INET6 {
            port = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    uv_ip6_name($0, &name, name.count)
                    return UInt16(bigEndian: $0.pointee.sin6_port)
                }
            }
            return "[\(String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))]:\(port)"
        }
        return "?"
    }

    /// The port of an IPv4 or IPv6 address (0 for other families).
    static func port(_ storage: sockaddr_storage) -> Int {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
        default:
            return 0
        }
    }
}
