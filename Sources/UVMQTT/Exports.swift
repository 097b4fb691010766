public import MQTTProtocol
public import UVReactor

// The client's vocabulary, available with `import UVMQTT` alone. These are type aliases, not a
// re-export of the modules that define them (`MQTTProtocol`, `UVReactor`): a daemon that also
// imports swift-nio (`EventLoop`) or swift-nio-ssl (`TLSConfiguration`) sees one of each name.
// The reactor's types go by MQTT-prefixed names here; importing `UVReactor` gives the plain ones
// (the same types).

/// The delivery guarantee of a message (`MQTTProtocol.QoS`).
public typealias QoS = MQTTProtocol.QoS
/// The protocol level: 3.1.1 or 3.1 (`MQTTProtocol.ProtocolVersion`).
public typealias ProtocolVersion = MQTTProtocol.ProtocolVersion
/// A last will message (`MQTTProtocol.Will`).
public typealias Will = MQTTProtocol.Will
/// A topic filter with its requested QoS (`MQTTProtocol.TopicSubscription`).
public typealias TopicSubscription = MQTTProtocol.TopicSubscription
/// A SUBACK return code: the granted QoS or failure (`MQTTProtocol.SubAckReturnCode`).
public typealias SubAckReturnCode = MQTTProtocol.SubAckReturnCode
/// A CONNACK return code (`MQTTProtocol.ConnectReturnCode`).
public typealias ConnectReturnCode = MQTTProtocol.ConnectReturnCode
/// A control packet type (`MQTTProtocol.PacketType`).
public typealias PacketType = MQTTProtocol.PacketType
/// A packet field named by a protocol error (`MQTTProtocol.PacketField`).
public typealias PacketField = MQTTProtocol.PacketField
/// A broken protocol rule, with the field and the rule (`MQTTProtocol.MQTTProtocolError`).
public typealias MQTTProtocolError = MQTTProtocol.MQTTProtocolError
/// Why a request cannot be carried out (`MQTTProtocol.MQTTClientError`).
public typealias MQTTClientError = MQTTProtocol.MQTTClientError
/// Why a connection attempt failed or a connection ended (`MQTTProtocol.MQTTConnectionFailure`).
public typealias MQTTConnectionFailure = MQTTProtocol.MQTTConnectionFailure
/// A failure's NodeMCU reason code as an enum (`MQTTProtocol.MQTTConnectReason`).
public typealias MQTTConnectReason = MQTTProtocol.MQTTConnectReason
/// The automatic reconnect delays (`MQTTProtocol.ReconnectBackoff`).
public typealias ReconnectBackoff = MQTTProtocol.ReconnectBackoff

/// The libuv event loop a client runs on (`UVReactor.EventLoop`).
public typealias MQTTEventLoop = UVReactor.EventLoop
/// TLS settings: trust, client certificate, server name (`UVReactor.TLSConfiguration`).
public typealias MQTTTLSConfiguration = UVReactor.TLSConfiguration
/// A transport failure (`UVReactor.TransportError`).
public typealias MQTTTransportError = UVReactor.TransportError
/// WebSocket settings of a server: path, subprotocol, extra headers (`UVReactor.WebSocketConfiguration`).
public typealias MQTTWebSocketConfiguration = UVReactor.WebSocketConfiguration
/// An extra header line of the WebSocket upgrade request (`UVReactor.HTTPHeader`).
public typealias MQTTHTTPHeader = UVReactor.HTTPHeader
/// Why a WebSocket connection failed (`UVReactor.WebSocketError`).
public typealias MQTTWebSocketError = UVReactor.WebSocketError
/// The order of attempts over a server list (`MQTTProtocol.ServerRotation`).
public typealias ServerRotation = MQTTProtocol.ServerRotation
