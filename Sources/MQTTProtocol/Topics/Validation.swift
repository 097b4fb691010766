/// Validation of MQTT UTF-8 strings, topic names and topic filters, on raw bytes so that the
/// decoder checks fields in place without building a `String`.
public enum MQTTValidation {
    /// Largest string or binary field: a two-byte length prefix [MQTT-1.5.3].
    public static let maximumFieldLength = 65_535

    /// Checks that `bytes` is a well-formed MQTT UTF-8 string.
    ///
    /// Rejects ill-formed UTF-8 and the surrogate code points U+D800..U+DFFF [MQTT-1.5.3-1]
    /// (overlong forms and code points above U+10FFFF are ill-formed UTF-8), and U+0000
    /// [MQTT-1.5.3-2]. U+FEFF is accepted and kept [MQTT-1.5.3-3].
    @inlinable
    public static func validateUTF8(_ bytes: UnsafeRawBufferPointer, field: PacketField) throws(MQTTProtocolError) {
        let count = bytes.count
        if count > maximumFieldLength { throw .fieldTooLong(field: field, length: count) }
        var i = 0
        // ASCII fast path: eight bytes at a time while no high bit and no zero byte is present.
        while i &+ 8 <= count {
            let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let highBits = word & 0x8080_8080_8080_8080
            let zeroBytes = (word &- 0x0101_0101_0101_0101) & ~word & 0x8080_8080_8080_8080
            if highBits != 0 || zeroBytes != 0 { break }
            i &+= 8
        }
        while i < count {
            let b0 = bytes[i]
            if b0 < 0x80 {
                if b0 == 0 { throw .nullCharacter(field: field) }
                i &+= 1
                continue
            }
            let length: Int
            var scalar: UInt32
            if b0 & 0xE0 == 0xC0 {
                length = 2; scalar = UInt32(b0 & 0x1F)
            } else if b0 & 0xF0 == 0xE0 {
                length = 3; scalar = UInt32(b0 & 0x0F)
            } else if b0 & 0xF8 == 0xF0 {
                length = 4; scalar = UInt32(b0 & 0x07)
            } else {
                throw .invalidUTF8(field: field)
            }
            if i &+ length > count { throw .invalidUTF8(field: field) }
            for k in 1..<length {
                let b = bytes[i &+ k]
                if b & 0xC0 != 0x80 { throw .invalidUTF8(field: field) }
                scalar = (scalar << 6) | UInt32(b & 0x3F)
            }
            // Overlong encodings, surrogates and values past U+10FFFF are ill-formed.
            switch length {
            case 2 where scalar < 0x80: throw .invalidUTF8(field: field)
            case 3 where scalar < 0x800: throw .invalidUTF8(field: field)
            case 4 where scalar < 0x1_0000 || scalar > 0x10_FFFF: throw .invalidUTF8(field: field)
            default: break
            }
            if scalar >= 0xD800 && scalar <= 0xDFFF { throw .invalidUTF8(field: field) }
            i &+= length
        }
    }

    /// Checks a topic name: a valid string of at least one byte with no wildcard characters
    /// [MQTT-4.7.3-1], [MQTT-3.3.2-2], [MQTT-4.7.1-1].
    @inlinable
    public static func validateTopicName(_ bytes: UnsafeRawBufferPointer) throws(MQTTProtocolError) {
        if bytes.isEmpty { throw .emptyTopic(field: .topicName) }
        try validateUTF8(bytes, field: .topicName)
        // '+' is 0x2B and '#' is 0x23; neither byte occurs inside a multi-byte UTF-8 sequence.
        for b in bytes where b == 0x2B || b == 0x23 {
            throw .wildcardInTopicName
        }
    }

