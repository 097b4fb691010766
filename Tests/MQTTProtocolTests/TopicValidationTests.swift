import MQTTProtocol
import Testing

/// The error a byte-level check throws for `bytes`, or `nil` when the bytes pass.
private func error(
    _ bytes: [UInt8],
    _ check: (UnsafeRawBufferPointer) throws(MQTTProtocolError) -> Void
) -> MQTTProtocolError? {
    let result: Result<Void, MQTTProtocolError> = bytes.withUnsafeBytes { buffer in
        Result { () throws(MQTTProtocolError) in try check(buffer) }
    }
    if case .failure(let error) = result { return error }
    return nil
}

private func nameError(_ bytes: [UInt8]) -> MQTTProtocolError? {
    error(bytes) { (b) throws(MQTTProtocolError) in try MQTTValidation.validateTopicName(b) }
}

private func filterError(_ bytes: [UInt8]) -> MQTTProtocolError? {
    error(bytes) { (b) throws(MQTTProtocolError) in try MQTTValidation.validateTopicFilter(b) }
}

private func utf8Error(_ bytes: [UInt8], field: PacketField = .username) -> MQTTProtocolError? {
    error(bytes) { (b) throws(MQTTProtocolError) in try MQTTValidation.validateUTF8(b, field: field) }
}

@Suite struct TopicValidationTests {
    // MARK: [MQTT-4.7.3-1] at least one character

    @Test func emptyTopicNameAndFilterAreRejected() {
        let name = nameError([])
        #expect(name == .emptyTopic(field: .topicName))
        #expect(name?.rule == "MQTT-4.7.3-1")
        let filter = filterError([])
        #expect(filter == .emptyTopic(field: .topicFilter))
        #expect(filter?.rule == "MQTT-4.7.3-1")
        #expect(throws: MQTTProtocolError.emptyTopic(field: .topicName)) { try MQTTValidation.validateTopicName("") }
        #expect(throws: MQTTProtocolError.emptyTopic(field: .topicFilter)) { try MQTTValidation.validateTopicFilter("") }
        // One character, even a lone separator, is enough [MQTT-4.7.3-1].
        #expect(nameError(Array("/".utf8)) == nil)
        #expect(nameError(Array("a".utf8)) == nil)
        #expect(filterError(Array("/".utf8)) == nil)
    }

    // MARK: [MQTT-3.3.2-2] no wildcards in a topic name

    @Test(arguments: ["sport/+", "sport/#", "#", "+", "a+b", "sport/tennis#", "$SYS/#"])
    func wildcardInTopicNameIsRejected(topic: String) {
        let failure = nameError(Array(topic.utf8))
        #expect(failure == .wildcardInTopicName)
        #expect(failure?.rule == "MQTT-3.3.2-2")
        #expect(throws: MQTTProtocolError.wildcardInTopicName) { try MQTTValidation.validateTopicName(topic) }
    }

    @Test(arguments: ["sport/tennis/player1", "/finance", "a//b", "sport/", "$SYS/broker/load", "ACCOUNTS", " "])
    func topicNamesWithoutWildcardsPass(topic: String) throws {
        #expect(nameError(Array(topic.utf8)) == nil)
        try MQTTValidation.validateTopicName(topic)
    }

    // MARK: [MQTT-4.7.1-2] `#` alone in the last level

