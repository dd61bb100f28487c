import SwiftLMCore

/// Everything in a GGUF file before the tensor data, checked.
struct GGUFHeader {
    var version: Int
    var alignment: Int
    var metadata: [String: GGUFValue]
    var metadataKeys: [String]
    var tensors: [GGUFTensorInfo]
    var dataOffset: Int
}

/// Reads and validates the header of a GGUF file, following ggml's `docs/gguf.md`.
///
/// The bytes are hostile until checked: every count and length is held against the bytes left
/// before anything is allocated for it, arrays nest at most `maxNestingDepth` deep, and every
/// tensor must lie inside the file. Nothing in the file can reach a trap.
struct GGUFParser {
    /// `GGUF` in file order.
    static let magic: UInt32 = 0x4747_5546
    static let supportedVersions: ClosedRange<UInt32> = 2...3
    static let defaultAlignment = 32
    static let alignmentKey = "general.alignment"

    /// Real files nest arrays one level at most; eight leaves room and still bounds the stack.
    static let maxNestingDepth = 8

    /// The smallest a metadata pair can be: an empty key (8), a type (4), a one-byte value.
    static let minimumPairBytes = 8 + 4 + 1

    /// The smallest a tensor info can be: an empty name (8), n_dims (4), one dimension (8), the
    /// type (4) and the offset (8).
    static let minimumTensorInfoBytes = 8 + 4 + 8 + 4 + 8

    /// The smallest an array inside an array can be: its element type (4) and count (8).
    static let minimumArrayBytes = 4 + 8

    private var cursor: GGUFCursor
    private let path: String

    /// A tensor whose placement can only be checked once the data section's start is known.
    private struct PendingTensor {
        var name: String
        var shape: [Int]
        var type: ElementType
        var byteCount: Int
        var offset: UInt64
        var offsetFieldPosition: Int
    }

    /// Parses the header of the file whose bytes are `bytes`; `path` is only for messages.
    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws(GGUFError)
        -> GGUFHeader
    {
        var parser = GGUFParser(cursor: GGUFCursor(bytes: bytes), path: path)
        return try parser.parseHeader()
    }

    private mutating func parseHeader() throws(GGUFError) -> GGUFHeader {
        let version = try readMagicAndVersion()

        let tensorCount = try cursor.readCount(
            minimumItemBytes: Self.minimumTensorInfoBytes, "tensor_count")
        let pairCount = try cursor.readCount(
            minimumItemBytes: Self.minimumPairBytes, "metadata_kv_count")

        let (metadata, keys, alignmentPosition) = try readMetadata(count: pairCount)
        let alignment = try checkedAlignment(metadata, position: alignmentPosition)

        let pending = try readTensorInfos(count: tensorCount)
        let dataOffset = try dataSectionStart(alignment: alignment, hasTensors: !pending.isEmpty)
        let tensors = try place(pending, dataOffset: dataOffset, alignment: alignment)

        return GGUFHeader(
            version: Int(version), alignment: alignment, metadata: metadata, metadataKeys: keys,
            tensors: tensors, dataOffset: dataOffset)
    }

    private mutating func readMagicAndVersion() throws(GGUFError) -> UInt32 {
        // Decoded little-endian, the bytes come out reversed; swap them back to file order so
        // the message shows them as a hex dump would.
        let magic = try cursor.read(UInt32.self, "magic").byteSwapped
        guard magic == Self.magic else { throw .notGGUF(path: path, magic: magic) }

        // Version 1 used 32-bit counts and lengths; 2 moved to 64 bits and 3 only added
        // big-endian files, which fail here since their version reads byte-swapped.
        let position = cursor.offset
        let version = try cursor.read(UInt32.self, "version")
        guard Self.supportedVersions.contains(version) else {
            throw .unsupportedVersion(version, offset: position)
        }
        return version
    }
}

// MARK: - Metadata

