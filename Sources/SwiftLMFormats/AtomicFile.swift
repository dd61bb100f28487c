#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file written under a temporary name beside its destination and renamed into place only
/// once all of it is on disk. Call `commit()` to publish it or `discard()` to remove it.
struct AtomicFile {
    let path: String
    let temporaryPath: String
    private let descriptor: Int32

    init(path: String) throws(GGUFError) {
        // The same directory keeps the final rename on one file system, where it is atomic;
        // the process id and a random number keep concurrent writers apart.
        self.path = path
        temporaryPath = path + ".tmp-\(getpid())-\(UInt32.random(in: .min ... .max))"

        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw .writeFailed(path: path, reason: systemMessage(errno))
        }
    }

    /// Appends `bytes`, retrying short writes and interrupted calls.
    func write(_ bytes: [UInt8]) throws(GGUFError) {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                systemWrite(descriptor, buffer.baseAddress! + written, buffer.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, reason: systemMessage(errno))
            }
            written += result
        }
    }

    /// Flushes the data to disk, closes the file and renames it over `path`. On failure the
    /// temporary file is removed.
    func commit() throws(GGUFError) {
        guard fsync(descriptor) == 0 else {
            let reason = "fsync: " + systemMessage(errno)
            discard()
            throw .writeFailed(path: path, reason: reason)
        }

        // close can report a delayed write error, so it is checked too; after it returns the
        // descriptor is gone either way and must not be closed again.
        guard close(descriptor) == 0 else {
            let reason = "close: " + systemMessage(errno)
            unlink(temporaryPath)
            throw .writeFailed(path: path, reason: reason)
        }
        guard rename(temporaryPath, path) == 0 else {
            let reason = "rename: " + systemMessage(errno)
            unlink(temporaryPath)
            throw .writeFailed(path: path, reason: reason)
        }
        syncDirectory()
    }

    /// Closes and removes the temporary file after a failed write. Not for use after `commit()`.
    func discard() {
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
}

/// The C `write`, under a name that does not clash with `AtomicFile.write`.
private func systemWrite(
    _ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int
) -> Int {
    write(descriptor, buffer, count)
}
