import Foundation
import SwiftLMCore
import SwiftLMFormats
import Testing

/// A broken safetensors file and the error it must produce.
struct SafeTensorsHostileCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let matches: @Sendable (SafeTensorsError) -> Bool
    /// Words the one-line description must contain.
    let mentions: [String]

    init(_ name: String, _ bytes: [UInt8], _ error: SafeTensorsError, mentions: [String] = []) {
        self.init(name, bytes, matching: { $0 == error }, mentions: mentions)
    }

    /// For errors whose exact words come from Foundation's JSON parser or depend on which of
    /// two duplicate keys it keeps.
    init(
        _ name: String, _ bytes: [UInt8], matching: @escaping @Sendable (SafeTensorsError) -> Bool,
        mentions: [String] = []
    ) {
        self.name = name
        self.bytes = bytes
        self.matches = matching
        self.mentions = mentions
    }

    var testDescription: String { name }
}

/// A header with one F32 tensor `t` whose entry is `entry`, and `dataSize` zero bytes of data.
private func oneTensor(_ entry: String, dataSize: Int = 8) -> [UInt8] {
    safetensorsFile(#"{"t":"# + entry + "}", data: [UInt8](repeating: 0, count: dataSize))
}

private let integers = "an array of whole numbers in 0...\(Int.max)"

private let hostileCases: [SafeTensorsHostileCase] = [
    SafeTensorsHostileCase("empty file", [], .tooShort(fileSize: 0), mentions: ["0 bytes"]),
    SafeTensorsHostileCase("seven bytes", [8, 0, 0, 0, 0, 0, 0], .tooShort(fileSize: 7)),
    SafeTensorsHostileCase(
        "header length past the end", safetensorsFile("{}", length: 100),
        .headerPastEnd(length: 100, fileSize: 16), mentions: ["100", "16 bytes", "at most 8"]),
    SafeTensorsHostileCase(
        "header length one past the end", safetensorsFile("{}", length: 9),
        .headerPastEnd(length: 9, fileSize: 16)),
    SafeTensorsHostileCase(
        "huge header length", safetensorsFile("{}", length: 1 << 63),
        .headerTooLarge(length: 1 << 63, limit: 100_000_000), mentions: ["100000000"]),
    SafeTensorsHostileCase(
        "all-ones header length", safetensorsFile("{}", length: .max),
        .headerTooLarge(length: .max, limit: 100_000_000)),
    SafeTensorsHostileCase(
        "header length of zero", safetensorsFile("", length: 0),
        .invalidHeader(reason: "does not start with '{'")),
    SafeTensorsHostileCase(
        "header that is not JSON", safetensorsFile("{hello"),
        matching: { if case .invalidHeader = $0 { true } else { false } },
        mentions: ["header is not valid JSON: ", "character"]),
    SafeTensorsHostileCase(
        "header that is a JSON array", safetensorsFile("[]"),
        .invalidHeader(reason: "does not start with '{'")),
    SafeTensorsHostileCase(
        "header with invalid UTF-8",
        [8, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "{"), UInt8(ascii: "}"), 0xFF, 0xFE, 32, 32, 32, 32],
        .invalidHeader(reason: "is not valid UTF-8")),
    SafeTensorsHostileCase(
        "header in UTF-16",
        [8, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "{"), 0, UInt8(ascii: "}"), 0, 32, 0, 32, 0],
        .invalidHeader(reason: "has a NUL byte at offset 9")),
    SafeTensorsHostileCase(
        "header with a byte-order mark", safetensorsFile("\u{FEFF}{}"),
        .invalidHeader(reason: "does not start with '{'")),
    SafeTensorsHostileCase(
        "arrays nested a million deep",
        safetensorsFile(
            #"{"t":"# + String(repeating: "[", count: 1_000_000)
                + String(repeating: "]", count: 1_000_000) + "}"),
        matching: { if case .invalidHeader = $0 { true } else { false } },
        mentions: ["header is not valid JSON: "]),
    SafeTensorsHostileCase(
        "entry that is a number", oneTensor("3"),
        .invalidField(
            entry: "t", field: "the entry", value: "3",
            expected: "an object with dtype, shape and data_offsets")),
    SafeTensorsHostileCase(
        "missing dtype", oneTensor(#"{"shape":[2],"data_offsets":[0,8]}"#),
        .invalidField(
            entry: "t", field: "dtype", value: "missing", expected: "a string such as \"F32\""),
        mentions: ["tensor 't': dtype is missing"]),
    SafeTensorsHostileCase(
        "dtype that is a number", oneTensor(#"{"dtype":32,"shape":[2],"data_offsets":[0,8]}"#),
        .invalidField(
            entry: "t", field: "dtype", value: "32", expected: "a string such as \"F32\"")),
    SafeTensorsHostileCase(
        "unknown dtype", oneTensor(#"{"dtype":"F128","shape":[2],"data_offsets":[0,8]}"#),
        .unknownDType(tensor: "t", dtype: "F128"), mentions: ["'F128'", "known: BOOL"]),
    SafeTensorsHostileCase(
        "shape that is a string", oneTensor(#"{"dtype":"F32","shape":"2","data_offsets":[0,8]}"#),
        .invalidField(entry: "t", field: "shape", value: "\"2\"", expected: integers)),
    SafeTensorsHostileCase(
        "negative dimension", oneTensor(#"{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}"#),
        .invalidField(entry: "t", field: "shape", value: "[-2]", expected: integers),
        mentions: ["shape is [-2]"]),
    SafeTensorsHostileCase(
        "fractional dimension", oneTensor(#"{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}"#),
        .invalidField(entry: "t", field: "shape", value: "[2.5]", expected: integers)),
    SafeTensorsHostileCase(
        "whole dimension written as a fraction",
        oneTensor(#"{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}"#),
        .invalidField(entry: "t", field: "shape", value: "[2.0]", expected: integers)),
    SafeTensorsHostileCase(
        "boolean dimension", oneTensor(#"{"dtype":"F32","shape":[true],"data_offsets":[0,4]}"#),
        .invalidField(entry: "t", field: "shape", value: "[true]", expected: integers)),
    SafeTensorsHostileCase(
        "dimension beyond Int",
        oneTensor(
            #"{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,8]}"#),
        .invalidField(
            entry: "t", field: "shape", value: "[18446744073709551615]", expected: integers)),
    SafeTensorsHostileCase(
        "dimension in exponent notation",
        oneTensor(#"{"dtype":"U8","shape":[1e30],"data_offsets":[0,8]}"#),
        .invalidField(entry: "t", field: "shape", value: "[1e+30]", expected: integers)),
    SafeTensorsHostileCase(
        "shape whose size overflows",
        oneTensor(#"{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}"#),
        .invalidField(
            entry: "t", field: "shape", value: "[4294967296, 4294967296, 0]",
            expected: "a size that fits in \(Int.max) bits of F32")),
    SafeTensorsHostileCase(
        "F4 tensor of half a byte",
        oneTensor(#"{"dtype":"F4","shape":[3],"data_offsets":[0,8]}"#),
        .invalidField(
            entry: "t", field: "shape", value: "[3]", expected: "whole bytes of F4 (4 bits each)")),
    SafeTensorsHostileCase(
        "one offset", oneTensor(#"{"dtype":"F32","shape":[2],"data_offsets":[8]}"#),
        .invalidField(
            entry: "t", field: "data_offsets", value: "[8]",
            expected: "[begin, end] with begin <= end")),
    SafeTensorsHostileCase(
        "begin after end", oneTensor(#"{"dtype":"F32","shape":[2],"data_offsets":[8,0]}"#),
        .invalidField(
            entry: "t", field: "data_offsets", value: "[8, 0]",
            expected: "[begin, end] with begin <= end")),
    SafeTensorsHostileCase(
        "negative offset", oneTensor(#"{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}"#),
        .invalidField(entry: "t", field: "data_offsets", value: "[-8, 0]", expected: integers)),
    SafeTensorsHostileCase(
        "offset past the data",
        oneTensor(#"{"dtype":"F32","shape":[2],"data_offsets":[0,4000000000000]}"#),
        .dataPastEnd(tensor: "t", end: 4_000_000_000_000, dataSize: 8),
        mentions: ["4000000000000", "8-byte data section"]),
    SafeTensorsHostileCase(
        "size that does not match the shape",
        oneTensor(#"{"dtype":"F32","shape":[3],"data_offsets":[0,8]}"#),
        .sizeMismatch(tensor: "t", byteCount: 8, expected: 12), mentions: ["span 8", "need 12"]),
    SafeTensorsHostileCase(
        "overlapping tensors",
        safetensorsFile(
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                + #""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            data: [UInt8](repeating: 0, count: 12)),
        .overlap(tensor: "b", other: "a")),
    SafeTensorsHostileCase(
        "empty tensor inside another",
        safetensorsFile(
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                + #""b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#,
            data: [UInt8](repeating: 0, count: 8)),
        .overlap(tensor: "b", other: "a")),
    SafeTensorsHostileCase(
        "hole between tensors",
        safetensorsFile(
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
                + #""b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
            data: [UInt8](repeating: 0, count: 12)),
        .unclaimedBytes(start: 4, end: 8), mentions: ["bytes 4..<8", "no holes"]),
    SafeTensorsHostileCase(
        "hole before the first tensor",
        oneTensor(#"{"dtype":"F32","shape":[1],"data_offsets":[4,8]}"#),
        .unclaimedBytes(start: 0, end: 4)),
    SafeTensorsHostileCase(
        "bytes after the last tensor",
        oneTensor(#"{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#),
        .unclaimedBytes(start: 4, end: 8)),
    SafeTensorsHostileCase(
        "data and no tensors", safetensorsFile("{}", data: [1]),
        .unclaimedBytes(start: 0, end: 1)),
    SafeTensorsHostileCase(
        "duplicate name hiding a tensor",
        safetensorsFile(
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
                + #""a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            data: [UInt8](repeating: 0, count: 8)),
        matching: { if case .unclaimedBytes = $0 { true } else { false } }),
    SafeTensorsHostileCase(
        "metadata that is a string",
        safetensorsFile(#"{"__metadata__":"pt"}"#),
        .invalidField(
            entry: "__metadata__", field: "the value", value: "\"pt\"",
            expected: "an object of strings"),
        mentions: ["safetensors: __metadata__: the value is \"pt\""]),
    SafeTensorsHostileCase(
        "metadata with a number",
        safetensorsFile(#"{"__metadata__":{"format":"pt","step":42}}"#),
        .invalidField(
            entry: "__metadata__", field: "value of 'step'", value: "42", expected: "a string")),
    SafeTensorsHostileCase(
        "long hostile name",
        safetensorsFile(#"{""# + String(repeating: "\\n", count: 500) + #"":7}"#),
        .invalidField(
            entry: String(repeating: "\n", count: 500), field: "the entry", value: "7",
            expected: "an object with dtype, shape and data_offsets"),
        mentions: ["..."]),
]

@Suite("Safetensors hostile input")
struct SafeTensorsHostileInputTests {
    @Test("a broken file gives its one-line error", arguments: hostileCases)
    func hostile(_ hostile: SafeTensorsHostileCase) throws {
        let error = try withTemporaryDirectory { try openingError(hostile.bytes, in: $0) }
        let thrown = try #require(error, "the file opened")
        #expect(hostile.matches(thrown), "\(thrown)")

        let description = thrown.description
        #expect(!description.contains("\n") && !description.contains("\u{01}"), "\(description)")
        #expect(description.count < 400, "\(description.count) characters")
        for word in hostile.mentions {
            #expect(description.contains(word), "\(description)")
        }
    }

    @Test(
        "leading whitespace, unknown fields and null metadata are accepted, as the reference does")
    func lenient() throws {
        let bytes = safetensorsFile(
            #" {"__metadata__":null,"t":{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":1}}"#,
            data: [0, 0, 0x80, 0x3F])
        let file = try withTemporaryDirectory { try SafeTensorsFile(path: $0.write(bytes)) }
        #expect(file.metadata.isEmpty)
        #expect(try file.tensor("t").toArray() == [1])
    }

    @Test("a missing file and a directory give their own errors")
    func notAFile() {
        #expect(throws: SafeTensorsError.fileNotFound(path: "/nonexistent.safetensors")) {
            try SafeTensorsFile(path: "/nonexistent.safetensors")
        }
        let directory = NSTemporaryDirectory()
        #expect(throws: SafeTensorsError.unreadable(path: directory, reason: "not a regular file"))
        {
            try SafeTensorsFile(path: directory)
        }
    }

    @Test("every truncation of a valid file throws instead of crashing")
    func truncations() throws {
        let whole = try SafeTensorsWriter.serialized(
            [
                ("a", makeTensor([2, 2], .f32, [1, 2, 3, 4])),
                ("b", makeTensor([3], .f16, [1, 2, 3])),
                ("c", makeTensor([], .bf16, [5])),
            ], metadata: ["format": "pt"])

        try withTemporaryDirectory { directory throws in
            #expect(try openingError(whole, in: directory) == nil)
            for length in 0..<whole.count {
                #expect(
                    try openingError(Array(whole[..<length]), in: directory) != nil,
                    "a prefix of \(length) bytes opened")
            }
        }
    }

    @Test("changing any header byte gives a readable file or an error, never a crash")
    func headerMutations() throws {
        let whole = try SafeTensorsWriter.serialized(
            [("a", makeTensor([2], .f32, [1, 2])), ("b", makeTensor([1], .f16, [3]))],
            metadata: ["k": "v"])
        let replacements: [UInt8] = [0x00, 0xFF, 0x20, 0x22, 0x2D, 0x30, 0x39, 0x5B, 0x7B, 0x7D]

        var opened = 0
        try withTemporaryDirectory { directory in
            let dataOffset = try SafeTensorsFile(path: directory.write(whole)).dataOffset
            for position in 0..<dataOffset {
                for replacement in replacements where whole[position] != replacement {
                    var bytes = whole
                    bytes[position] = replacement
                    guard try openingError(bytes, in: directory) == nil else { continue }

                    // What opens must read: every tensor, in every way that applies.
                    opened += 1
                    let file = try SafeTensorsFile(path: directory.path + "/test.safetensors")
                    for name in file.names {
                        _ = try? file.tensor(name)
                        _ = try? file.floatTensor(name)
                        _ = try file.data(for: name)
                    }
                }
            }
        }
        // Some changes are harmless (a digit of the length within the padding, a metadata
        // value), so a few files do open.
        #expect(opened > 0)
    }
}

/// The error that opening `bytes` as a safetensors file throws, or nil when it opens.
private func openingError(
    _ bytes: [UInt8], in directory: TemporaryDirectory
) throws -> SafeTensorsError? {
    let path = try directory.write(bytes, named: "test.safetensors")
    do {
        _ = try SafeTensorsFile(path: path)
        return nil
    } catch {
        return error
    }
}
