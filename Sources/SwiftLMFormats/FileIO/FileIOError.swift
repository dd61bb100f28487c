#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a file could not be read or written by SwiftLM's file layer (`MemoryMappedFile`,
/// `AtomicFileWriter`, `AppendingFileWriter`). The error of each file format carries these
/// cases over into its own, so a caller sees one error type per format.
///
/// `reason` names the system call that failed and gives the C library's text for its `errno`
/// (`open: Permission denied`), or says in words what is wrong (`not a regular file`).
public enum FileIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing exists at the path to read.
    case notFound(path: String)

    /// The path exists but could not be opened, inspected or memory-mapped.
    case unreadable(path: String, reason: String)

    /// Writing failed; a file written atomically is left as it was.
    case writeFailed(path: String, reason: String)

    /// The path that could not be read or written.
    public var path: String {
        switch self {
        case .notFound(let path), .unreadable(let path, _), .writeFailed(let path, _): path
        }
    }

    public var description: String {
        switch self {
        case .notFound(let path):
            "file not found: \(oneLine(path))"
        case .unreadable(let path, let reason):
            "cannot read \(oneLine(path)): \(oneLine(reason))"
        case .writeFailed(let path, let reason):
            "cannot write \(oneLine(path)): \(oneLine(reason))"
        }
    }

    /// The reason for the system call `call` that just failed: its name and the C library's
    /// text for `errno`. Call it before anything else can change `errno`.
    static func systemReason(_ call: String) -> String {
        call + ": " + String(cString: strerror(errno))
    }
}
