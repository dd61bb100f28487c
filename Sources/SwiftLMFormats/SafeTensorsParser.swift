import Foundation

/// Everything in a safetensors file before the tensor data, checked.
struct SafeTensorsHeader {
    var metadata: [String: String]
    /// In data order: by `dataOffsets`, which the parser has checked are contiguous.
    var tensors: [SafeTensorsTensorInfo]
    var dataOffset: Int
}

/// Reads and validates the header of a safetensors file.
///
/// The layout, from the format's README (huggingface/safetensors): an unsigned 64-bit
/// little-endian header length N, N bytes of UTF-8 JSON, then the data section. The JSON is an
/// object mapping each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`, with
/// offsets counted from the start of the data section, plus an optional `__metadata__` object
/// of strings.
///
/// The rules are those of the reference reader (`Metadata::validate` and `read_metadata` in
/// `safetensors/src/tensor.rs`): a header of at most 100 MB, sizes computed with overflow
/// checks, and tensors that together cover the data section exactly, with no overlap, no hole
/// and no trailing bytes, so no byte of the file goes unexplained. Nothing in the file can
/// reach a trap.
///
/// JSONSerialization keeps one of two entries with the same name and drops the other without
/// a word, as the reference reader does. The dropped tensor's bytes are then claimed by no one,
/// so the coverage check rejects the file unless both entries described the same bytes.
enum SafeTensorsParser {
    static let lengthFieldBytes = 8
    static let maxHeaderBytes = 100_000_000
    static let metadataKey = "__metadata__"

    /// Parses the header of the file whose bytes are `bytes`.
    static func parse(
        _ bytes: UnsafeRawBufferPointer
    ) throws(SafeTensorsError) -> SafeTensorsHeader {
        let headerLength = try checkedHeaderLength(bytes)
        let dataOffset = lengthFieldBytes + headerLength
        let dataSize = bytes.count - dataOffset
        let object = try jsonObject(
            UnsafeRawBufferPointer(rebasing: bytes[lengthFieldBytes..<dataOffset]))

        // Sorted so that a file with several problems always reports the same one first.
        var metadata: [String: String] = [:]
        var tensors: [SafeTensorsTensorInfo] = []
        for key in object.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            if key == metadataKey {
                metadata = try parseMetadata(object[key]!)
            } else {
                tensors.append(try parseEntry(name: key, object[key]!, dataSize: dataSize))
            }
        }

