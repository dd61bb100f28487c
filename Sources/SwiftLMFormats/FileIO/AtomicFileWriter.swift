#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file written under a temporary name beside its destination and renamed into place only
/// once all of it is on disk, so a reader sees the old file or the whole new one, never a part,
/// even after a crash.
///
/// The temporary file lies in the destination's directory, which keeps the final `rename` on
/// one file system, where it is atomic. `commit()` flushes the data (`fsync`), renames the file
/// over the destination, then flushes the directory so the rename itself is durable. Until then
/// the destination is untouched, and a writer dropped or discarded before `commit()` removes
/// its temporary file.
///
/// ```swift
/// let file = try AtomicFileWriter(path: "model.gguf")
/// try file.write(header)
/// try file.write(UnsafeRawBufferPointer(start: tensor.raw, count: byteCount))
/// try file.commit()
/// ```
public final class AtomicFileWriter {
    /// The destination.
    public let path: String
    /// Where the data goes until `commit()`: `path` plus `.tmp-PID-RANDOM`.
    public let temporaryPath: String

    private let file: WritableDescriptor
    private var isOpen = true

    /// Creates the temporary file.
    ///
    /// - Throws: `FileIOError.writeFailed`, for instance when the directory does not exist.
    public init(path: String) throws(FileIOError) {
        // The process id and a random number keep concurrent writers apart.
        self.path = path
        temporaryPath = path + ".tmp-\(getpid())-\(UInt32.random(in: .min ... .max))"
        file = try WritableDescriptor(
            opening: temporaryPath, flags: O_CREAT | O_EXCL, path: path)
    }

    deinit {
        discard()
    }

    /// Appends `bytes`, which are not copied.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileIOError) {
        precondition(isOpen, "write to \(path) after commit or discard")
        try file.write(bytes)
    }

    /// Appends the bytes of `elements` as they lie in memory.
    public func write<Element: BitwiseCopyable>(_ elements: [Element]) throws(FileIOError) {
        precondition(isOpen, "write to \(path) after commit or discard")
        try file.write(elements)
    }

    /// Overwrites the file at `offset` with the bytes of `elements`, leaving the append
    /// position where it was: for a header whose counts are known only at the end.
    public func write<Element: BitwiseCopyable>(
        _ elements: [Element], at offset: Int
    ) throws(FileIOError) {
        precondition(isOpen, "write to \(path) after commit or discard")
        try file.write(elements, at: offset)
    }

    /// Flushes the data to disk, closes the file and renames it over `path`. On failure the
    /// temporary file is removed and `path` is left as it was.
    public func commit() throws(FileIOError) {
        precondition(isOpen, "commit of \(path) after commit or discard")
        isOpen = false

        // Each reason is taken before the clean-up can change errno.
        guard fsync(file.descriptor) == 0 else {
            let reason = FileIOError.systemReason("fsync")
            close(file.descriptor)
            unlink(temporaryPath)
            throw .writeFailed(path: path, reason: reason)
        }

        // close can report a delayed write error, so it is checked too; after it returns the
        // descriptor is gone either way and must not be closed again.
        guard close(file.descriptor) == 0 else {
            let reason = FileIOError.systemReason("close")
            unlink(temporaryPath)
            throw .writeFailed(path: path, reason: reason)
        }
        guard rename(temporaryPath, path) == 0 else {
            let reason = FileIOError.systemReason("rename")
            unlink(temporaryPath)
            throw .writeFailed(path: path, reason: reason)
        }
        syncDirectory()
    }

    /// Closes and removes the temporary file; `path` is left as it was. Does nothing after
    /// `commit()` or an earlier `discard()`.
    public func discard() {
        guard isOpen else { return }
        isOpen = false
        close(file.descriptor)
        unlink(temporaryPath)
    }

    /// Writes a whole file of `bytes` atomically.
    public static func write(_ bytes: [UInt8], to path: String) throws(FileIOError) {
        let file = try AtomicFileWriter(path: path)
        try file.write(bytes)
        try file.commit()
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
