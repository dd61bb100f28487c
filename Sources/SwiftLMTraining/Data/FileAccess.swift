// File access for the training module's own files (token files, metrics, plots): atomic
// writing, appending, read-only memory mapping.
//
// SwiftLMFormats has the same two helpers (`AtomicFile`, `MemoryMap`), but they are internal to
// that module and throw `GGUFError`; these throw a plain `FileFailure` that each caller turns
// into its own typed error. If those helpers become `package`-visible, these can go.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a file operation failed, without the path: the caller knows the path and wraps this in
/// its own error.
enum FileFailure: Error, Equatable {
    /// Nothing exists at the path.
    case notFound
    /// Anything else: the C library's message, prefixed by the call that failed where useful.
    case failed(String)

    var reason: String {
        switch self {
        case .notFound: "no such file or directory"
        case .failed(let reason): reason
        }
    }
}

/// A file written under a temporary name beside its destination and renamed into place only
/// once all of it is on disk, so readers see the old file or the whole new one, never a part.
///
/// Dropping it without `commit()` removes the temporary file.
final class AtomicOutput {
    let path: String
    let temporaryPath: String
    private let descriptor: Int32
    private var isOpen = true

    init(path: String) throws(FileFailure) {
        // The same directory keeps the final rename on one file system, where it is atomic;
        // the process id and a random number keep concurrent writers apart.
        self.path = path
        temporaryPath = path + ".tmp-\(getpid())-\(UInt32.random(in: .min ... .max))"

        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw errno == ENOENT ? .failed("directory does not exist") : .failed(message())
        }
    }

    deinit {
        if isOpen { discard() }
    }

    /// Appends `bytes`, retrying short writes and interrupted calls.
    func write(_ bytes: UnsafeRawBufferPointer) throws(FileFailure) {
        precondition(isOpen, "write after commit or discard")
        var written = 0
        while written < bytes.count {
            let result = systemWrite(
                descriptor, bytes.baseAddress! + written, bytes.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                throw .failed(message())
            }
            written += result
        }
    }

    func write(_ bytes: [UInt8]) throws(FileFailure) {
        // Typed throws do not pass through `withUnsafeBytes`, so the error travels as a value.
        let failure: FileFailure? = bytes.withUnsafeBytes { buffer in
            do throws(FileFailure) { try write(buffer) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// Overwrites `bytes` at `offset`, leaving the append position where it was: for a header
    /// whose counts are known only at the end.
    func write(_ bytes: [UInt8], at offset: Int) throws(FileFailure) {
        precondition(isOpen, "write after commit or discard")
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                pwrite(
                    descriptor, buffer.baseAddress! + written, buffer.count - written,
                    off_t(offset + written))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw .failed(message())
            }
            written += result
        }
    }

    /// Flushes the data to disk, closes the file and renames it over `path`. On failure the
    /// temporary file is removed.
    func commit() throws(FileFailure) {
        precondition(isOpen, "commit after commit or discard")
        isOpen = false
        guard fsync(descriptor) == 0 else {
            let failure = FileFailure.failed("fsync: " + message())
            close(descriptor)
            unlink(temporaryPath)
            throw failure
        }

        // close can report a delayed write error, so it is checked too; after it returns the
        // descriptor is gone either way and must not be closed again.
        guard close(descriptor) == 0 else {
            let failure = FileFailure.failed("close: " + message())
            unlink(temporaryPath)
            throw failure
        }
        guard rename(temporaryPath, path) == 0 else {
            let failure = FileFailure.failed("rename: " + message())
            unlink(temporaryPath)
            throw failure
        }
        syncDirectory()
    }

    /// Closes and removes the temporary file; the destination is left as it was.
    func discard() {
        guard isOpen else { return }
        isOpen = false
        close(descriptor)
        unlink(temporaryPath)
    }

    /// Flushes the directory so the rename itself survives a crash. Best effort: the file is
    /// already complete and in place, and some file systems refuse fsync on a directory.
    private func syncDirectory() {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let handle = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_CLOEXEC)
        guard handle >= 0 else { return }
        fsync(handle)
        close(handle)
    }

    /// Writes a whole small file atomically.
    static func write(_ bytes: [UInt8], to path: String) throws(FileFailure) {
        let output = try AtomicOutput(path: path)
        try output.write(bytes)
        try output.commit()
    }
}

/// A file opened for appending, created if missing; closed when the object goes away.
final class AppendingFile {
    let path: String
    private let descriptor: Int32

    init(path: String) throws(FileFailure) {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw errno == ENOENT ? .failed("directory does not exist") : .failed(message())
        }
    }

    deinit {
        close(descriptor)
    }

    /// Appends `bytes` in one call where the system allows, so that a line written whole is
    /// never interleaved with another writer's, retrying short writes and interrupted calls.
    func write(_ bytes: [UInt8]) throws(FileFailure) {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                systemWrite(descriptor, buffer.baseAddress! + written, buffer.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw .failed(message())
            }
            written += result
        }
    }
}

/// A whole regular file mapped read-only into memory, unmapped when the object goes away.
///
/// `MAP_PRIVATE` with `PROT_READ` shares the page cache with other readers and never writes
/// back. If another process truncates the file while it is mapped, touching the lost pages
/// raises SIGBUS; no check at open time can rule that out.
final class ReadOnlyMapping: @unchecked Sendable {
    // Sendable: the mapping is read-only and never changes after init.
    let bytes: UnsafeRawBufferPointer

    init(path: String) throws(FileFailure) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw errno == ENOENT ? .notFound : .failed(message())
        }

        // The mapping keeps its own reference to the file, so the descriptor can go now.
        defer { close(descriptor) }

        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .failed(message()) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .failed("not a regular file") }

        // mmap rejects a length of 0, and an empty file has nothing to map anyway.
        let size = Int(status.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }

        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw .failed("mmap: " + message())
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    deinit {
        if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}

/// What a path names, following symbolic links; nil when nothing exists there.
struct FileStatus {
    enum Kind { case regularFile, directory, other }

    let kind: Kind
    /// The size in bytes of a regular file.
    let size: Int

    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        switch status.st_mode & S_IFMT {
        case S_IFREG: kind = .regularFile
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
        size = Int(status.st_size)
    }
}

/// `path` with symbolic links, "." and ".." resolved; nil when it does not exist.
func resolvedPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// The C library's text for the current `errno`.
private func message() -> String {
    String(cString: strerror(errno))
}

/// The C `write`, under a name that does not clash with the `write` methods above.
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
