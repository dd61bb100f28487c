import Foundation
import SwiftLMCore
import SwiftLMFormats
import Testing

/// One metadata value of every kind the format has, extremes included.
private let everyValue: [(key: String, value: GGUFValue)] = [
    ("u8", .uint8(.max)), ("i8", .int8(.min)),
    ("u16", .uint16(.max)), ("i16", .int16(.min)),
    ("u32", .uint32(.max)), ("i32", .int32(.min)),
    ("u64", .uint64(.max)), ("i64", .int64(.min)),
    ("f32", .float32(-.pi)), ("f64", .float64(.ulpOfOne)),
    ("yes", .bool(true)), ("no", .bool(false)),
    ("empty string", .string("")), ("unicode", .string("héllo wörld 🌍 日本")),
    ("a.u8", .array(.uint8([0, 1, 255]))), ("a.i8", .array(.int8([-128, 0, 127]))),
    ("a.u16", .array(.uint16([0, 65535]))), ("a.i16", .array(.int16([-32768, 32767]))),
    ("a.u32", .array(.uint32([0, .max]))), ("a.i32", .array(.int32([.min, -1, .max]))),
    ("a.u64", .array(.uint64([0, .max]))), ("a.i64", .array(.int64([.min, .max]))),
    ("a.f32", .array(.float32([0, -1.5, .infinity, .leastNonzeroMagnitude]))),
    ("a.f64", .array(.float64([1e300, -.greatestFiniteMagnitude]))),
    ("a.bool", .array(.bool([true, false, true]))),
    ("a.string", .array(.string(["", "<s>", "Ġthe", "é"]))),
    (
        "a.arrays of strings",
        .array(.arrays([.string(["a", "b"]), .string([]), .string(["c"])]))
    ),
    ("a.arrays of mixed", .array(.arrays([.int32([1]), .float64([2]), .arrays([.bool([])])]))),
    ("empty.u8", .array(.uint8([]))), ("empty.i64", .array(.int64([]))),
    ("empty.f32", .array(.float32([]))), ("empty.bool", .array(.bool([]))),
    ("empty.string", .array(.string([]))), ("empty.arrays", .array(.arrays([]))),
]

@Suite("GGUF round trip")
struct GGUFRoundTripTests {
    @Test("every value type survives writer then reader", arguments: [2, 3])
    func everyValueType(version: Int) throws {
        var writer = GGUFWriter()
        for (key, value) in everyValue { writer.set(key, value) }

        let file = try withTemporaryDirectory { directory in
            try GGUFFile(path: directory.write(writer.serialized(version: version)))
        }

        #expect(file.version == version)
        #expect(file.metadataKeys == everyValue.map(\.key))
        for (key, value) in everyValue {
            #expect(file.metadata[key] == value, "\(key)")
        }
        #expect(file.tensors.isEmpty)
    }

    @Test("a NaN float keeps its bit pattern")
    func nanFloat() throws {
        let nan = Float(bitPattern: 0x7FC0_1234)
        var writer = GGUFWriter()
        writer.set("nan", .float32(nan))

        let file = try withTemporaryDirectory { directory in
            try GGUFFile(path: directory.write(writer.serialized()))
        }
        let value = try #require(file.metadata["nan"]?.float)
        #expect(value.bitPattern == nan.bitPattern)
    }

    @Test("tensor data reads back at aligned offsets", arguments: [32, 64, 1, 4096])
    func tensorData(alignment: Int) throws {
        // Sizes that are not multiples of the alignment, so padding has to be right.
        let tensors: [(name: String, shape: [Int], type: ElementType, data: [UInt8])] = [
            ("a", [3], .f16, pattern(6, seed: 1)),
            ("b", [32, 2], .q8_0, pattern(68, seed: 2)),
            ("c", [32], .q4_1, pattern(20, seed: 3)),
            ("d", [2, 3, 1, 2], .f32, pattern(48, seed: 4)),
        ]
        var writer = GGUFWriter(alignment: alignment)
        writer.set("general.architecture", .string("test"))
        for tensor in tensors {
            try writer.addTensor(
                name: tensor.name, shape: tensor.shape, type: tensor.type, data: tensor.data)
        }

        try withTemporaryDirectory { directory in
            let file = try GGUFFile(path: directory.write(writer.serialized()))

            #expect(file.alignment == alignment)
            #expect(file.architecture == "test")
            #expect(file.dataOffset % alignment == 0)
            #expect((file.metadata["general.alignment"] != nil) == (alignment != 32))
            #expect(file.tensors.map(\.name) == tensors.map(\.name))

            for expected in tensors {
                let info = try #require(file.tensor(named: expected.name))
                #expect(info.shape == expected.shape)
                #expect(info.type == expected.type)
                #expect(info.byteCount == expected.data.count)
                #expect(info.offset % alignment == 0)

                let data = file.data(for: info)
                #expect(Array(data) == expected.data, "\(expected.name)")

                // mmap returns page-aligned memory, so aligned file offsets give aligned
                // addresses for any alignment up to the page size.
                let address = Int(bitPattern: data.baseAddress)
                #expect(address % min(alignment, 4096) == 0)
            }
            #expect(file.tensor(named: "missing") == nil)
        }
    }

    @Test("write(to:) produces the same bytes as serialized() and leaves no temporary file")
    func atomicWrite() throws {
        var writer = GGUFWriter()
        writer.set("general.name", .string("tiny"))
        try writer.addTensor(name: "t", shape: [4], type: .f32, data: pattern(16, seed: 9))

        try withTemporaryDirectory { directory in
            let path = directory.path + "/model.gguf"
            try directory.write([1, 2, 3], named: "model.gguf")

            try writer.write(to: path, version: 2)

            let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(written == writer.serialized(version: 2))
            #expect(try directory.fileNames() == ["model.gguf"])

            let file = try GGUFFile(path: path)
            #expect(file.version == 2)
            #expect(file.fileSize == written.count)
        }
    }

    @Test("the small test file has its last tensor ending at the end of the file")
    func smallFileShape() throws {
        let bytes = try smallValidFile()
        let file = try withTemporaryDirectory { try GGUFFile(path: $0.write(bytes)) }

        let last = try #require(file.tensors.last)
        #expect(file.dataOffset + last.offset + last.byteCount == bytes.count)
        #expect(file.metadataKeys.count == 8)
        #expect(file.metadata["tokenizer.ggml.tokens"]?.stringArray == ["<s>", "</s>", "a", "é"])
    }
}
