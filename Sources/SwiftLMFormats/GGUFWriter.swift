import SwiftLMCore

/// Builds a GGUF file: metadata pairs and tensors in the order they were added.
///
/// The layout follows ggml's `docs/gguf.md` and matches what ggml and gguf-py write: the data
/// section starts at the first multiple of the alignment after the tensor infos, and each
/// tensor's data, the last one included, is padded with zeros to a multiple of the alignment.
///
/// ```swift
/// var writer = GGUFWriter()
/// writer.set("general.architecture", .string("llama"))
/// try writer.addTensor(name: "output_norm.weight", shape: [576], type: .f32, data: bytes)
/// try writer.write(to: "model.gguf")
/// ```
public struct GGUFWriter: Sendable {
    /// The alignment of tensor data in bytes, a power of two. Setting `general.alignment`
    /// changes it.
    public private(set) var alignment: Int

    private var pairs: [(key: String, value: GGUFValue)] = []
    private var pairIndex: [String: Int] = [:]
    private var tensors: [(name: String, shape: [Int], type: ElementType, data: [UInt8])] = []
    private var tensorNames = Set<String>()

    /// ggml keeps tensor names in a 64-byte buffer with a terminating NUL (`GGML_MAX_NAME`);
    /// readers built on it reject longer names.
    public static let maxTensorNameBytes = 63

    /// Creates an empty writer. An alignment other than 32, the default of the format, is
    /// recorded as `general.alignment`.
    ///
    /// - Parameter alignment: A power of two that fits in a uint32.
    public init(alignment: Int = 32) {
        self.alignment = GGUFParser.defaultAlignment
        if alignment != GGUFParser.defaultAlignment {
            precondition(
                alignment > 0 && alignment <= Int(UInt32.max),
                "GGUF alignment \(alignment) must be a power of two that fits in a uint32")
            set(GGUFParser.alignmentKey, .uint32(UInt32(alignment)))
        }
    }

    /// Sets a metadata value. A key that is already set keeps its place and takes the new value.
    ///
    /// `general.alignment` must be a uint32 power of two; it sets `alignment`.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if key == GGUFParser.alignmentKey {
            guard case .uint32(let newAlignment) = value,
                newAlignment != 0, newAlignment & (newAlignment - 1) == 0
            else {
                preconditionFailure("general.alignment must be a uint32 power of two, not \(value)")
            }
            alignment = Int(newAlignment)
        }

        if let index = pairIndex[key] {
            pairs[index].value = value
        } else {
            pairIndex[key] = pairs.count
            pairs.append((key, value))
        }
    }

    /// Adds a tensor after the ones already added.
    ///
    /// - Parameters:
    ///   - name: A name no other tensor has, at most `maxTensorNameBytes` bytes of UTF-8.
    ///   - shape: One to four dimensions, ne0 (the row length) first; the row length must be a
    ///     multiple of the type's block size.
    ///   - type: The element type of `data`.
    ///   - data: The tensor's bytes, exactly as many as `shape` and `type` need.
    /// - Throws: `GGUFError.invalidTensor` naming what does not fit.
    public mutating func addTensor(
        name: String, shape: [Int], type: ElementType, data: [UInt8]
    ) throws(GGUFError) {
        guard !tensorNames.contains(name) else {
            throw .invalidTensor(name: name, reason: "a tensor with this name was already added")
        }
        guard name.utf8.count <= Self.maxTensorNameBytes else {
            throw .invalidTensor(
                name: name,
                reason: "name is \(name.utf8.count) bytes, ggml allows at most "
                    + "\(Self.maxTensorNameBytes)")
        }

        let byteCount: Int
        switch GGUFTensorInfo.checkedByteCount(shape: shape, type: type) {
        case .success(let bytes):
            byteCount = bytes
        case .failure(let problem):
            throw .invalidTensor(
                name: name,
                reason: "\(problem.field) is \(problem.value), expected \(problem.expected)")
        }
        guard data.count == byteCount else {
            throw .invalidTensor(
                name: name,
                reason: "data has \(data.count) bytes, shape \(shape) of \(messageName(of: type)) "
                    + "needs \(byteCount)")
        }

        tensorNames.insert(name)
        tensors.append((name, shape, type, data))
    }

    /// The whole file as bytes.
    ///
    /// - Parameter version: 2 or 3. The two share one layout; 3 only allows big-endian files,
    ///   which this writer never produces.
    public func serialized(version: Int = 3) -> [UInt8] {
        var bytes = header(version: version)
        for tensor in tensors {
            bytes += tensor.data
            bytes += [UInt8](repeating: 0, count: padding(after: tensor.data.count))
        }
        return bytes
    }

    /// Writes the file atomically: to a temporary file beside `path`, flushed to disk, then
    /// renamed over `path`, so a reader never sees a half-written model.
    ///
    /// - Parameter version: 2 or 3, as for `serialized(version:)`.
    /// - Throws: `GGUFError.writeFailed` with the system's reason.
    public func write(to path: String, version: Int = 3) throws(GGUFError) {
        let header = header(version: version)
        do throws(FileIOError) {
            let file = try AtomicFileWriter(path: path)
            try file.write(header)
            for tensor in tensors {
                try file.write(tensor.data)
                try file.write([UInt8](repeating: 0, count: padding(after: tensor.data.count)))
            }
            try file.commit()
        } catch {
            throw GGUFError(error)
        }
    }

    /// Everything before the tensor data, padding included.
    private func header(version: Int) -> [UInt8] {
        precondition(
            GGUFParser.supportedVersions.contains(UInt32(clamping: version)),
            "GGUF version \(version) cannot be written (supported: 2, 3)")

        var sink = GGUFByteSink()
        sink.bytes += "GGUF".utf8
        sink.append(UInt32(version))
        sink.append(UInt64(tensors.count))
        sink.append(UInt64(pairs.count))

        for pair in pairs {
            sink.append(pair.key)
            sink.append(pair.value)
        }

        var offset = 0
        for tensor in tensors {
            sink.append(tensor.name)
            sink.append(UInt32(tensor.shape.count))
            for dimension in tensor.shape { sink.append(UInt64(dimension)) }
            sink.append(tensor.type.rawValue)
            sink.append(UInt64(offset))
            offset += tensor.data.count + padding(after: tensor.data.count)
        }

        sink.bytes += [UInt8](repeating: 0, count: padding(after: sink.bytes.count))
        return sink.bytes
    }

    /// The zero bytes that bring `length` up to a multiple of the alignment.
    private func padding(after length: Int) -> Int {
        (alignment - length % alignment) % alignment
    }
}

