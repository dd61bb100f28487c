/// A read position in the bytes of a GGUF file that checks every read against the end.
///
/// Each read takes the name of the field it reads, as an autoclosure so the happy path builds no
/// strings; when the bytes run out the error names that field and where it starts.
struct GGUFCursor {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var bytesLeft: Int { bytes.count - offset }

    /// Throws unless `count` more bytes remain.
    func require(_ count: Int, for field: () -> String) throws(GGUFError) {
        guard count <= bytesLeft else {
            throw .truncated(field: field(), needed: count, offset: offset, fileSize: bytes.count)
        }
    }

    /// Reads one little-endian integer.
    mutating func read<T: FixedWidthInteger>(
        _: T.Type, _ field: @autoclosure () -> String
    ) throws(GGUFError) -> T {
        try require(MemoryLayout<T>.size, for: field)

        // Fields in GGUF are packed, so most are not aligned for a direct load.
        let raw = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: raw)
    }

    /// Reads a uint64 count of items of at least `minimumItemBytes` each, and checks that the
    /// rest of the file could hold that many before anyone allocates for them.
    mutating func readCount(
        minimumItemBytes: Int, _ field: @autoclosure () -> String
    ) throws(GGUFError) -> Int {
        let start = offset
        let count = try read(UInt64.self, field())

        let limit = bytesLeft / max(minimumItemBytes, 1)
        guard count <= UInt64(limit) else {
            throw .countTooLarge(field: field(), count: count, offset: start, bytesLeft: bytesLeft)
        }
        return Int(count)
    }

    /// Reads a GGUF string: a uint64 byte length, then that many bytes of UTF-8.
    mutating func readString(_ field: @autoclosure () -> String) throws(GGUFError) -> String {
        let start = offset
        let length = try readCount(minimumItemBytes: 1, field())
        guard length > 0 else { return "" }

        // readCount has checked the length against the bytes left, so the slice is in bounds.
        let base = bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self)
        guard
            let string = String(
                validating: UnsafeBufferPointer(start: base, count: length),
                as: UTF8.self)
        else {
            throw .invalidUTF8(field: field(), offset: start)
        }
        offset += length
        return string
    }

    /// Reads a uint64 count, then that many packed little-endian values of a fixed-size type in
    /// one copy. `fromLittleEndian` converts a value on big-endian hosts.
    mutating func readPackedArray<T: BitwiseCopyable>(
        _: T.Type, _ countField: @autoclosure () -> String, _ fromLittleEndian: (T) -> T
    ) throws(GGUFError) -> [T] {
        let count = try readCount(minimumItemBytes: MemoryLayout<T>.size, countField())
        guard count > 0 else { return [] }

        // readCount has checked that count * size bytes remain.
        let byteCount = count * MemoryLayout<T>.size
        let source = UnsafeRawBufferPointer(
            start: bytes.baseAddress!.advanced(by: offset), count: byteCount)
        let values = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            initialized = count
        }
        offset += byteCount

        #if _endian(big)
            return values.map(fromLittleEndian)
        #else
            return values
        #endif
    }
}
