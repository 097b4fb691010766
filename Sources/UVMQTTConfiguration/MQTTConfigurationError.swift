/// A configuration value that is missing or cannot be used, naming its key.
///
/// Thrown by ``UVMQTT/MQTTClientOptions/init(config:prefix:)`` and
/// ``UVMQTT/MQTTServer/init(config:prefix:)``. The key is the full configuration key
/// (`mqtt.keepAlive`); the environment variable is the same key in upper snake case
/// (`MQTT_KEEP_ALIVE`). The value of a secret key (``isSecretKey(_:)``) is never included.
/// Not frozen: cases may be added.
public enum MQTTConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A required key has no value (`mqtt.clientID`, or `mqtt.server.uri` / `mqtt.server.host`).
    case missing(key: String)
    /// A key's value has the wrong type or is out of range. `value` is what was found (nil
    /// for a secret); `expected` says what is accepted.
    case invalid(key: String, value: String?, expected: String)
    /// Two keys that exclude each other are both set (`mqtt.server.uri` and `mqtt.server.host`).
    case conflicting(key: String, otherKey: String)

    /// The key the error is about.
    public var key: String {
        switch self {
        case .missing(let key), .invalid(let key, _, _), .conflicting(let key, _): key
        }
    }

    /// One line for logs: the key, what was wrong, what is accepted.
    public var description: String {
        switch self {
        case .missing(let key):
            "\(key): missing (environment variable \(MQTTConfigurationError.environmentName(key)))"
        case .invalid(let key, let value, let expected):
            "\(key): expected \(expected), got \(value.map { "\"\($0)\"" } ?? "<secret>")"
        case .conflicting(let key, let other):
            "\(key) and \(other) are both set; use one"
        }
    }

    /// Whether the value of `key` (a key relative to the prefix, such as `password`) is a
    /// secret: never logged, never put in an error.
    ///
    /// - Parameter key: A key relative to the prefix.
    /// - Returns: True for `password` and `will.payload`.
    public static func isSecretKey(_ key: String) -> Bool {
        secretKeys.contains(key)
    }

    static let secretKeys: Set<String> = ["password", "will.payload"]

    /// The environment variable swift-configuration's `EnvironmentVariablesProvider` reads for
    /// `key`: components joined with `_`, camel case split, upper-cased.
    static func environmentName(_ key: String) -> String {
        var out = ""
        var previous: Character?
        for c in key {
            if c == "." {
                out.append("_")
            } else {
                if let p = previous, p.isLowercase, c.isUppercase { out.append("_") }
                out.append(c.isLetter || c.isNumber ? Character(c.uppercased()) : "_")
            }
            previous = c
        }
        return out
    }
}
