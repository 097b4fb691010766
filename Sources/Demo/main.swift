// The README's first example: NodeMCU's `mqtt` module example, step by step, in Swift.
// `make demo` runs it against a mosquitto it starts on a free loopback port:
//     Demo <host> <port>
import Dispatch
import UVMQTT

let arguments = CommandLine.arguments
let host = arguments.count > 1 ? arguments[1] : "127.0.0.1"
let port = arguments.count > 2 ? Int(arguments[2]) ?? 1883 : 1883
let done = DispatchSemaphore(value: 0)

// Client with a 120 s keepalive timer (user and password as in the NodeMCU example; a broker
// that allows anonymous clients ignores them).
let m = NodeMCUClient(clientID: "clientid", keepAlive: 120, username: "user", password: "password")

// The broker publishes this will on /lwt if the client disappears without a clean close.
try m.lwt("/lwt", "offline", qos: .atMostOnce, retain: false)

// Runs after every accepted connection, automatic reconnects included: subscribe here (the
// `connected:` completion of `connect` belongs to that one call and does not run when a
// failed first attempt is followed by a successful reconnect).
m.on(.connect) { client, sessionPresent in
    print("connected")
    // Subscribe to /topic with QoS 0, then publish to it: the broker sends it back.
    try? client.subscribe("/topic", qos: .atMostOnce) { _, result in
        switch result {
        case .success(let granted): print("subscribe success (granted: \(granted.rawValue))")
        case .failure(let error): print("subscribe failed: \(error)")
        }
    }
    try? client.publish("/topic", "hello", qos: .atMostOnce, retain: false) { _, _ in
        print("sent")
    }
}
m.on(.offline) { _ in
    print("offline")
    done.signal()
}

// Runs on the event loop thread; the message is read in place from the receive buffer.
m.on(.message) { client, message in
    print("\(message.topic): \(message.payloadString)")
    if message.payloadString == "hello" {
        client.close()
    }
}

do {
    try m.connect(host, port: port, secure: .off, autoreconnect: false, connected: { _ in
        print("connected to \(host):\(port)")
    }, failed: { _, reason in
        print("failed reason: \(reason.nodeMCUReasonCode) (\(reason))")
        done.signal()
    })
} catch {
    print("connect: \(error)")
    done.signal()
}

if done.wait(timeout: .now() + 10) == .timedOut {
    print("timed out")
}
