// The protocol vocabulary (QoS, ProtocolVersion, Will, errors, reasons) and the reactor's
// public types (EventLoop, TLSConfiguration, TransportError) are part of the client's API.
@_exported public import MQTTProtocol
@_exported public import UVReactor
