import Foundation
import SwiftLMCore
import SwiftLMFormats
import Testing

/// A broken file, the error it must produce and the words that error must contain.
struct HostileCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let matches: @Sendable (GGUFError) -> Bool
    let mentions: [String]

    var testDescription: String { name }
}

private let huge: UInt64 = 1 << 62

/// A header with one metadata pair `key` of type `type`, whose value the caller appends.
private func pairHeader(_ key: String, type: GGUFValueType) -> GGUFBytes {
    var file = GGUFBytes.header(tensorCount: 0, pairCount: 1)
    file.string(key)
    file.u32(type.rawValue)
    return file
}

/// An array that wraps itself `depth` times around an empty uint32 array.
private func nestedArrayBomb(depth: Int) -> [UInt8] {
    var file = pairHeader("bomb", type: .array)
    for _ in 0..<(depth - 1) {
        file.u32(GGUFValueType.array.rawValue)
        file.u64(1)
    }
    file.u32(GGUFValueType.uint32.rawValue)
    file.u64(0)
    return file.bytes
}

private let hostileCases: [HostileCase] = [
    HostileCase(
        name: "bad magic", bytes: [0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 0, count: 28),
        matches: { if case .notGGUF(_, 0x7F45_4C46) = $0 { true } else { false } },
        mentions: ["not a GGUF file", "0x7f454c46", "offset 0"]),
    HostileCase(
        name: "version 1", bytes: GGUFBytes.header(version: 1, tensorCount: 0, pairCount: 0).bytes,
        matches: { $0 == .unsupportedVersion(1, offset: 4) },
        mentions: ["version 1", "offset 4", "supported: 2, 3"]),
    HostileCase(
        name: "version 4", bytes: GGUFBytes.header(version: 4, tensorCount: 0, pairCount: 0).bytes,
        matches: { $0 == .unsupportedVersion(4, offset: 4) }, mentions: ["version 4"]),
    HostileCase(
        name: "big-endian version 3",
        bytes: GGUFBytes.header(version: 0x0300_0000, tensorCount: 0, pairCount: 0).bytes,
        matches: { $0 == .unsupportedVersion(0x0300_0000, offset: 4) }, mentions: ["big-endian"]),
    HostileCase(
        name: "huge tensor count",
        bytes: GGUFBytes.header(tensorCount: huge, pairCount: 0).bytes,
        matches: {
            if case .countTooLarge("tensor_count", huge, 8, _) = $0 { true } else { false }
        },
        mentions: ["tensor_count", "\(huge)", "offset 8"]),
    HostileCase(
        name: "huge metadata count",
        bytes: GGUFBytes.header(tensorCount: 0, pairCount: huge).bytes,
        matches: {
            if case .countTooLarge("metadata_kv_count", huge, 16, _) = $0 { true } else { false }
        },
        mentions: ["metadata_kv_count", "offset 16"]),
    HostileCase(
        name: "huge key length",
        bytes: {
            var file = GGUFBytes.header(tensorCount: 0, pairCount: 1)
            file.u64(huge)
            file.zeros(16)
            return file.bytes
        }(),
        matches: {
            if case .countTooLarge("metadata key #0", huge, 24, _) = $0 { true } else { false }
        },
        mentions: ["metadata key #0", "offset 24"]),
    HostileCase(
        name: "huge string length",
        bytes: {
            var file = pairHeader("general.name", type: .string)
            file.u64(huge)
            file.bytes += Array("tiny".utf8)
            return file.bytes
        }(),
        matches: { if case .countTooLarge = $0 { true } else { false } },
        mentions: ["metadata 'general.name'", "\(huge)"]),
    HostileCase(
        name: "huge array count",
        bytes: {
            var file = pairHeader("tokenizer.ggml.token_type", type: .array)
            file.u32(GGUFValueType.int32.rawValue)
            file.u64(huge)
            file.zeros(64)
            return file.bytes
        }(),
        matches: { if case .countTooLarge = $0 { true } else { false } },
        mentions: ["'tokenizer.ggml.token_type' array count", "\(huge)"]),
    HostileCase(
        name: "array count just past the bytes left",
        bytes: {
            var file = pairHeader("scores", type: .array)
            file.u32(GGUFValueType.float32.rawValue)
            file.u64(5)
            file.zeros(16)
            return file.bytes
        }(),
        matches: { if case .countTooLarge(_, 5, _, 16) = $0 { true } else { false } },
        mentions: ["'scores' array count is 5", "16 bytes left"]),
    HostileCase(
        name: "unknown value type",
        bytes: {
            var file = GGUFBytes.header(tensorCount: 0, pairCount: 1)
            file.string("weird")
            file.u32(13)
            file.zeros(8)
            return file.bytes
        }(),
        matches: { $0 == .unknownValueType(field: "metadata 'weird'", type: 13, offset: 37) },
        mentions: ["metadata 'weird'", "unknown value type 13", "offset 37"]),
    HostileCase(
        name: "unknown array element type",
        bytes: {
            var file = pairHeader("weird", type: .array)
            file.u32(99)
            file.u64(0)
            return file.bytes
        }(),
        matches: { if case .unknownValueType(_, 99, _) = $0 { true } else { false } },
        mentions: ["metadata 'weird' array element", "type 99"]),
    HostileCase(
        name: "bool that is neither 0 nor 1",
        bytes: {
            var file = pairHeader("flag", type: .bool)
            file.u8(2)
            return file.bytes
        }(),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["metadata 'flag'", "0 or 1"]),
    HostileCase(
        name: "invalid UTF-8 in a key",
        bytes: {
            var file = GGUFBytes.header(tensorCount: 0, pairCount: 1)
            file.rawString([0x61, 0xFF, 0x62])
            file.u32(GGUFValueType.uint8.rawValue)
            file.u8(0)
            return file.bytes
        }(),
        matches: { $0 == .invalidUTF8(field: "metadata key #0", offset: 24) },
        mentions: ["metadata key #0", "UTF-8", "offset 24"]),
    HostileCase(
        name: "invalid UTF-8 in a string array",
        bytes: {
            var file = pairHeader("tokens", type: .array)
            file.u32(GGUFValueType.string.rawValue)
            file.u64(2)
            file.string("ok")
            file.rawString([0xC3])
            return file.bytes
        }(),
        matches: { if case .invalidUTF8 = $0 { true } else { false } },
        mentions: ["metadata 'tokens' element 1", "UTF-8"]),
    HostileCase(
        name: "duplicate key",
        bytes: {
            var file = GGUFBytes.header(tensorCount: 0, pairCount: 2)
            file.pair("a", uint32: 1)
            file.pair("a", uint32: 2)
            return file.bytes
        }(),
        matches: { $0 == .duplicateKey("a", offset: 41) }, mentions: ["duplicate", "'a'"]),
    HostileCase(
        name: "nesting depth bomb", bytes: nestedArrayBomb(depth: 10_000),
        matches: { if case .nestingTooDeep(_, 8, _) = $0 { true } else { false } },
        mentions: ["metadata 'bomb'", "deeper than 8"]),
    HostileCase(
        name: "alignment that is not a power of two",
        bytes: {
            var file = GGUFBytes.header(tensorCount: 0, pairCount: 1)
            file.pair("general.alignment", uint32: 48)
            return file.bytes
        }(),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["'general.alignment' is 48", "power of two"]),
    HostileCase(
        name: "alignment of zero",
        bytes: {
            var file = GGUFBytes.header(tensorCount: 0, pairCount: 1)
            file.pair("general.alignment", uint32: 0)
            return file.bytes
        }(),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["'general.alignment' is 0"]),
    HostileCase(
        name: "alignment of the wrong type",
        bytes: {
            var file = pairHeader("general.alignment", type: .string)
            file.string("32")
            return file.bytes
        }(),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["'general.alignment'", "uint32"]),
    HostileCase(
        name: "n_dims 5", bytes: GGUFBytes.oneTensor(dims: [8, 1, 1, 1, 1]),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["tensor info 'x' n_dims is 5", "1...4"]),
    HostileCase(
        name: "n_dims 0", bytes: GGUFBytes.oneTensor(dims: []),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["n_dims is 0"]),
    HostileCase(
        name: "dimensions whose product overflows",
        bytes: GGUFBytes.oneTensor(dims: [1 << 32, 1 << 32]),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["tensor info 'x' dims", "[4294967296, 4294967296]"]),
    HostileCase(
        name: "a dimension above Int.max", bytes: GGUFBytes.oneTensor(dims: [.max]),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["tensor info 'x' dims", "\(UInt64.max)"]),
    HostileCase(
        name: "a zero dimension", bytes: GGUFBytes.oneTensor(dims: [8, 0]),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["tensor info 'x' dims is [8, 0]", ">= 1"]),
    HostileCase(
        name: "row length not a whole number of blocks",
        bytes: GGUFBytes.oneTensor(dims: [16, 2], type: ElementType.q4_1.rawValue),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["tensor info 'x' dims", "multiple of 32, the block size of Q4_1 (ggml type 3)"]),
    HostileCase(
        name: "unknown tensor type", bytes: GGUFBytes.oneTensor(type: 99),
        matches: { $0 == .unknownTensorType(tensor: "x", type: 99, offset: 45) },
        mentions: ["tensor 'x' has unknown type 99 at offset 45"]),
    HostileCase(
        name: "tensor offset past the end", bytes: GGUFBytes.oneTensor(offset: 1 << 40),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["tensor info 'x' offset is 1099511627776", "offset 49"]),
    HostileCase(
        name: "tensor offset of UInt64.max",
        bytes: GGUFBytes.oneTensor(offset: UInt64.max - 31),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["tensor info 'x' offset"]),
    HostileCase(
        name: "misaligned tensor offset", bytes: GGUFBytes.oneTensor(offset: 4, dataBytes: 64),
        matches: { if case .invalidValue = $0 { true } else { false } },
        mentions: ["tensor info 'x' offset is 4", "multiple of the alignment 32"]),
    HostileCase(
        name: "tensor data running past the end", bytes: GGUFBytes.oneTensor(dataBytes: 31),
        matches: { if case .truncated(_, 32, 64, 95) = $0 { true } else { false } },
        mentions: ["tensor 'x' data needs 32 bytes at offset 64, file has 95"]),
    HostileCase(
        name: "duplicate tensor name",
        bytes: {
            var file = GGUFBytes.header(tensorCount: 2, pairCount: 0)
            file.tensorInfo(name: "blk.0.ffn_up.weight", dims: [8])
            file.tensorInfo(name: "blk.0.ffn_up.weight", dims: [8], offset: 32)
            file.padToAlignment()
            file.zeros(64)
            return file.bytes
        }(),
        matches: {
            if case .duplicateTensor("blk.0.ffn_up.weight", _) = $0 { true } else { false }
        },
        mentions: ["duplicate tensor name 'blk.0.ffn_up.weight'"]),
    HostileCase(
        name: "truncated dimensions",
        bytes: {
            var file = GGUFBytes.header(tensorCount: 1, pairCount: 0)
            file.string("blk.0.attn_q.weight")
            file.u32(2)
            file.u64(8)
            return file.bytes
        }(),
        matches: { if case .truncated(_, 16, 55, 63) = $0 { true } else { false } },
        mentions: [
            "truncated file: tensor info 'blk.0.attn_q.weight' dims needs 16 bytes at offset 55, "
                + "file has 63"
        ]),
]

