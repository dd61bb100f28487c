#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file opened for appending, created if missing, and closed when the object goes away: for
/// logs that grow a line at a time.
///
/// Each `write` goes to the end of the file in as few calls as the system allows (`O_APPEND`),
/// so a line written whole is not interleaved with another writer's. Nothing is synced to
/// disk: a crash can lose the last lines, never the file.
public final class AppendingFileWriter {
    public let path: String

    private let file: WritableDescriptor

    /// Opens `path` for appending, creating it if it does not exist.
    ///
    /// - Throws: `FileIOError.writeFailed`, for instance when the directory does not exist.
    public init(path: String) throws(FileIOError) {
        self.path = path
        file = try WritableDescriptor(opening: path, flags: O_CREAT | O_APPEND, path: path)
    }

    deinit {
        close(file.descriptor)
    }

    /// Appends `bytes`, which are not copied.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileIOError) {
        try file.write(bytes)
    }

    /// Appends the bytes of `elements` as they lie in memory.
    public func write<Element: BitwiseCopyable>(_ elements: [Element]) throws(FileIOError) {
        try file.write(elements)
    }
}
