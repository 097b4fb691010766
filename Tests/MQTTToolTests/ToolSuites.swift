import Testing

/// Every suite of the tool's tests, one test at a time. The tests are synchronous: they wait
/// for `mqtt` and mosquitto processes and so block their thread, which is one of the cooperative
/// pool's (one per core: two on CI). Running side by side, they held both and starved the async
/// tests of the other targets (timers, keepalive, reconnects) that `make test` runs in the same
/// process; nested here under `.serialized` they hold at most one.
@Suite("mqtt command-line tool (one test at a time)", .serialized)
enum MQTTToolSuites {}