@Suite("GGUF hostile input")
struct GGUFHostileInputTests {
    @Test("a hostile header throws the expected error naming the field", arguments: hostileCases)
    func hostileHeader(_ hostile: HostileCase) throws {
        let error = try withTemporaryDirectory { try $0.openingError(hostile.bytes) }

        let thrown = try #require(error, "\(hostile.name) opened without an error")
        #expect(hostile.matches(thrown), "\(thrown)")
        for words in hostile.mentions {
            #expect(thrown.description.contains(words), "\(thrown) should mention \(words)")
        }
        #expect(!thrown.description.contains("\n"))
    }

    @Test("arrays nested eight deep are read and nine deep are refused")
    func nestingLimit() throws {
        try withTemporaryDirectory { directory in
            #expect(try directory.openingError(nestedArrayBomb(depth: 8)) == nil)

            let error = try directory.openingError(nestedArrayBomb(depth: 9))
            #expect(error.map { if case .nestingTooDeep = $0 { true } else { false } } == true)
        }
    }

    @Test("a truncated copy of a valid file throws at every length")
    func everyTruncation() throws {
        let bytes = try smallValidFile()

        try withTemporaryDirectory { directory in
            for length in 0..<bytes.count {
                let error = try directory.openingError(Array(bytes[0..<length]))
                #expect(error != nil, "a \(length)-byte prefix opened")
                #expect(error.map { !$0.description.contains("\n") } ?? true)
            }
            #expect(try directory.openingError(bytes) == nil)
        }
    }

