// What the test process holds right now, from /proc/self (Linux): for leak checks that must
// see threads, descriptors and address space, not just Swift objects.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A sample of the process's threads, open file descriptors and virtual memory size.
public struct ProcessResources: Sendable, CustomStringConvertible {
    /// `Threads:` in `/proc/self/status` (kernel tasks: an exited thread no longer counts, even
    /// when nobody joined it; its stack then still shows in ``virtualMemoryKiB``).
    public var threads: Int
    /// Entries in `/proc/self/fd`.
    public var openFileDescriptors: Int
    /// `VmSize:` in `/proc/self/status`, in KiB (every mapping: thread stacks, malloc arenas).
    public var virtualMemoryKiB: Int

    public init(threads: Int, openFileDescriptors: Int, virtualMemoryKiB: Int) {
        self.threads = threads
        self.openFileDescriptors = openFileDescriptors
        self.virtualMemoryKiB = virtualMemoryKiB
    }

    /// Reads the current values (a few tens of microseconds).
    public static func current() -> ProcessResources {
        var threads = -1
        var virtualMemory = -1
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") {
                if line.hasPrefix("Threads:") {
                    threads = Int(line.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces)) ?? -1
                } else if line.hasPrefix("VmSize:") {
                    let value = line.dropFirst("VmSize:".count).trimmingCharacters(in: .whitespaces)
                    virtualMemory = Int(value.split(separator: " ").first ?? "") ?? -1
                }
            }
        }
        return ProcessResources(threads: threads, openFileDescriptors: countOpenFileDescriptors(),
                                virtualMemoryKiB: virtualMemory)
    }

    /// The growth from `baseline` to `self` (negative when something was released).
    public func growth(since baseline: ProcessResources) -> ProcessResources {
        ProcessResources(threads: threads - baseline.threads,
                         openFileDescriptors: openFileDescriptors - baseline.openFileDescriptors,
                         virtualMemoryKiB: virtualMemoryKiB - baseline.virtualMemoryKiB)
    }

    /// Whether no value exceeds the corresponding one of `limit`.
    public func isWithin(_ limit: ProcessResources) -> Bool {
        threads <= limit.threads && openFileDescriptors <= limit.openFileDescriptors
            && virtualMemoryKiB <= limit.virtualMemoryKiB
    }

    public var description: String {
        "threads \(threads), fds \(openFileDescriptors), VmSize \(virtualMemoryKiB / 1024) MiB"
    }

    private static func countOpenFileDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { count += 1 }
        }
        // The directory stream itself holds one descriptor while we count.
        return count - 1
    }
}
