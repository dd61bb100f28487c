#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file descriptor open for writing and the path its errors name: the write loop that
/// `AtomicFileWriter` and `AppendingFileWriter` share. Closing is left to its owner.
struct WritableDescriptor {
    let descriptor: Int32
    /// The path that errors name: the destination, not a temporary file.
    let path: String

    /// Opens `openPath` with `flags` and mode 0644, naming `path` in errors.
    init(opening openPath: String, flags: Int32, path: String) throws(FileIOError) {
        descriptor = open(openPath, flags | O_WRONLY | O_CLOEXEC, 0o644)
        self.path = path
        guard descriptor >= 0 else {
            throw .writeFailed(path: path, reason: FileIOError.systemReason("open"))
        }
    }

    /// Writes all of `bytes` at the current position, or at `offset` without moving it,
    /// retrying short writes and interrupted calls.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int? = nil) throws(FileIOError) {
        let call = offset == nil ? "write" : "pwrite"
        var written = 0
        while written < bytes.count {
            let start = bytes.baseAddress! + written
            let result =
                if let offset {
                    pwrite(descriptor, start, bytes.count - written, off_t(offset + written))
                } else {
                    systemWrite(descriptor, start, bytes.count - written)
                }
            if result < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, reason: FileIOError.systemReason(call))
            }
            written += result
        }
    }

    /// Writes the bytes of `elements` as they lie in memory.
    func write<Element: BitwiseCopyable>(
        _ elements: [Element], at offset: Int? = nil
    ) throws(FileIOError) {
        // Array's withUnsafeBytes rethrows untyped errors, so the typed one travels as a value.
        let failure: FileIOError? = elements.withUnsafeBytes { bytes in
            do throws(FileIOError) { try write(bytes, at: offset) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }
}

/// The C `write`, under a name that does not clash with the `write` methods.
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