    /// Checks a topic filter: a valid string of at least one byte where `#` is alone in the last
    /// level [MQTT-4.7.1-2] and `+` fills a whole level [MQTT-4.7.1-3].
    ///
    /// A shared subscription `$share/{group}/{filter}` (mosquitto 2.0, EMQX, HiveMQ accept it
    /// from 3.1.1 clients; the form is MQTT 5.0's §4.8.2) needs a non-empty group without `+`,
    /// `#` (or `/`), and a valid filter after it.
    @inlinable
    public static func validateTopicFilter(_ bytes: UnsafeRawBufferPointer) throws(MQTTProtocolError) {
        if bytes.isEmpty { throw .emptyTopic(field: .topicFilter) }
        try validateUTF8(bytes, field: .topicFilter)
        if hasSharedPrefix(bytes) {
            guard let inner = sharedFilterStart(bytes), inner < bytes.count else {
                throw .invalidSharedSubscription(String(decoding: bytes, as: UTF8.self))
            }
            for b in bytes[7..<(inner &- 1)] where b == 0x2B || b == 0x23 {
                throw .invalidSharedSubscription(String(decoding: bytes, as: UTF8.self))
            }
            try validateFilterLevels(UnsafeRawBufferPointer(rebasing: bytes[inner...]))
            return
        }
        try validateFilterLevels(bytes)
    }

    /// Whether `bytes` starts with `$share/`, the prefix of a shared subscription.
    @inlinable
    public static func hasSharedPrefix(_ bytes: UnsafeRawBufferPointer) -> Bool {
        // "$share/" = 24 73 68 61 72 65 2F
        bytes.count >= 7 && bytes[0] == 0x24 && bytes[1] == 0x73 && bytes[2] == 0x68 && bytes[3] == 0x61
            && bytes[4] == 0x72 && bytes[5] == 0x65 && bytes[6] == 0x2F
    }

    /// For `$share/{group}/{filter}`: the index where `{filter}` starts (the topic filter that
    /// messages are matched against); nil when `bytes` is no shared subscription or its group is
    /// empty or not followed by `/`.
    @inlinable
    public static func sharedFilterStart(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard hasSharedPrefix(bytes) else { return nil }
        var i = 7
        while i < bytes.count && bytes[i] != 0x2F { i &+= 1 }
        guard i > 7 && i < bytes.count else { return nil }
        return i &+ 1
    }

    /// The wildcard placement rules on a (non-empty) filter.
    @inlinable
    static func validateFilterLevels(_ bytes: UnsafeRawBufferPointer) throws(MQTTProtocolError) {
        let count = bytes.count
        for i in 0..<count {
            let b = bytes[i]
            if b != 0x2B && b != 0x23 { continue }
            let alone = (i == 0 || bytes[i &- 1] == 0x2F) && (i == count &- 1 || bytes[i &+ 1] == 0x2F)
            if b == 0x23 {
                if !alone || i != count &- 1 {
                    throw .misplacedMultiLevelWildcard(String(decoding: bytes, as: UTF8.self))
                }
            } else if !alone {
                throw .misplacedSingleLevelWildcard(String(decoding: bytes, as: UTF8.self))
            }
        }
    }

    /// ``validateTopicName(_:)`` for a `String`.
    public static func validateTopicName(_ topic: String) throws(MQTTProtocolError) {
        try withBytes(topic) { (bytes) throws(MQTTProtocolError) in try validateTopicName(bytes) }
    }

    /// ``validateTopicFilter(_:)`` for a `String`.
    public static func validateTopicFilter(_ filter: String) throws(MQTTProtocolError) {
        try withBytes(filter) { (bytes) throws(MQTTProtocolError) in try validateTopicFilter(bytes) }
    }

    /// ``validateUTF8(_:field:)`` for a `String` (Swift strings are valid Unicode, but may hold
    /// U+0000 or exceed the length limit).
    public static func validateString(_ string: String, field: PacketField) throws(MQTTProtocolError) {
        try withBytes(string) { (bytes) throws(MQTTProtocolError) in try validateUTF8(bytes, field: field) }
    }

    /// Runs `body` over the UTF-8 bytes of `string`, keeping the typed error.
    static func withBytes(
        _ string: String,
        _ body: (UnsafeRawBufferPointer) throws(MQTTProtocolError) -> Void
    ) throws(MQTTProtocolError) {
        var string = string
        let result: Result<Void, MQTTProtocolError> = string.withUTF8 { buffer in
            Result { () throws(MQTTProtocolError) in try body(UnsafeRawBufferPointer(buffer)) }
        }
        try result.get()
    }
}