    @Test("random byte flips in a valid file are read or refused, never crash")
    func randomMutations() throws {
        let original = try smallValidFile()
        var generator = SeededGenerator(seed: 0x5EED_6667)
        var opened = 0

        try withTemporaryDirectory { directory in
            for _ in 0..<3000 {
                var bytes = original
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let position = Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[position] = mutated(bytes[position], using: &generator)
                }

                let path = try directory.write(bytes)
                do {
                    let file = try GGUFFile(path: path)
                    checkInvariants(of: file)
                    opened += 1
                } catch let error as GGUFError {
                    #expect(!error.description.contains("\n"))
                }
            }
        }

        // Flips in tensor data and in metadata values leave the file readable; most of the
        // rest break it. Both paths must have run for the test to mean anything.
        #expect(opened > 0 && opened < 3000)
    }

    @Test("a name with a newline still gives a one-line error")
    func newlineInName() throws {
        var file = GGUFBytes.header(tensorCount: 0, pairCount: 2)
        file.pair("evil\nkey\u{2028}", uint32: 1)
        file.pair("evil\nkey\u{2028}", uint32: 2)

        let error = try #require(try withTemporaryDirectory { try $0.openingError(file.bytes) })
        #expect(!error.description.contains("\n"))
        #expect(error.description.contains(#"'evil\nkey\u{2028}'"#))
    }

    @Test("a very long name is shortened in the message")
    func longNameInMessage() throws {
        let name = String(repeating: "n", count: 100_000)
        let error = try #require(
            try withTemporaryDirectory {
                try $0.openingError(GGUFBytes.oneTensor(name: name, type: 77))
            })
        #expect(error.description.count < 300)
    }

    @Test("a missing file, a directory and an empty file give their own errors")
    func unreadablePaths() throws {
        try withTemporaryDirectory { directory in
            let missing = directory.path + "/missing.gguf"
            #expect(throws: GGUFError.fileNotFound(path: missing)) { try GGUFFile(path: missing) }
            #expect(
                GGUFError.fileNotFound(path: missing).description == "file not found: \(missing)")

            let notRegular = GGUFError.unreadable(
                path: directory.path, reason: "not a regular file")
            #expect(throws: notRegular) { try GGUFFile(path: directory.path) }

            let empty = try directory.openingError([])
            #expect(empty == .truncated(field: "magic", needed: 4, offset: 0, fileSize: 0))
        }
    }

    /// Every tensor of a file that opened lies inside it, aligned, and can be read.
    private func checkInvariants(of file: GGUFFile) {
        #expect(file.dataOffset <= file.fileSize)
        for tensor in file.tensors {
            #expect(tensor.offset % file.alignment == 0)
            #expect(tensor.byteCount <= file.fileSize - file.dataOffset - tensor.offset)
            #expect(tensor.type.byteCount(elements: tensor.elementCount) == tensor.byteCount)

            let data = file.data(for: tensor)
            #expect(data.count == tensor.byteCount)
            _ = data.reduce(0) { $0 &+ $1 }
        }
    }
}

/// A byte changed in one of the ways that break parsers: a random bit flipped, or the byte set to
/// an extreme that turns counts into huge or zero values.
private func mutated(_ byte: UInt8, using generator: inout SeededGenerator) -> UInt8 {
    switch Int.random(in: 0..<4, using: &generator) {
    case 0: return 0xFF
    case 1: return 0x00
    default: return byte ^ (1 << UInt8.random(in: 0..<8, using: &generator))
    }
}
