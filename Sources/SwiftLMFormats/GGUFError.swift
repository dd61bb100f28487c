/// Why a GGUF file could not be read or written.
///
/// Every `description` is one line that names the problem, the field and, for problems inside
/// a file, the byte offset where the field starts. Names taken from the file are quoted with
/// control characters escaped and long names shortened, so a hostile name cannot break the line.
public enum GGUFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing exists at the path.
    case fileNotFound(path: String)

    /// The path exists but could not be opened, inspected or memory-mapped.
    case unreadable(path: String, reason: String)

    /// The first four bytes are not `GGUF`. `magic` holds them in file order, so an ELF file
    /// reads `0x7f454c46`.
    case notGGUF(path: String, magic: UInt32)

    /// The version field holds a version this reader does not understand.
    case unsupportedVersion(UInt32, offset: Int)

    /// A field runs past the end of the file.
    case truncated(field: String, needed: Int, offset: Int, fileSize: Int)

    /// A count or length read from the file asks for more bytes than are left in it.
    case countTooLarge(field: String, count: UInt64, offset: Int, bytesLeft: Int)

    /// A metadata value has a type tag outside the specification.
    case unknownValueType(field: String, type: UInt32, offset: Int)

    /// A tensor has a ggml type number that `ElementType` does not know.
    case unknownTensorType(tensor: String, type: UInt32, offset: Int)

    /// A string is not valid UTF-8.
    case invalidUTF8(field: String, offset: Int)

    /// Two metadata pairs share a key.
    case duplicateKey(String, offset: Int)

    /// Two tensors share a name.
    case duplicateTensor(String, offset: Int)

    /// Arrays nest deeper than `limit` levels.
    case nestingTooDeep(field: String, limit: Int, offset: Int)

    /// A field holds a value outside its allowed range; `expected` says what is allowed.
    case invalidValue(field: String, value: String, expected: String, offset: Int)

    /// A tensor handed to `GGUFWriter` is inconsistent, e.g. its data does not match its shape.
    case invalidTensor(name: String, reason: String)

    /// Writing the file failed.
    case writeFailed(path: String, reason: String)

    /// A file-layer error in GGUF's words.
    init(_ error: FileIOError) {
        switch error {
        case .notFound(let path): self = .fileNotFound(path: path)
        case .unreadable(let path, let reason): self = .unreadable(path: path, reason: reason)
        case .writeFailed(let path, let reason): self = .writeFailed(path: path, reason: reason)
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "file not found: \(oneLine(path))"
        case .unreadable(let path, let reason):
            return "cannot read GGUF file \(oneLine(path)): \(oneLine(reason))"
        case .notGGUF(let path, let magic):
            return "not a GGUF file (magic \(hex(magic)) at offset 0): \(oneLine(path))"
        case .unsupportedVersion(let version, let offset):
            return "unsupported GGUF version \(version) at offset \(offset) (supported: 2, 3)"
                + (2...3 ~= version.byteSwapped ? "; the file looks big-endian" : "")
        case .truncated(let field, let needed, let offset, let fileSize):
            return "GGUF: truncated file: \(oneLine(field)) needs \(needed) bytes at offset "
                + "\(offset), file has \(fileSize)"
        case .countTooLarge(let field, let count, let offset, let bytesLeft):
            return "GGUF: \(oneLine(field)) is \(count) at offset \(offset), more than the "
                + "\(bytesLeft) bytes left in the file can hold"
        case .unknownValueType(let field, let type, let offset):
            return "GGUF: \(oneLine(field)) has unknown value type \(type) at offset \(offset) "
                + "(known: 0...12)"
        case .unknownTensorType(let tensor, let type, let offset):
            return "GGUF: tensor \(quoted(tensor)) has unknown type \(type) at offset "
                + "\(offset)"
        case .invalidUTF8(let field, let offset):
            return "GGUF: \(oneLine(field)) is not valid UTF-8 at offset \(offset)"
        case .duplicateKey(let key, let offset):
            return "GGUF: duplicate metadata key \(quoted(key)) at offset \(offset)"
        case .duplicateTensor(let name, let offset):
            return "GGUF: duplicate tensor name \(quoted(name)) at offset \(offset)"
        case .nestingTooDeep(let field, let limit, let offset):
            return "GGUF: \(oneLine(field)) nests arrays deeper than \(limit) levels at offset "
                + "\(offset)"
        case .invalidValue(let field, let value, let expected, let offset):
            return "GGUF: \(oneLine(field)) is \(oneLine(value)) at offset \(offset), expected "
                + oneLine(expected)
        case .invalidTensor(let name, let reason):
            return "GGUF writer: tensor \(quoted(name)): \(oneLine(reason))"
        case .writeFailed(let path, let reason):
            return "cannot write GGUF file \(oneLine(path)): \(oneLine(reason))"
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
