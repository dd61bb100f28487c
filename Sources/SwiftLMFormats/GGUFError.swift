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

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "file not found: \(line(path))"
        case .unreadable(let path, let reason):
            return "cannot read GGUF file \(line(path)): \(line(reason))"
        case .notGGUF(let path, let magic):
            return "not a GGUF file (magic \(hex(magic)) at offset 0): \(line(path))"
        case .unsupportedVersion(let version, let offset):
            return "unsupported GGUF version \(version) at offset \(offset) (supported: 2, 3)"
                + (2...3 ~= version.byteSwapped ? "; the file looks big-endian" : "")
        case .truncated(let field, let needed, let offset, let fileSize):
            return "GGUF: truncated file: \(line(field)) needs \(needed) bytes at offset "
                + "\(offset), file has \(fileSize)"
        case .countTooLarge(let field, let count, let offset, let bytesLeft):
            return "GGUF: \(line(field)) is \(count) at offset \(offset), more than the "
                + "\(bytesLeft) bytes left in the file can hold"
        case .unknownValueType(let field, let type, let offset):
            return "GGUF: \(line(field)) has unknown value type \(type) at offset \(offset) "
                + "(known: 0...12)"
        case .unknownTensorType(let tensor, let type, let offset):
            return "GGUF: tensor \(GGUFError.quote(tensor)) has unknown type \(type) at offset "
                + "\(offset)"
        case .invalidUTF8(let field, let offset):
            return "GGUF: \(line(field)) is not valid UTF-8 at offset \(offset)"
        case .duplicateKey(let key, let offset):
            return "GGUF: duplicate metadata key \(GGUFError.quote(key)) at offset \(offset)"
        case .duplicateTensor(let name, let offset):
            return "GGUF: duplicate tensor name \(GGUFError.quote(name)) at offset \(offset)"
        case .nestingTooDeep(let field, let limit, let offset):
            return "GGUF: \(line(field)) nests arrays deeper than \(limit) levels at offset "
                + "\(offset)"
        case .invalidValue(let field, let value, let expected, let offset):
            return "GGUF: \(line(field)) is \(line(value)) at offset \(offset), expected "
                + line(expected)
        case .invalidTensor(let name, let reason):
            return "GGUF writer: tensor \(GGUFError.quote(name)): \(line(reason))"
        case .writeFailed(let path, let reason):
            return "cannot write GGUF file \(line(path)): \(line(reason))"
        }
    }

    /// A name from a file, quoted and made safe for a one-line message: control characters
    /// escaped, and names over 80 characters cut, since a hostile file can hold a key of
    /// gigabytes.
    static func quote(_ name: String) -> String {
        let limit = 80
        let shown = name.count > limit ? String(name.prefix(limit)) + "..." : name
        return "'" + line(shown) + "'"
    }
}

/// `text` with every control character escaped, so it stays on one line.
private func line(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: isControl) else { return text }

    var escaped = ""
    for scalar in text.unicodeScalars {
        escaped += isControl(scalar) ? scalar.escaped(asASCII: true) : String(scalar)
    }
    return escaped
}

/// Whether a scalar would move the cursor or otherwise garble a terminal line: the C0 and C1
/// controls, and the Unicode line and paragraph separators.
private func isControl(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029: return true
    default: return false
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