        return SafeTensorsHeader(
            metadata: metadata, tensors: try placed(tensors, dataSize: dataSize),
            dataOffset: dataOffset)
    }

    /// The header length N from the first 8 bytes, checked against the reference's limit and
    /// against the file.
    private static func checkedHeaderLength(
        _ bytes: UnsafeRawBufferPointer
    ) throws(SafeTensorsError) -> Int {
        guard bytes.count >= lengthFieldBytes else { throw .tooShort(fileSize: bytes.count) }

        let length = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard length <= UInt64(maxHeaderBytes) else {
            throw .headerTooLarge(length: length, limit: maxHeaderBytes)
        }
        guard length <= UInt64(bytes.count - lengthFieldBytes) else {
            throw .headerPastEnd(length: length, fileSize: bytes.count)
        }
        return Int(length)
    }

    /// The header decoded as a JSON object.
    private static func jsonObject(
        _ header: UnsafeRawBufferPointer
    ) throws(SafeTensorsError) -> [String: Any] {
        // The format says UTF-8, but JSONSerialization guesses the encoding: it reads `{\0}\0`
        // as UTF-16 and skips a byte-order mark. JSON allows neither a raw NUL nor a mark, so
        // refusing both first leaves it only UTF-8 to read.
        guard String(validating: header, as: UTF8.self) != nil else {
            throw .invalidHeader(reason: "is not valid UTF-8")
        }
        if let nul = header.firstIndex(of: 0) {
            throw .invalidHeader(reason: "has a NUL byte at offset \(lengthFieldBytes + nul)")
        }
        // The first byte after JSON's whitespace, which rules out a byte-order mark.
        guard header.first(where: { !" \t\n\r".utf8.contains($0) }) == UInt8(ascii: "{") else {
            throw .invalidHeader(reason: "does not start with '{'")
        }

        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(header), options: [])
        } catch {
            throw .invalidHeader(reason: "is not valid JSON: \(jsonReason(error))")
        }
        guard let object = parsed as? [String: Any] else {
            throw .invalidHeader(reason: "is \(describe(parsed)), expected a JSON object")
        }
        return object
    }

    /// `__metadata__`: an object of strings; null counts as empty, as in the reference reader.
    private static func parseMetadata(_ value: Any) throws(SafeTensorsError) -> [String: String] {
        if value is NSNull { return [:] }
        guard let object = value as? [String: Any] else {
            throw .invalidField(
                entry: metadataKey, field: "the value", value: describe(value),
                expected: "an object of strings")
        }

        var metadata: [String: String] = [:]
        for key in object.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            guard let string = object[key] as? String else {
                throw .invalidField(
                    entry: metadataKey, field: "value of " + quoted(key),
                    value: describe(object[key]!), expected: "a string")
            }
            metadata[key] = string
        }
        return metadata
    }

    /// One tensor entry, checked on its own: dtype, shape, offsets inside the data section, and
    /// a byte count that matches the shape. Fields the format does not define are ignored, as
    /// the reference reader ignores them.
    private static func parseEntry(
        name: String, _ value: Any, dataSize: Int
    ) throws(SafeTensorsError) -> SafeTensorsTensorInfo {
        guard let entry = value as? [String: Any] else {
            throw .invalidField(
                entry: name, field: "the entry", value: describe(value),
                expected: "an object with dtype, shape and data_offsets")
        }

        let dtype = try parseDType(entry["dtype"], tensor: name)
        let shape = try parseIntegers(entry["shape"], field: "shape", tensor: name)
        let offsets = try parseIntegers(entry["data_offsets"], field: "data_offsets", tensor: name)
        guard offsets.count == 2, offsets[0] <= offsets[1] else {
            throw .invalidField(
                entry: name, field: "data_offsets", value: describe(entry["data_offsets"]!),
                expected: "[begin, end] with begin <= end")
        }
        guard offsets[1] <= dataSize else {
            throw .dataPastEnd(tensor: name, end: offsets[1], dataSize: dataSize)
        }

        let byteCount = try checkedByteCount(shape: shape, dtype: dtype, tensor: name)
        guard offsets[1] - offsets[0] == byteCount else {
            throw .sizeMismatch(
                tensor: name, byteCount: offsets[1] - offsets[0], expected: byteCount)
        }
        return SafeTensorsTensorInfo(
            name: name, dtype: dtype, shape: shape, dataOffsets: offsets[0]..<offsets[1])
    }

    private static func parseDType(
        _ value: Any?, tensor: String
    ) throws(SafeTensorsError) -> SafeTensorsDType {
        guard let value, let string = value as? String else {
            throw .invalidField(
                entry: tensor, field: "dtype", value: value.map(describe) ?? "missing",
                expected: "a string such as \"F32\"")
        }
        guard let dtype = SafeTensorsDType(rawValue: string) else {
            throw .unknownDType(tensor: tensor, dtype: string)
        }
        return dtype
    }

    /// A JSON array of whole numbers in 0...Int.max: `shape` or `data_offsets`.
    private static func parseIntegers(
        _ value: Any?, field: String, tensor: String
    ) throws(SafeTensorsError) -> [Int] {
        let expected = "an array of whole numbers in 0...\(Int.max)"
        guard let value, let array = value as? [Any] else {
            throw .invalidField(
                entry: tensor, field: field, value: value.map(describe) ?? "missing",
                expected: expected)
        }

        var integers: [Int] = []
        integers.reserveCapacity(array.count)
        for element in array {
            guard let integer = nonNegativeInteger(element) else {
                throw .invalidField(
                    entry: tensor, field: field, value: describe(array), expected: expected)
            }
            integers.append(integer)
        }
        return integers
    }

    /// product(shape) * bits per element / 8, refusing overflow as the reference does (even
    /// when a later dimension is 0) and a bit count that does not fill whole bytes.
    private static func checkedByteCount(
        shape: [Int], dtype: SafeTensorsDType, tensor: String
    ) throws(SafeTensorsError) -> Int {
        var bitCount = dtype.bitCount
        for dimension in shape {
            let (product, overflow) = bitCount.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw .invalidField(
                    entry: tensor, field: "shape", value: shapeText(shape),
                    expected: "a size that fits in \(Int.max) bits of \(dtype)")
            }
            bitCount = product
        }
        guard bitCount % 8 == 0 else {
            throw .invalidField(
                entry: tensor, field: "shape", value: shapeText(shape),
                expected: "whole bytes of \(dtype) (\(dtype.bitCount) bits each)")
        }
        return bitCount / 8
    }

    /// The tensors in data order, after checking that they tile the data section: each begins
    /// where the one before ended, the first at 0 and the last ends at `dataSize`.
    private static func placed(
        _ tensors: [SafeTensorsTensorInfo], dataSize: Int
    ) throws(SafeTensorsError) -> [SafeTensorsTensorInfo] {
        // Empty tensors sit between others at equal offsets; ordering ties by name keeps the
        // order the same on every run.
        let ordered = tensors.sorted { left, right in
            if left.dataOffsets.lowerBound != right.dataOffsets.lowerBound {
                return left.dataOffsets.lowerBound < right.dataOffsets.lowerBound
            }
            if left.dataOffsets.upperBound != right.dataOffsets.upperBound {
                return left.dataOffsets.upperBound < right.dataOffsets.upperBound
            }
            return left.name.utf8.lexicographicallyPrecedes(right.name.utf8)
        }

        var covered = 0
        var previous: String?
        for tensor in ordered {
            let begin = tensor.dataOffsets.lowerBound
            if begin < covered, let previous {
                throw .overlap(tensor: tensor.name, other: previous)
            }
            if begin > covered { throw .unclaimedBytes(start: covered, end: begin) }
            covered = tensor.dataOffsets.upperBound
            previous = tensor.name
        }
        guard covered == dataSize else { throw .unclaimedBytes(start: covered, end: dataSize) }
        return ordered
    }
}

