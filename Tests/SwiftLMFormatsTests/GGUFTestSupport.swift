import Foundation
import SwiftLMCore
import SwiftLMFormats
import Testing

/// Runs `body` with a fresh directory that is removed afterwards.
func withTemporaryDirectory<Result>(
    _ body: (TemporaryDirectory) throws -> Result
) throws -> Result {
    let directory = try TemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    return try body(directory)
}

struct TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "swiftlm-gguf-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `bytes` to a file in the directory and returns its path.
    @discardableResult
    func write(_ bytes: [UInt8], named name: String = "test.gguf") throws -> String {
        let file = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// The error that opening `bytes` as a GGUF file throws, or nil when it opens.
    func openingError(_ bytes: [UInt8]) throws -> GGUFError? {
        let file = try write(bytes)
        do {
            _ = try GGUFFile(path: file)
            return nil
        } catch {
            return error
        }
    }

    func fileNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}

/// A little-endian GGUF encoder for tests, independent of `GGUFWriter`, so hostile files can
/// say things the writer never would.
struct GGUFBytes {
    var bytes: [UInt8] = []

    /// The magic, version and the two counts.
    static func header(version: UInt32 = 3, tensorCount: UInt64, pairCount: UInt64) -> GGUFBytes {
        var file = GGUFBytes()
        file.bytes += Array("GGUF".utf8)
        file.u32(version)
        file.u64(tensorCount)
        file.u64(pairCount)
        return file
    }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }

    mutating func string(_ value: String) {
        rawString(Array(value.utf8))
    }

    /// A string from raw bytes, which need not be UTF-8.
    mutating func rawString(_ value: [UInt8]) {
        u64(UInt64(value.count))
        bytes += value
    }

    /// A metadata pair whose value is a uint32.
    mutating func pair(_ key: String, uint32 value: UInt32) {
        string(key)
        u32(GGUFValueType.uint32.rawValue)
        u32(value)
    }

    mutating func tensorInfo(
        name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0,
        dimensionCount: UInt32? = nil
    ) {
        string(name)
        u32(dimensionCount ?? UInt32(dims.count))
        for dimension in dims { u64(dimension) }
        u32(type)
        u64(offset)
    }

    /// Zeros up to the next multiple of `alignment`, where the data section starts.
    mutating func padToAlignment(_ alignment: Int = 32) {
        zeros((alignment - bytes.count % alignment) % alignment)
    }

    mutating func zeros(_ count: Int) {
        bytes += [UInt8](repeating: 0, count: count)
    }

    /// A file with one tensor info and `dataBytes` bytes of data; the arguments break it.
    static func oneTensor(
        name: String = "x", dims: [UInt64] = [8], type: UInt32 = 0, offset: UInt64 = 0,
        dimensionCount: UInt32? = nil, dataBytes: Int = 32
    ) -> [UInt8] {
        var file = header(tensorCount: 1, pairCount: 0)
        file.tensorInfo(
            name: name, dims: dims, type: type, offset: offset, dimensionCount: dimensionCount)
        file.padToAlignment()
        file.zeros(dataBytes)
        return file.bytes
    }
}

/// A small valid file with metadata of several types and three tensors. The last tensor's size
/// is a multiple of the alignment, so no padding follows it and the file ends where its data
/// ends: every shorter prefix lacks something the reader needs.
func smallValidFile() throws -> [UInt8] {
    var writer = GGUFWriter()
    writer.set("general.architecture", .string("llama"))
    writer.set("general.name", .string("tiny"))
    writer.set("llama.context_length", .uint32(128))
    writer.set("llama.rope.freq_base", .float32(10000))
    writer.set("tokenizer.ggml.add_bos_token", .bool(true))
    writer.set("tokenizer.ggml.tokens", .array(.string(["<s>", "</s>", "a", "é"])))
    writer.set("tokenizer.ggml.scores", .array(.float32([0, 0, -1.5, -2.5])))
    writer.set("nested", .array(.arrays([.string(["x"]), .int32([1, 2])])))

    try writer.addTensor(
        name: "output_norm.weight", shape: [4, 2], type: .f32, data: pattern(32, seed: 1))
    try writer.addTensor(
        name: "token_embd.weight", shape: [32], type: .q8_0, data: pattern(34, seed: 2))
    try writer.addTensor(
        name: "blk.0.attn_q.weight", shape: [16], type: .f16, data: pattern(32, seed: 3))
    return writer.serialized()
}

/// `count` bytes that differ from tensor to tensor, so a misplaced read shows.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed) &* 31) }
}

/// SplitMix64: a tiny seeded generator, so a failing mutation can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