extension GGUFParser {
    private mutating func readMetadata(count: Int) throws(GGUFError)
        -> (metadata: [String: GGUFValue], keys: [String], alignmentPosition: Int)
    {
        var metadata: [String: GGUFValue] = [:]
        metadata.reserveCapacity(count)
        var keys: [String] = []
        keys.reserveCapacity(count)
        var alignmentPosition = 0

        for index in 0..<count {
            let keyPosition = cursor.offset
            let key = try cursor.readString("metadata key #\(index)")
            guard metadata[key] == nil else { throw .duplicateKey(key, offset: keyPosition) }

            if key == Self.alignmentKey { alignmentPosition = cursor.offset }
            metadata[key] = try readValue(field: "metadata " + quoted(key))
            keys.append(key)
        }
        return (metadata, keys, alignmentPosition)
    }

    /// Reads a type tag and the value that follows it.
    private mutating func readValue(field: String) throws(GGUFError) -> GGUFValue {
        let typePosition = cursor.offset
        let rawType = try cursor.read(UInt32.self, field + " value type")
        guard let type = GGUFValueType(rawValue: rawType) else {
            throw .unknownValueType(field: field, type: rawType, offset: typePosition)
        }

        switch type {
        case .uint8: return .uint8(try cursor.read(UInt8.self, field))
        case .int8: return .int8(try cursor.read(Int8.self, field))
        case .uint16: return .uint16(try cursor.read(UInt16.self, field))
        case .int16: return .int16(try cursor.read(Int16.self, field))
        case .uint32: return .uint32(try cursor.read(UInt32.self, field))
        case .int32: return .int32(try cursor.read(Int32.self, field))
        case .uint64: return .uint64(try cursor.read(UInt64.self, field))
        case .int64: return .int64(try cursor.read(Int64.self, field))
        case .float32: return .float32(Float(bitPattern: try cursor.read(UInt32.self, field)))
        case .float64: return .float64(Double(bitPattern: try cursor.read(UInt64.self, field)))
        case .bool: return .bool(try readBool(field: field))
        case .string: return .string(try cursor.readString(field))
        case .array: return .array(try readArray(field: field, depth: 1))
        }
    }

    /// A bool is one byte, 0 or 1; anything else is corruption rather than "true".
    private mutating func readBool(field: String) throws(GGUFError) -> Bool {
        let position = cursor.offset
        let byte = try cursor.read(UInt8.self, field)
        guard byte <= 1 else {
            throw .invalidValue(
                field: field, value: "\(byte)", expected: "a bool, 0 or 1", offset: position)
        }
        return byte == 1
    }

    /// Reads an array's element type, count and elements. `depth` is 1 for an array that is a
    /// metadata value and one more for each array around it.
    private mutating func readArray(field: String, depth: Int) throws(GGUFError) -> GGUFArray {
        guard depth <= Self.maxNestingDepth else {
            throw .nestingTooDeep(field: field, limit: Self.maxNestingDepth, offset: cursor.offset)
        }

        let typePosition = cursor.offset
        let rawType = try cursor.read(UInt32.self, field + " array element type")
        guard let elementType = GGUFValueType(rawValue: rawType) else {
            throw .unknownValueType(
                field: field + " array element", type: rawType, offset: typePosition)
        }

        // Numbers are copied in one piece; only strings, bools and inner arrays need a loop.
        let countField = field + " array count"
        switch elementType {
        case .uint8: return .uint8(try cursor.readPackedArray(UInt8.self, countField) { $0 })
        case .int8: return .int8(try cursor.readPackedArray(Int8.self, countField) { $0 })
        case .uint16: return .uint16(try cursor.readPackedArray(UInt16.self, countField, fromLE))
        case .int16: return .int16(try cursor.readPackedArray(Int16.self, countField, fromLE))
        case .uint32: return .uint32(try cursor.readPackedArray(UInt32.self, countField, fromLE))
        case .int32: return .int32(try cursor.readPackedArray(Int32.self, countField, fromLE))
        case .uint64: return .uint64(try cursor.readPackedArray(UInt64.self, countField, fromLE))
        case .int64: return .int64(try cursor.readPackedArray(Int64.self, countField, fromLE))
        case .float32:
            return .float32(
                try cursor.readPackedArray(Float.self, countField) {
                    Float(bitPattern: UInt32(littleEndian: $0.bitPattern))
                })
        case .float64:
            return .float64(
                try cursor.readPackedArray(Double.self, countField) {
                    Double(bitPattern: UInt64(littleEndian: $0.bitPattern))
                })
        case .bool: return .bool(try readBools(field: field))
        case .string: return .string(try readStrings(field: field))
        case .array: return .arrays(try readInnerArrays(field: field, depth: depth))
        }
    }

