import SwiftLMCore

/// Writes F32, F16 and BF16 tensors and string metadata as a safetensors file.
///
/// The layout is the reference writer's (`prepare` in huggingface/safetensors
/// `safetensors/src/tensor.rs`): tensors sorted by dtype, largest first (F32, then BF16, then
/// F16), then by the bytes of their names, packed with no gaps, so every tensor starts aligned
/// for its element type; the JSON header is compact, with `__metadata__` first, and padded
/// with spaces to a multiple of 8 bytes. For the same tensors and at most one metadata pair
/// the file is byte for byte what `safetensors.torch.save_file` writes. With more pairs only
/// their order can differ: the reference keeps them in a hash map, this writer sorts them.
///
/// ```swift
/// try SafeTensorsWriter.write(
///     [("lm_head.weight", weight), ("norm.weight", norm)], metadata: ["format": "pt"],
///     to: "adapter_model.safetensors")
/// ```
public enum SafeTensorsWriter {
    /// Writes the file atomically: to a temporary file beside `path`, flushed to disk, then
    /// renamed over `path`, so a reader never sees half a checkpoint.
    ///
    /// - Parameters:
    ///   - tensors: Named F32, F16 or BF16 tensors; names must be unique and not
    ///     `__metadata__`. The order given does not matter (see the type's comment).
    ///   - metadata: Stored as `__metadata__`; left out when empty.
    ///   - path: The destination; its directory must exist.
    /// - Throws: `invalidTensor` naming a tensor that cannot be written, or `writeFailed` with
    ///   the system's reason.
    public static func write(
        _ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
        to path: String
    ) throws(SafeTensorsError) {
        let layout = try Layout(tensors, metadata: metadata)

        do throws(FileIOError) {
            let file = try AtomicFileWriter(path: path)
            try file.write(layout.header)
            for entry in layout.entries {
                try file.write(entry.data)
            }
            try file.commit()
        } catch {
            throw SafeTensorsError(error)
        }
    }

    /// The whole file as bytes, as `write` would write it.
    public static func serialized(
        _ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]
    ) throws(SafeTensorsError) -> [UInt8] {
        let layout = try Layout(tensors, metadata: metadata)
        var file = layout.header
        for entry in layout.entries {
            file += entry.data
        }
        return file
    }
}

/// The tensors in file order and the header that describes them.
private struct Layout {
    struct Entry {
        var name: String
        var dtype: SafeTensorsDType
        var tensor: Tensor
        var byteCount: Int

        /// The tensor's bytes in place, nothing copied; valid while `tensor` is alive.
        var data: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: tensor.raw, count: byteCount)
        }
    }

    /// The dtypes this writer takes, in the reference writer's order.
    static let dtypeOrder: [SafeTensorsDType] = [.f32, .bf16, .f16]

    var entries: [Entry]
    /// The 8-byte length, the JSON and its padding: everything before the data.
    var header: [UInt8]

    init(
        _ tensors: [(name: String, tensor: Tensor)], metadata: [String: String]
    )
        throws(SafeTensorsError)
    {
        var names = Set<String>()
        entries = []
        for (name, tensor) in tensors {
            guard names.insert(name).inserted else {
                throw .invalidTensor(name: name, reason: "a tensor with this name was given twice")
            }
            entries.append(try Self.entry(name: name, tensor: tensor))
        }

        entries.sort { left, right in
            if left.dtype != right.dtype {
                return Self.dtypeOrder.firstIndex(of: left.dtype)!
                    < Self.dtypeOrder.firstIndex(of: right.dtype)!
            }
            return left.name.utf8.lexicographicallyPrecedes(right.name.utf8)
        }

        // Spaces, not zeros, pad the JSON: the reference pads so, and JSON allows trailing
        // whitespace. 8 + a multiple of 8 puts the data on an 8-byte boundary of the file.
        var json = Array(Self.json(entries, metadata: metadata).utf8)
        json += [UInt8](repeating: UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
        header = withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json
    }

    private static func entry(name: String, tensor: Tensor) throws(SafeTensorsError) -> Entry {
        guard name != SafeTensorsParser.metadataKey else {
            throw .invalidTensor(name: name, reason: "the name is reserved for the metadata")
        }
        guard let dtype = SafeTensorsDType(tensor.type), dtypeOrder.contains(dtype) else {
            throw .invalidTensor(
                name: name,
                reason: "unsupported: element type \(tensor.type); the writer takes F32, F16 "
                    + "and BF16")
        }

        // `Tensor` checks that its storage holds the shape, but lets a pair of negative
        // dimensions through, since their product is positive.
        guard tensor.shape.allSatisfy({ $0 >= 0 }) else {
            throw .invalidTensor(
                name: name,
                reason: "shape \(shapeText(tensor.shape)) has a negative dimension")
        }
        let byteCount = tensor.type.byteCount(elements: tensor.elementCount)!
        return Entry(name: name, dtype: dtype, tensor: tensor, byteCount: byteCount)
    }

    /// The header JSON as serde_json writes it: no spaces, metadata first, then the tensors
    /// in file order.
    private static func json(_ entries: [Entry], metadata: [String: String]) -> String {
        var members: [String] = []
        if !metadata.isEmpty {
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            let pairs = keys.map { jsonString($0) + ":" + jsonString(metadata[$0]!) }
            members.append(
                jsonString(SafeTensorsParser.metadataKey) + ":{" + pairs.joined(separator: ",")
                    + "}")
        }

        var begin = 0
        for entry in entries {
            let shape = entry.tensor.shape.map(String.init).joined(separator: ",")
            let end = begin + entry.byteCount
            members.append(
                jsonString(entry.name) + ":{\"dtype\":\"\(entry.dtype.rawValue)\","
                    + "\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(end)]}")
            begin = end
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// A JSON string escaped as serde_json escapes it: quote, backslash and the C0 controls,
    /// the common ones by letter and the rest as `\u00xx` in lowercase; everything else,
    /// non-ASCII included, as plain UTF-8.
    private static func jsonString(_ text: String) -> String {
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case "\u{08}": escaped += "\\b"
            case "\u{0C}": escaped += "\\f"
            case _ where scalar.value < 0x20:
                let digits = String(scalar.value, radix: 16)
                escaped += "\\u00" + (digits.count == 1 ? "0" : "") + digits
            default:
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped + "\""
    }
}