    @Test(arguments: ["sport/tennis#", "sport/tennis/#/ranking", "#/a", "a/#b", "##", "#a", "a/#/"])
    func misplacedMultiLevelWildcardIsRejected(filter: String) {
        let failure = filterError(Array(filter.utf8))
        #expect(failure == .misplacedMultiLevelWildcard(filter))
        #expect(failure?.rule == "MQTT-4.7.1-2")
        #expect(throws: MQTTProtocolError.misplacedMultiLevelWildcard(filter)) {
            try MQTTValidation.validateTopicFilter(filter)
        }
    }

    // MARK: [MQTT-4.7.1-3] `+` fills a whole level

    @Test(arguments: ["sport+", "+a", "a/b+/c", "++", "sport/+tennis", "a/+b/#"])
    func misplacedSingleLevelWildcardIsRejected(filter: String) {
        let failure = filterError(Array(filter.utf8))
        #expect(failure == .misplacedSingleLevelWildcard(filter))
        #expect(failure?.rule == "MQTT-4.7.1-3")
        #expect(throws: MQTTProtocolError.misplacedSingleLevelWildcard(filter)) {
            try MQTTValidation.validateTopicFilter(filter)
        }
    }

    @Test(arguments: [
        "#", "sport/#", "/#", "+", "+/+", "/+", "+/tennis/#", "sport/+/player1", "sport/tennis/player1",
        "$SYS/#", "a//b", "+//+",
    ])
    func wellPlacedWildcardsPass(filter: String) throws {
        #expect(filterError(Array(filter.utf8)) == nil)
        try MQTTValidation.validateTopicFilter(filter)
    }

    // MARK: [MQTT-1.5.3-1] well-formed UTF-8, no surrogates

    @Test(arguments: [
        [0xED, 0xA0, 0x80],  // U+D800, the first high surrogate
        [0xED, 0xBF, 0xBF],  // U+DFFF, the last low surrogate
        [0xED, 0xA0, 0xBD, 0xED, 0xB2, 0xA9],  // a CESU-8 surrogate pair
    ] as [[UInt8]])
    func surrogatesAreRejected(bytes: [UInt8]) {
        for field in [PacketField.topicName, .topicFilter, .clientID] {
            let failure = utf8Error(Array("ok/".utf8) + bytes, field: field)
            #expect(failure == .invalidUTF8(field: field))
            #expect(failure?.rule == "MQTT-1.5.3-1")
        }
        #expect(nameError(bytes) == .invalidUTF8(field: .topicName))
        #expect(filterError(bytes) == .invalidUTF8(field: .topicFilter))
    }

    @Test(arguments: [
        [0xC0, 0x80],  // overlong U+0000
        [0xC1, 0xBF],  // overlong U+007F
        [0xE0, 0x80, 0x80],  // overlong U+0000 in three bytes
        [0xE0, 0x9F, 0xBF],  // overlong U+07FF
        [0xF0, 0x80, 0x80, 0x80],  // overlong U+0000 in four bytes
        [0xF0, 0x8F, 0xBF, 0xBF],  // overlong U+FFFF
    ] as [[UInt8]])
    func overlongFormsAreRejected(bytes: [UInt8]) {
        let failure = utf8Error(bytes)
        #expect(failure == .invalidUTF8(field: .username))
        #expect(failure?.rule == "MQTT-1.5.3-1")
    }

    @Test(arguments: [
        [0x80],  // continuation byte without a lead
        [0x61, 0xBF, 0x62],
        [0xE2, 0x82],  // truncated three-byte sequence
        [0xE2, 0x28, 0xA1],  // bad continuation
        [0xF4, 0x90, 0x80, 0x80],  // U+110000, past the last code point
        [0xF8, 0x88, 0x80, 0x80, 0x80],  // five-byte form
        [0xFF], [0xFE],
    ] as [[UInt8]])
    func otherIllFormedSequencesAreRejected(bytes: [UInt8]) {
        #expect(utf8Error(bytes) == .invalidUTF8(field: .username))
        // Behind eight ASCII bytes, past the word-at-a-time fast path.
        #expect(utf8Error(Array("abcdefghij".utf8) + bytes) == .invalidUTF8(field: .username))
    }

    @Test(arguments: [
        [0x7F],  // U+007F
        [0xC2, 0x80],  // U+0080, shortest two-byte form
        [0xDF, 0xBF],  // U+07FF
        [0xE0, 0xA0, 0x80],  // U+0800, shortest three-byte form
        [0xED, 0x9F, 0xBF],  // U+D7FF, just below the surrogates
        [0xEE, 0x80, 0x80],  // U+E000, just above them
        [0xF0, 0x90, 0x80, 0x80],  // U+10000, shortest four-byte form
        [0xF4, 0x8F, 0xBF, 0xBF],  // U+10FFFF, the last code point
    ] as [[UInt8]])
    func boundaryCodePointsPass(bytes: [UInt8]) {
        #expect(utf8Error(bytes) == nil)
        #expect(nameError(Array("a/".utf8) + bytes) == nil)
        #expect(filterError(Array("+/".utf8) + bytes) == nil)
    }

    // MARK: [MQTT-1.5.3-2] no U+0000

    @Test func nullCharacterIsRejectedAnywhere() throws {
        // Inside the fast path's first word, at its end, and in the byte-wise tail.
        for bytes: [UInt8] in [[0], [0x61, 0, 0x62], Array("abcdefg".utf8) + [0], Array("abcdefghi".utf8) + [0, 0x61]] {
            let failure = utf8Error(bytes, field: .willTopic)
            #expect(failure == .nullCharacter(field: .willTopic))
            #expect(failure?.rule == "MQTT-1.5.3-2")
            #expect(nameError(bytes) == .nullCharacter(field: .topicName))
            #expect(filterError(bytes) == .nullCharacter(field: .topicFilter))
        }
        #expect(throws: MQTTProtocolError.nullCharacter(field: .clientID)) {
            try MQTTValidation.validateString("client\u{0}id", field: .clientID)
        }
        try MQTTValidation.validateString("client-id", field: .clientID)
    }

    // MARK: [MQTT-1.5.3] at most 65,535 bytes

    @Test func fieldsLongerThan65535BytesAreRejected() throws {
        let tooLong = [UInt8](repeating: 0x61, count: 65_536)
        let failure = utf8Error(tooLong)
        #expect(failure == .fieldTooLong(field: .username, length: 65_536))
        #expect(failure?.rule == "MQTT-1.5.3")
        #expect(nameError(tooLong) == .fieldTooLong(field: .topicName, length: 65_536))
        #expect(filterError(tooLong) == .fieldTooLong(field: .topicFilter, length: 65_536))
        #expect(throws: MQTTProtocolError.fieldTooLong(field: .topicName, length: 65_536)) {
            try MQTTValidation.validateTopicName(String(repeating: "a", count: 65_536))
        }
        // Exactly the limit passes, with the wildcards and separators a filter may hold.
        let atLimit = [UInt8](repeating: 0x61, count: 65_535)
        #expect(utf8Error(atLimit) == nil)
        #expect(nameError(atLimit) == nil)
        let filter = Array(String(repeating: "a/", count: 32_766).utf8) + Array("+/#".utf8)
        #expect(filter.count == 65_535)
        #expect(filterError(filter) == nil)
    }

    // MARK: [MQTT-1.5.3-3] U+FEFF is kept, not stripped or refused

    @Test func byteOrderMarkIsAccepted() throws {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        #expect(utf8Error(bom) == nil)
        #expect(nameError(bom + Array("/a".utf8)) == nil)
        #expect(filterError(Array("a/".utf8) + bom + Array("/#".utf8)) == nil)
        try MQTTValidation.validateTopicName("\u{FEFF}sensors")
        try MQTTValidation.validateTopicFilter("\u{FEFF}/+")
    }

    @Test func nonASCIITopicsPass() throws {
        try MQTTValidation.validateTopicName("sport/tennis/é/日本/🎾")
        try MQTTValidation.validateTopicFilter("sport/+/日本/#")
    }

    @Test func errorsNameTheirRuleInTheirDescription() {
        let failure = filterError(Array("a/#/b".utf8))
        #expect(failure.map { "\($0)" }?.hasSuffix("[MQTT-4.7.1-2]") == true)
        #expect(nameError(Array("a+".utf8)).map { "\($0)" }?.hasSuffix("[MQTT-3.3.2-2]") == true)
    }
}