    private mutating func readBools(field: String) throws(GGUFError) -> [Bool] {
        let bytes = try cursor.readPackedArray(UInt8.self, field + " array count") { $0 }
        let start = cursor.offset - bytes.count

        if let bad = bytes.firstIndex(where: { $0 > 1 }) {
            throw .invalidValue(
                field: field + " element \(bad)", value: "\(bytes[bad])",
                expected: "a bool, 0 or 1", offset: start + bad)
        }
        return bytes.map { $0 == 1 }
    }

    private mutating func readStrings(field: String) throws(GGUFError) -> [String] {
        // An empty string still takes its 8-byte length.
        let count = try cursor.readCount(minimumItemBytes: 8, field + " array count")

        var strings: [String] = []
        strings.reserveCapacity(count)
        for index in 0..<count {
            strings.append(try cursor.readString(field + " element \(index)"))
        }
        return strings
    }

    private mutating func readInnerArrays(field: String, depth: Int) throws(GGUFError)
        -> [GGUFArray]
    {
        let count = try cursor.readCount(
            minimumItemBytes: Self.minimumArrayBytes, field + " array count")

        var arrays: [GGUFArray] = []
        arrays.reserveCapacity(count)
        for index in 0..<count {
            arrays.append(try readArray(field: field + " element \(index)", depth: depth + 1))
        }
        return arrays
    }

    /// The data alignment: `general.alignment` when present, which the specification types as
    /// a uint32, else 32. Offsets are rounded up to it, so it must be a nonzero power of two.
    private func checkedAlignment(
        _ metadata: [String: GGUFValue], position: Int
    ) throws(GGUFError) -> Int {
        guard let value = metadata[Self.alignmentKey] else { return Self.defaultAlignment }

        let field = "metadata " + quoted(Self.alignmentKey)
        guard case .uint32(let alignment) = value else {
            throw .invalidValue(
                field: field, value: "of type \(value.type)", expected: "a uint32",
                offset: position)
        }
        guard alignment != 0, alignment & (alignment - 1) == 0 else {
            throw .invalidValue(
                field: field, value: "\(alignment)", expected: "a nonzero power of two",
                offset: position)
        }
        return Int(alignment)
    }
}

/// `T(littleEndian:)` as a function value, for `readPackedArray`.
private func fromLE<T: FixedWidthInteger>(_ value: T) -> T {
    T(littleEndian: value)
}

// MARK: - Tensor infos

extension GGUFParser {
    private mutating func readTensorInfos(count: Int) throws(GGUFError) -> [PendingTensor] {
        var tensors: [PendingTensor] = []
        tensors.reserveCapacity(count)
        var names = Set<String>()
        names.reserveCapacity(count)

        for index in 0..<count {
            let namePosition = cursor.offset
            let name = try cursor.readString("tensor info #\(index) name")
            guard names.insert(name).inserted else {
                throw .duplicateTensor(name, offset: namePosition)
            }
            tensors.append(try readTensorInfo(named: name))
        }
        return tensors
    }

