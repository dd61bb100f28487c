/// Why a safetensors file could not be read or written.
///
/// Every `description` is one line naming the problem, the tensor or field and the bad value.
/// The JSON header gives no byte offsets, so problems inside it are located by tensor name.
/// Names taken from the file are quoted, control characters escaped and long names shortened,
/// so a hostile name cannot break the line.
public enum SafeTensorsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing exists at the path.
    case fileNotFound(path: String)

    /// The path exists but could not be opened, inspected or memory-mapped.
    case unreadable(path: String, reason: String)

    /// The file is shorter than the 8-byte header length that starts every safetensors file.
    case tooShort(fileSize: Int)

    /// The header length is larger than the `limit` the reference library accepts.
    case headerTooLarge(length: UInt64, limit: Int)

    /// The header length runs past the end of the file.
    case headerPastEnd(length: UInt64, fileSize: Int)

    /// The header is not a UTF-8 JSON object starting with `{`.
    case invalidHeader(reason: String)

    /// A field of a header entry has the wrong type or an out-of-range value. `entry` is the
    /// tensor name, or `__metadata__`.
    case invalidField(entry: String, field: String, value: String, expected: String)

    /// A tensor's dtype is not one the format defines.
    case unknownDType(tensor: String, dtype: String)

    /// A tensor's `data_offsets` span a different number of bytes than its shape and dtype need.
    case sizeMismatch(tensor: String, byteCount: Int, expected: Int)

    /// A tensor's data ends past the end of the file's data section.
    case dataPastEnd(tensor: String, end: Int, dataSize: Int)

    /// Two tensors claim some of the same bytes.
    case overlap(tensor: String, other: String)

    /// Bytes `start..<end` of the data section belong to no tensor; the format allows no holes.
    case unclaimedBytes(start: Int, end: Int)

    /// No tensor has this name.
    case tensorNotFound(String)

    /// The tensor's dtype cannot be read the way that was asked; `allowed` lists what can.
    case unsupportedDType(tensor: String, dtype: String, allowed: String)

    /// A tensor handed to `SafeTensorsWriter` cannot be written.
    case invalidTensor(name: String, reason: String)

    /// Writing the file failed.
    case writeFailed(path: String, reason: String)

    /// A file-layer error in safetensors' words.
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
            return "cannot read safetensors file \(oneLine(path)): \(oneLine(reason))"
        case .tooShort(let fileSize):
            return "safetensors: file has \(fileSize) bytes, fewer than the 8 of the header length"
        case .headerTooLarge(let length, let limit):
            return "safetensors: header length is \(length) at offset 0, more than the limit of "
                + "\(limit) bytes"
        case .headerPastEnd(let length, let fileSize):
            return "safetensors: header length is \(length) at offset 0, but the file has only "
                + "\(fileSize) bytes, so at most \(max(fileSize - 8, 0)) are allowed"
        case .invalidHeader(let reason):
            return "safetensors: header \(oneLine(reason))"
        case .invalidField(let entry, let field, let value, let expected):
            let place =
                entry == SafeTensorsParser.metadataKey ? entry : "tensor \(quoted(entry))"
            return "safetensors: \(place): \(oneLine(field)) is \(excerpt(value)), "
                + "expected \(oneLine(expected))"
        case .unknownDType(let tensor, let dtype):
            return
                "safetensors: tensor \(quoted(tensor)) has unknown dtype \(quoted(dtype)) "
                + "(known: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .sizeMismatch(let tensor, let byteCount, let expected):
            return "safetensors: tensor \(quoted(tensor)): data_offsets span \(byteCount) "
                + "bytes, its shape and dtype need \(expected)"
        case .dataPastEnd(let tensor, let end, let dataSize):
            return "safetensors: tensor \(quoted(tensor)): data ends at \(end), past the end "
                + "of the \(dataSize)-byte data section"
        case .overlap(let tensor, let other):
            return "safetensors: tensor \(quoted(tensor)) overlaps tensor \(quoted(other))"
        case .unclaimedBytes(let start, let end):
            return "safetensors: bytes \(start)..<\(end) of the data section belong to no tensor "
                + "(the format allows no holes)"
        case .tensorNotFound(let name):
            return "safetensors: no tensor named \(quoted(name))"
        case .unsupportedDType(let tensor, let dtype, let allowed):
            return
                "unsupported: safetensors tensor \(quoted(tensor)) has dtype \(oneLine(dtype)); "
                + "this read takes \(oneLine(allowed))"
        case .invalidTensor(let name, let reason):
            return "safetensors writer: tensor \(quoted(name)): \(oneLine(reason))"
        case .writeFailed(let path, let reason):
            return "cannot write safetensors file \(oneLine(path)): \(oneLine(reason))"
        }
    }
}
