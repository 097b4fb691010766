#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Facts about the machine the process runs on.
public enum System {
    /// The number of processors online (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
    ///
    /// The default size of an ``EventLoopGroup``: one loop per core.
    public static var coreCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}
