import SwiftLMCore

/// A safetensors file, memory-mapped and validated: the format Hugging Face uses for weights,
/// and SwiftLM for training checkpoints and PEFT adapters.
///
/// Opening a file reads and checks its header and nothing else; tensor data stays in the page
/// cache until it is used. The header is treated as hostile: every length, shape and offset is
/// checked before it is used (see `SafeTensorsParser` for the rules), and a bad file throws a
/// `SafeTensorsError` naming the tensor, the field and the bad value.
///
/// Tensors from `tensor(_:)` may be views into the mapping; they keep it alive on their own,
/// so they stay valid after the file object goes away. Never write through them.
public final class SafeTensorsFile: @unchecked Sendable {
    // Sendable by hand: every stored property is immutable after init and the mapping is
    // read-only, so threads may share one file; only the raw pointer in `mapping` keeps the
    // compiler from seeing that.

    /// The path the file was opened from.
    public let path: String

    /// The `__metadata__` pairs; empty when the file has none.
    public let metadata: [String: String]

    /// The tensors in data order, which is the order the reference writer sorts them in
    /// (dtype, largest first, then name) when the file came from it.
    public let tensors: [SafeTensorsTensorInfo]

    /// The tensor names in data order.
    public let names: [String]

    /// The byte offset of the data section from the start of the file: 8 plus the header length.
    public let dataOffset: Int

    private let mapping: MemoryMappedFile
    private let tensorIndex: [String: Int]

    /// Memory-maps and validates the file at `path`.
    ///
    /// - Throws: `SafeTensorsError` when the file is missing, unreadable or not a well-formed
    ///   safetensors file.
    public init(path: String) throws(SafeTensorsError) {
        let mapping: MemoryMappedFile
        do throws(FileIOError) {
            mapping = try MemoryMappedFile(path: path)
        } catch {
            throw SafeTensorsError(error)
        }
        let header = try SafeTensorsParser.parse(mapping.bytes)

        self.path = path
        self.mapping = mapping
        metadata = header.metadata
        tensors = header.tensors
        names = header.tensors.map(\.name)
        dataOffset = header.dataOffset

        // Names are the keys of one JSON object, so each has one index.
        tensorIndex = Dictionary(
            uniqueKeysWithValues: header.tensors.enumerated().map { ($0.element.name, $0.offset) })
    }

    /// The size of the file in bytes.
    public var fileSize: Int { mapping.bytes.count }

    /// The dtype, shape and place of the tensor with this name, or nil.
    public func info(_ name: String) -> SafeTensorsTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The raw little-endian bytes of a tensor of any dtype, as a view into the mapping; nothing
    /// is copied. The buffer is valid while this `SafeTensorsFile` is alive.
    public func data(for name: String) throws(SafeTensorsError) -> UnsafeRawBufferPointer {
        bytes(of: try checkedInfo(name))
    }

    /// The tensor with this name, in its own dtype: F32, F16 or BF16.
    ///
    /// [shape] -> [shape]. A zero-copy view into the mapping when the data is aligned for its
    /// element type, which the reference writer ensures; otherwise an owned copy.
    ///
    /// - Throws: `tensorNotFound`, or `unsupportedDType` for other dtypes; `data(for:)` reads
    ///   those as bytes.
    public func tensor(_ name: String) throws(SafeTensorsError) -> Tensor {
        let info = try checkedInfo(name)
        guard let type = info.dtype.elementType, [.f32, .f16, .bf16].contains(type) else {
            throw .unsupportedDType(
                tensor: name, dtype: info.dtype.rawValue,
                allowed: "F32, F16 and BF16 (data(for:) reads any dtype as bytes)")
        }

        let source = bytes(of: info)
        guard let start = source.baseAddress, !source.isEmpty else {
            return Tensor(zeros: info.shape, type: type)
        }
        if Int(bitPattern: start) % type.blockBytes == 0 {
            let storage = TensorStorage(borrowing: start, byteCount: source.count, owner: mapping)
            return Tensor(shape: info.shape, type: type, storage: storage)
        }

        let copy = Tensor(zeros: info.shape, type: type)
        copy.raw.copyMemory(from: start, byteCount: source.count)
        return copy
    }

    /// The tensor with this name as an owned F32 tensor, converting F16, BF16 and F64.
    ///
    /// [shape] -> [shape]. F64 values are rounded to the nearest float.
    ///
    /// - Throws: `tensorNotFound`, or `unsupportedDType` for integer and other dtypes.
    public func floatTensor(_ name: String) throws(SafeTensorsError) -> Tensor {
        let info = try checkedInfo(name)
        let source = bytes(of: info)
        let result = Tensor(zeros: info.shape)
        let count = info.elementCount

        switch info.dtype {
        case .f32, .f16, .bf16:
            guard let start = source.baseAddress, count > 0 else { return result }
            Quantization.dequantizeRow(info.dtype.elementType!, start, result.floats, count: count)
        case .f64:
            for index in 0..<count {
                let bits = source.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self)
                result.floats[index] = Float(Double(bitPattern: UInt64(littleEndian: bits)))
            }
        default:
            throw .unsupportedDType(
                tensor: name, dtype: info.dtype.rawValue, allowed: "F32, F16, BF16 and F64")
        }
        return result
    }

    private func checkedInfo(_ name: String) throws(SafeTensorsError) -> SafeTensorsTensorInfo {
        guard let info = info(name) else { throw .tensorNotFound(name) }
        return info
    }

    /// The parser has checked that every tensor's bytes lie inside the data section.
    private func bytes(of info: SafeTensorsTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataOffset + info.dataOffsets.lowerBound
        return UnsafeRawBufferPointer(rebasing: mapping.bytes[start..<(start + info.byteCount)])
    }
}
