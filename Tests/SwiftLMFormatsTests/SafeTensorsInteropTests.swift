import Foundation
import SwiftLMCore
import SwiftLMFormats
import Testing

/// Checks against the Python `safetensors` library, through the files that
/// scripts/reference/make_safetensors_fixture.py wrote and checked.
@Suite("Safetensors interop with the reference library")
struct SafeTensorsInteropTests {
    @Test("the reference library's file reads back with its names, metadata and values")
    func readsReferenceFile() throws {
        let fixture = try ReferenceFixture.load()
        let expected = try #require(fixture.files["safetensors_reference.safetensors"])
        let file = try SafeTensorsFile(path: fixturePath("safetensors_reference.safetensors"))

        #expect(file.metadata == expected.metadata)
        #expect(file.names == expected.names)
        for (name, tensor) in expected.tensors {
            let info = try #require(file.info(name), "\(name)")
            #expect(info.dtype.rawValue == tensor.dtype, "\(name)")
            #expect(info.shape == tensor.shape, "\(name)")
            #expect(Array(try file.data(for: name)) == tensor.bytes, "\(name)")

            if let bits = tensor.floatBits {
                let floats = try file.floatTensor(name).toArray()
                #expect(floats.map(\.bitPattern) == bits, "\(name)")
            }
            if ["F32", "F16", "BF16"].contains(tensor.dtype) {
                #expect(rawBytes(try file.tensor(name)) == tensor.bytes, "\(name)")
            }
            if let ints = tensor.ints {
                let stored = try file.data(for: name)
                let read = (0..<ints.count).map { index in
                    Int64(
                        littleEndian: stored.loadUnaligned(
                            fromByteOffset: 8 * index, as: Int64.self))
                }
                #expect(read == ints, "\(name)")
            }
        }
    }

    @Test("the writer reproduces the reference library's file byte for byte")
    func writesReferenceBytes() throws {
        let fixture = try ReferenceFixture.load()
        let expected = try #require(fixture.files["safetensors_reference_floats.safetensors"])
        let reference = try Array(
            Data(
                contentsOf: URL(
                    fileURLWithPath: fixturePath("safetensors_reference_floats.safetensors"))))

        // Built from the JSON's bytes, not through our reader, and handed over in an order
        // unlike the file's, since the writer sorts as the reference does.
        var tensors: [(name: String, tensor: Tensor)] = []
        for (name, entry) in expected.tensors.sorted(by: { $0.key > $1.key }) {
            let type = try #require(SafeTensorsDType(rawValue: entry.dtype)?.elementType)
            let tensor = Tensor(zeros: entry.shape, type: type)
            tensor.raw.copyMemory(from: entry.bytes, byteCount: entry.bytes.count)
            tensors.append((name, tensor))
        }

        #expect(try SafeTensorsWriter.serialized(tensors, metadata: expected.metadata) == reference)
        try withTemporaryDirectory { directory in
            let path = directory.path + "/floats.safetensors"
            try SafeTensorsWriter.write(tensors, metadata: expected.metadata, to: path)
            #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == reference)
        }
    }

    /// Set SWIFTLM_REGENERATE_FIXTURES=1 to rewrite the fixture after a deliberate change to the
    /// writer; then run make_safetensors_fixture.py --check-only to have the library check it.
    @Test("the writer's file matches the fixture the reference library checked")
    func writesCheckedFixture() throws {
        let written = try SafeTensorsWriter.serialized(swiftlmTensors, metadata: swiftlmMetadata)

        if ProcessInfo.processInfo.environment["SWIFTLM_REGENERATE_FIXTURES"] != nil {
            let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Fixtures/safetensors_swiftlm.safetensors").path
            try SafeTensorsWriter.write(swiftlmTensors, metadata: swiftlmMetadata, to: source)
            return
        }

        let path = try fixturePath("safetensors_swiftlm.safetensors")
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == written)
    }
}

/// What the writer puts in safetensors_swiftlm.safetensors; SWIFTLM_EXPECTED in
/// make_safetensors_fixture.py lists the same, and the values are exact in their dtypes.
private let swiftlmTensors: [(name: String, tensor: Tensor)] = [
    ("b.weight", makeTensor([2, 3], .f32, [-1.5, 0.25, 3.0, -0.0, 1024.5, 7.0])),
    ("a.bias", makeTensor([3], .f16, [0.5, -2.0, 65504.0])),
    ("c", makeTensor([2, 2], .bf16, [1.0, -3.0, 0.15625, 256.0])),
    ("scalar", makeTensor([], .f32, [42.0])),
    ("empty", makeTensor([0], .f16, [])),
    ("na\u{EF}ve \"quoted\"\n\u{01}", makeTensor([1], .f32, [1.0])),
]

private let swiftlmMetadata = [
    "format": "pt",
    "step": "42",
    "\u{FC}n\u{EF}code key": "line\nbreak \"quoted\" \\ \u{01} \u{E9}",
]

/// safetensors_reference.json.
private struct ReferenceFixture: Decodable {
    let generator: String
    let files: [String: FileEntry]

    struct FileEntry: Decodable {
        let metadata: [String: String]
        let names: [String]
        let tensors: [String: TensorEntry]
    }

    struct TensorEntry: Decodable {
        let dtype: String
        let shape: [Int]
        let hex: String
        let floatBits: [UInt32]?
        let ints: [Int64]?

        enum CodingKeys: String, CodingKey {
            case dtype, shape, hex, ints
            case floatBits = "float_bits"
        }

        /// The raw little-endian bytes that `hex` spells.
        var bytes: [UInt8] {
            let digits = Array(hex.utf8)
            return stride(from: 0, to: digits.count, by: 2).map { index in
                UInt8(String(decoding: digits[index..<(index + 2)], as: UTF8.self), radix: 16)!
            }
        }
    }

    static func load() throws -> ReferenceFixture {
        let path = try fixturePath("safetensors_reference.json")
        return try JSONDecoder().decode(
            ReferenceFixture.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

private func fixturePath(_ name: String) throws -> String {
    try #require(
        Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"),
        "missing fixture \(name); run scripts/reference/make_safetensors_fixture.py"
    ).path
}
