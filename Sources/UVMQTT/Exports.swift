// The protocol vocabulary (QoS, ProtocolVersion, Will, errors) is part of the client's API.
@_exported public import MQTTProtocol
