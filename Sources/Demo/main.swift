// Placeholder until the client engine lands: prints its arguments.
let arguments = CommandLine.arguments.dropFirst()
print("demo: would connect to \(arguments.joined(separator: " "))")