/// Little-endian encoding of GGUF fields into a growing byte array.
struct GGUFByteSink {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    /// A GGUF string: a uint64 byte length, then the UTF-8 bytes without a terminator.
    mutating func append(_ string: String) {
        append(UInt64(string.utf8.count))
        bytes += string.utf8
    }

    /// A type tag, then the value.
    mutating func append(_ value: GGUFValue) {
        append(value.type.rawValue)

        switch value {
        case .uint8(let value): append(value)
        case .int8(let value): append(value)
        case .uint16(let value): append(value)
        case .int16(let value): append(value)
        case .uint32(let value): append(value)
        case .int32(let value): append(value)
        case .uint64(let value): append(value)
        case .int64(let value): append(value)
        case .float32(let value): append(value.bitPattern)
        case .float64(let value): append(value.bitPattern)
        case .bool(let value): append(UInt8(value ? 1 : 0))
        case .string(let value): append(value)
        case .array(let array): append(array)
        }
    }

    /// An array without a type tag in front: element type, count, elements.
    mutating func append(_ array: GGUFArray) {
        append(array.elementType.rawValue)
        append(UInt64(array.count))

        switch array {
        case .uint8(let elements): appendPacked(elements)
        case .int8(let elements): appendPacked(elements)
        case .uint16(let elements): appendPacked(elements)
        case .int16(let elements): appendPacked(elements)
        case .uint32(let elements): appendPacked(elements)
        case .int32(let elements): appendPacked(elements)
        case .uint64(let elements): appendPacked(elements)
        case .int64(let elements): appendPacked(elements)
        case .float32(let elements): appendPacked(elements.map(\.bitPattern))
        case .float64(let elements): appendPacked(elements.map(\.bitPattern))
        case .bool(let elements): bytes += elements.map { $0 ? 1 : 0 }
        case .string(let elements): for element in elements { append(element) }
        case .arrays(let elements): for element in elements { append(element) }
        }
    }

    private mutating func appendPacked<T: FixedWidthInteger>(_ values: [T]) {
        #if _endian(big)
            for value in values { append(value) }
        #else
            values.withUnsafeBytes { bytes += $0 }
        #endif
    }
}
