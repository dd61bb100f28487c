#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A whole regular file mapped read-only into memory, unmapped when the object goes away.
///
/// `MAP_PRIVATE` with `PROT_READ` shares the page cache with other readers and never writes
/// back. The mapping is as long as the file was when it opened; a reader checks every length
/// and offset it finds inside against `bytes.count`. If another process truncates the file
/// while it is mapped, touching the lost pages raises SIGBUS; no check at open time can rule
/// that out.
public final class MemoryMappedFile: @unchecked Sendable {
    // Sendable by hand: the mapping is read-only and nothing changes after init; only the raw
    // pointer keeps the compiler from seeing that.

    /// The path the file was opened from.
    public let path: String

    /// The file's bytes, page-aligned; empty, with no base address, for an empty file.
    public let bytes: UnsafeRawBufferPointer

    /// Maps the regular file at `path`.
    ///
    /// - Throws: `FileIOError.notFound` when nothing is at `path`, `unreadable` when it cannot
    ///   be opened or mapped or is not a regular file (a directory, a device, a pipe).
    public init(path: String) throws(FileIOError) {
        self.path = path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { throw .notFound(path: path) }
            throw .unreadable(path: path, reason: FileIOError.systemReason("open"))
        }

        // The mapping keeps its own reference to the file, so the descriptor can go now.
        defer { close(descriptor) }

        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw .unreadable(path: path, reason: FileIOError.systemReason("fstat"))
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw .unreadable(path: path, reason: "not a regular file")
        }

        // mmap rejects a length of 0, and an empty file has nothing to map anyway.
        let size = Int(status.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }

        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw .unreadable(path: path, reason: FileIOError.systemReason("mmap"))
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    deinit {
        if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}
