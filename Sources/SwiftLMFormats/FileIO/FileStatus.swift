#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a path names, following symbolic links: its kind and, for a regular file, its size.
public struct FileStatus: Sendable, Equatable {
    public enum Kind: Sendable { case regularFile, directory, other }

    public let kind: Kind
    /// The size in bytes of a regular file, at the time of the call.
    public let size: Int

    /// The status of `path`, or nil when nothing exists there (or it cannot be inspected).
    public init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        switch status.st_mode & S_IFMT {
        case S_IFREG: kind = .regularFile
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
        size = Int(status.st_size)
    }

    /// `path` made absolute, with symbolic links, "." and ".." resolved, so that two paths to
    /// one file compare equal; nil when it does not exist.
    public static func resolvedPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