/// The value of a JSON number that is a whole number in 0...Int.max, or nil.
///
/// JSONSerialization hands out booleans and fractions as `NSNumber` too, and Swift's bridging
/// would turn `true` or `2.0` into an `Int`; the Objective-C type code tells them apart: `c` for
/// a boolean, `f` or `d` for a fraction, the other letters for integers.
private func nonNegativeInteger(_ value: Any) -> Int? {
    guard let number = value as? NSNumber else { return nil }

    switch String(cString: number.objCType) {
    case "s", "i", "l", "q":
        return Int(exactly: number.int64Value).flatMap { $0 >= 0 ? $0 : nil }
    case "S", "I", "L", "Q":
        return Int(exactly: number.uint64Value)
    default:
        return nil
    }
}

/// A JSON value as it might have been written, for messages; the error shortens long ones.
private func describe(_ value: Any) -> String {
    switch value {
    case let string as String:
        return "\"" + string + "\""
    case let number as NSNumber:
        if String(cString: number.objCType) == "c" { return number.boolValue ? "true" : "false" }
        return number.description
    case let array as [Any]:
        // Enough elements to show the problem; the message is cut at 80 characters anyway.
        let shown = array.prefix(16).map(describe).joined(separator: ", ")
        return "[" + shown + (array.count > 16 ? ", ..." : "") + "]"
    case is [String: Any]:
        return "an object"
    case is NSNull:
        return "null"
    default:
        return "\(value)"
    }
}

/// A checked shape as messages show it, e.g. `[2, 3]`.
func shapeText(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}

/// The part of a JSONSerialization error that says where the JSON went wrong.
private func jsonReason(_ error: Error) -> String {
    let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
    return detail ?? "\(error)"
}
