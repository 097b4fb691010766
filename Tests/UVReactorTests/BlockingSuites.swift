import Testing

/// The suites whose tests block their thread: synchronous loopback sockets to openssl s_server or
/// a mosquitto TLS listener (100 ms timeouts, looped under deadlines), and servers starting and
/// stopping. Swift Testing runs every test on the cooperative pool, which has one thread per core:
/// two on the 2-core CI machine. Two such tests at once held both threads and starved every async
/// test in the process (timers, waits, the client tests) for as long as they ran; measured on a
/// loaded machine: `TimerTests.crossThreadCancelOfADueTimer` waited more than 5 s for a thread
/// (the test took 36.9 s and failed). Nested here under `.serialized`, they run one at a time and
/// hold at most one cooperative thread.
@Suite("Blocking TLS suites (one test at a time)", .serialized)
enum BlockingTLSSuites {}