    /// Reads the fields after a tensor's name: n_dims, the dimensions, the type and the offset.
    private mutating func readTensorInfo(named name: String) throws(GGUFError) -> PendingTensor {
        let field = "tensor info " + quoted(name)

        let dimensionCountPosition = cursor.offset
        let dimensionCount = try cursor.read(UInt32.self, field + " n_dims")
        guard (1...GGUFTensorInfo.maxDimensionCount).contains(Int(dimensionCount)) else {
            throw .invalidValue(
                field: field + " n_dims", value: "\(dimensionCount)",
                expected: "1...\(GGUFTensorInfo.maxDimensionCount)",
                offset: dimensionCountPosition)
        }

        let dimensionsPosition = cursor.offset
        let shape = try readDimensions(count: Int(dimensionCount), field: field + " dims")

        let typePosition = cursor.offset
        let rawType = try cursor.read(UInt32.self, field + " type")
        guard let type = ElementType(rawValue: rawType) else {
            throw .unknownTensorType(tensor: name, type: rawType, offset: typePosition)
        }

        let byteCount: Int
        switch GGUFTensorInfo.checkedByteCount(shape: shape, type: type) {
        case .success(let bytes):
            byteCount = bytes
        case .failure(let problem):
            throw .invalidValue(
                field: field + " " + problem.field, value: problem.value,
                expected: problem.expected, offset: dimensionsPosition)
        }

        let offsetPosition = cursor.offset
        let offset = try cursor.read(UInt64.self, field + " offset")
        return PendingTensor(
            name: name, shape: shape, type: type, byteCount: byteCount, offset: offset,
            offsetFieldPosition: offsetPosition)
    }

    private mutating func readDimensions(count: Int, field: String) throws(GGUFError) -> [Int] {
        // Check the whole list first, so a short file reports the bytes all of it needs.
        let position = cursor.offset
        try cursor.require(count * 8) { field }

        var shape: [Int] = []
        for _ in 0..<count {
            let dimension = try cursor.read(UInt64.self, field)
            guard let exact = Int(exactly: dimension) else {
                throw .invalidValue(
                    field: field, value: "\(dimension)",
                    expected: "each dimension in 1...\(Int.max)",
                    offset: position)
            }
            shape.append(exact)
        }
        return shape
    }
}

// MARK: - Data section

extension GGUFParser {
    /// The data section starts at the first multiple of the alignment after the tensor infos.
    /// A file without tensors may end before that padding; its empty data section is then
    /// placed at the end of the file, so the start never lies past the end.
    private func dataSectionStart(alignment: Int, hasTensors: Bool) throws(GGUFError) -> Int {
        let end = cursor.offset
        let start = (end + alignment - 1) / alignment * alignment
        guard start > cursor.bytes.count else { return start }

        guard !hasTensors else {
            throw .truncated(
                field: "padding before the data section", needed: start - end, offset: end,
                fileSize: cursor.bytes.count)
        }
        return cursor.bytes.count
    }

    /// Checks each tensor's offset against the alignment and its data against the file's end.
    private func place(
        _ pending: [PendingTensor], dataOffset: Int, alignment: Int
    ) throws(GGUFError) -> [GGUFTensorInfo] {
        let dataSize = cursor.bytes.count - dataOffset

        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(pending.count)
        for tensor in pending {
            let field = "tensor info " + quoted(tensor.name) + " offset"
            guard tensor.offset % UInt64(alignment) == 0 else {
                throw .invalidValue(
                    field: field, value: "\(tensor.offset)",
                    expected: "a multiple of the alignment \(alignment)",
                    offset: tensor.offsetFieldPosition)
            }
            guard tensor.offset <= UInt64(dataSize) else {
                throw .invalidValue(
                    field: field, value: "\(tensor.offset)",
                    expected: "at most \(dataSize), the size of the data section",
                    offset: tensor.offsetFieldPosition)
            }

            // Both terms are at most the data size now, so the sum cannot overflow.
            let offset = Int(tensor.offset)
            guard tensor.byteCount <= dataSize - offset else {
                throw .truncated(
                    field: "tensor " + quoted(tensor.name) + " data",
                    needed: tensor.byteCount, offset: dataOffset + offset,
                    fileSize: cursor.bytes.count)
            }

            tensors.append(
                GGUFTensorInfo(
                    name: tensor.name, shape: tensor.shape, type: tensor.type, offset: offset,
                    byteCount: tensor.byteCount))
        }
        return tensors
    }
}
