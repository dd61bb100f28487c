import SwiftLMCore

/// A GGUF model file, memory-mapped and validated.
///
/// Opening a file reads and checks its header (metadata and tensor infos) and nothing else;
/// tensor data stays in the page cache until a kernel touches it through `data(for:)`. The
/// header is treated as hostile: every count, length, shape and offset is checked before it is
/// used, and a bad file throws a `GGUFError` naming the field and its byte offset.
///
/// The format is specified in ggml's `docs/gguf.md`. Versions 2 and 3 are read; version 1
/// (32-bit counts) and big-endian files are rejected as unsupported.
///
/// Keep the `GGUFFile` alive while using any buffer from `data(for:)`: the buffers point into the
/// mapping, which is unmapped when the file object goes away.
public final class GGUFFile: @unchecked Sendable {
    // Sendable by hand: every stored property is immutable after init and the mapping is
    // read-only, so threads may share one file; only the raw pointer in `mapping` keeps the
    // compiler from seeing that.

    /// The path the file was opened from.
    public let path: String

    /// The format version, 2 or 3.
    public let version: Int

    /// The alignment of tensor data in bytes: `general.alignment`, or 32 when absent.
    public let alignment: Int

    /// Every metadata pair, by key.
    public let metadata: [String: GGUFValue]

    /// The metadata keys in file order.
    public let metadataKeys: [String]

    /// The tensors in file order.
    public let tensors: [GGUFTensorInfo]

    /// The byte offset of the data section from the start of the file; tensor offsets count
    /// from here.
    public let dataOffset: Int

    private let mapping: MemoryMappedFile
    private let tensorIndex: [String: Int]

    /// Memory-maps and validates the file at `path`.
    ///
    /// - Throws: `GGUFError` when the file is missing, unreadable, or not a well-formed GGUF
    ///   file of version 2 or 3.
    public init(path: String) throws(GGUFError) {
        let mapping: MemoryMappedFile
        do throws(FileIOError) {
            mapping = try MemoryMappedFile(path: path)
        } catch {
            throw GGUFError(error)
        }
        let header = try GGUFParser.parse(mapping.bytes, path: path)

        self.path = path
        self.mapping = mapping
        version = header.version
        alignment = header.alignment
        metadata = header.metadata
        metadataKeys = header.metadataKeys
        tensors = header.tensors
        dataOffset = header.dataOffset

        // The parser rejected duplicate names, so each name has one index.
        tensorIndex = Dictionary(
            uniqueKeysWithValues: header.tensors.enumerated().map { ($0.element.name, $0.offset) })
    }

    /// The size of the file in bytes.
    public var fileSize: Int { mapping.bytes.count }

    /// `general.architecture`, e.g. `llama`.
    public var architecture: String? { metadata["general.architecture"]?.string }

    /// The tensor with this name, or nil.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The bytes of a tensor of this file, as a view into the mapping; nothing is copied.
    ///
    /// The buffer is valid while this `GGUFFile` is alive. `tensor` must come from this file's
    /// `tensors`; the parser has checked that its bytes lie inside the file.
    public func data(for tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataOffset + tensor.offset
        precondition(
            tensor.offset >= 0 && tensor.byteCount <= fileSize - start,
            "tensor '\(tensor.name)' does not lie inside \(path); is it from another file?")
        return UnsafeRawBufferPointer(rebasing: mapping.bytes[start..<(start + tensor.byteCount)])
    }
}
