import Testing
@testable import UVMQTT
import UVReactor

@Suite struct MQTTServerWebSocketParsingTests {
    @Test func webSocketURIs() throws {
        let ws = try MQTTServer(parsing: "ws://broker.example:8080/mqtt")
        #expect(ws.host == "broker.example" && ws.port == 8080 && ws.security == .off)
        #expect(ws.webSocket?.path == "/mqtt")
        let defaults = try MQTTServer(parsing: "ws://broker.example")
        #expect(defaults.port == 80 && defaults.webSocket?.path == "/mqtt")
        let wss = try MQTTServer(parsing: "wss://[::1]/ws/custom?x=1")
        #expect(wss.host == "::1" && wss.port == 443 && wss.security == .on)
        #expect(wss.webSocket?.path == "/ws/custom?x=1")
        #expect(try MQTTServer(parsing: "WS://h:1/").webSocket?.path == "/mqtt")
        #expect(try MQTTServer(parsing: "mqtt://h:1/ignored").webSocket == nil)
        #expect(throws: MQTTServerAddressError.unsupportedScheme("http")) { try MQTTServer(parsing: "http://h") }
    }

    @Test func subprotocolFollowsTheProtocolLevel() throws {
        let server = try MQTTServer(parsing: "ws://h:1")
        #expect(server.resolvingSubprotocol(for: .v3_1_1).webSocket?.subprotocol == "mqtt")
        #expect(server.resolvingSubprotocol(for: .v3_1).webSocket?.subprotocol == "mqttv3.1")
        var fixed = server
        fixed.webSocket?.subprotocol = "custom"
        #expect(fixed.resolvingSubprotocol(for: .v3_1).webSocket?.subprotocol == "custom")
        #expect(MQTTServer(host: "h").resolvingSubprotocol(for: .v3_1).webSocket == nil)
    }
}
