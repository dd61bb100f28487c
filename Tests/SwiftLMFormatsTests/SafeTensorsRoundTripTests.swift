import Foundation
import SwiftLMCore
import SwiftLMFormats
import Testing

@Suite("Safetensors round trip")
struct SafeTensorsRoundTripTests {
    @Test("tensors of every writable dtype and many shapes come back bit for bit")
    func roundTrip() throws {
        let tensors: [(name: String, tensor: Tensor)] = [
            ("matrix", makeTensor([2, 3], .f32, [-1.5, 0.25, 3, -0, .infinity, .nan])),
            ("scalar", makeTensor([], .f32, [42])),
            ("empty", makeTensor([0], .f32, [])),
            ("empty.middle", makeTensor([2, 0, 3], .bf16, [])),
            ("half.odd", makeTensor([3], .f16, [0.5, -2, 65504])),
            ("bfloat.4d", makeTensor([1, 2, 1, 2], .bf16, [1, -3, 0.15625, 256])),
            ("half.scalar", makeTensor([], .f16, [-0.375])),
        ]
        let metadata = ["format": "pt", "step": "1200"]

        let file = try withTemporaryDirectory { directory in
            let path = directory.path + "/model.safetensors"
            try SafeTensorsWriter.write(tensors, metadata: metadata, to: path)
            return try SafeTensorsFile(path: path)
        }

        #expect(file.metadata == metadata)
        #expect(Set(file.names) == Set(tensors.map(\.name)))
        for (name, original) in tensors {
            let info = try #require(file.info(name))
            #expect(info.shape == original.shape, "\(name)")
            #expect(info.dtype == SafeTensorsDType(original.type), "\(name)")

            let read = try file.tensor(name)
            #expect(read.shape == original.shape && read.type == original.type, "\(name)")
            #expect(rawBytes(read) == rawBytes(original), "\(name)")
        }
    }

    @Test("floatTensor converts F16, BF16 and F64 to owned F32 tensors")
    func floatConversion() throws {
        // F64 is not writable, so that file is written by hand: 0.1 rounds to the nearest float.
        let doubles: [Double] = [0.1, -2.5, 1e300]
        let doubleBytes = doubles.flatMap { value in
            withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
        }
        let handWritten = safetensorsFile(
            #"{"d":{"dtype":"F64","shape":[3],"data_offsets":[0,24]}}"#, data: doubleBytes)

        let written = try SafeTensorsWriter.serialized([
            ("h", makeTensor([2, 2], .f16, [1, -0.5, 65504, 0.099975586])),
            ("b", makeTensor([3], .bf16, [1, -3, 0.15625])),
        ])

        try withTemporaryDirectory { directory in
            let file = try SafeTensorsFile(path: directory.write(written, named: "w.safetensors"))
            let half = try file.floatTensor("h")
            #expect(half.type == .f32 && half.shape == [2, 2])
            #expect(half.toArray() == [1, -0.5, 65504, 0.099975586])
            #expect(try file.floatTensor("b").toArray() == [1, -3, 0.15625])

            let f64 = try SafeTensorsFile(
                path: directory.write(handWritten, named: "d.safetensors"))
            #expect(try f64.floatTensor("d").toArray() == [Float(0.1), -2.5, .infinity])
            #expect(throws: SafeTensorsError.self) { try f64.tensor("d") }
        }
    }

    @Test("aligned data is borrowed from the mapping, unaligned data is copied")
    func zeroCopy() throws {
        let written = try SafeTensorsWriter.serialized([("w", makeTensor([2], .f32, [1, 2]))])

        // An F16 of one element before an F32 leaves the F32 two bytes off a 4-byte boundary;
        // the reference writer never does that, but the format allows it.
        let misaligned = safetensorsFile(
            #"{"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"#
                + #""f":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
            data: [0x00, 0x3C] + withUnsafeBytes(of: Float(7).bitPattern.littleEndian, Array.init))

        try withTemporaryDirectory { directory in
            let aligned = try SafeTensorsFile(path: directory.write(written, named: "a"))
            let view = try aligned.tensor("w")
            #expect(try UnsafeRawPointer(view.raw) == aligned.data(for: "w").baseAddress)
            #expect(view.toArray() == [1, 2])

            let unaligned = try SafeTensorsFile(path: directory.write(misaligned, named: "u"))
            #expect(unaligned.dataOffset % 8 == 0)
            let copy = try unaligned.tensor("f")
            #expect(try UnsafeRawPointer(copy.raw) != unaligned.data(for: "f").baseAddress)
            #expect(copy.toArray() == [7])
            #expect(try unaligned.tensor("h").toArray() == [1])
        }
    }

    @Test("a view outlives the file object that made it")
    func viewKeepsMappingAlive() throws {
        let written = try SafeTensorsWriter.serialized([("w", makeTensor([3], .f32, [4, 5, 6]))])
        let view = try withTemporaryDirectory { directory in
            try SafeTensorsFile(path: directory.write(written)).tensor("w")
        }
        #expect(view.toArray() == [4, 5, 6])
    }

    @Test("names and metadata with quotes, control characters and non-ASCII text survive")
    func escaping() throws {
        let name = "na\u{EF}ve \"quoted\" \\ tab\t\u{01}\u{1F}\n/\u{7F}\u{2028}"
        let metadata = ["k\u{08}\u{0C}\r": "v \"\\\u{00}\u{1B} \u{1F600}", "": ""]
        let written = try SafeTensorsWriter.serialized(
            [(name, makeTensor([1], .f32, [1]))], metadata: metadata)

        let file = try withTemporaryDirectory { try SafeTensorsFile(path: $0.write(written)) }
        #expect(file.names == [name])
        #expect(file.metadata == metadata)
    }

    @Test("tensors are laid out as the reference writer lays them out")
    func layout() throws {
        let written = try SafeTensorsWriter.serialized([
            ("z.half", makeTensor([1], .f16, [1])),
            ("y.bfloat", makeTensor([3], .bf16, [1, 2, 3])),
            ("x.float", makeTensor([1], .f32, [1])),
            ("a.half", makeTensor([3], .f16, [1, 2, 3])),
            ("b.float", makeTensor([2], .f32, [1, 2])),
        ])

        // The JSON is padded with spaces to a multiple of 8, so the data starts 8-aligned.
        let length = Int(written[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        #expect(length % 8 == 0)
        #expect(written[8] == UInt8(ascii: "{"))
        let json = written[8..<(8 + length)]
        let closing = try #require(json.lastIndex(of: UInt8(ascii: "}")))
        #expect(json[(closing + 1)...].allSatisfy { $0 == UInt8(ascii: " ") })

        let file = try withTemporaryDirectory { try SafeTensorsFile(path: $0.write(written)) }
        #expect(file.names == ["b.float", "x.float", "y.bfloat", "a.half", "z.half"])
        for info in file.tensors {
            let alignment = info.dtype.bitCount / 8
            #expect((file.dataOffset + info.dataOffsets.lowerBound) % alignment == 0)
        }
    }

    @Test("the writer matches the reference library's own test vectors for empty files")
    func emptyFiles() throws {
        // `test_empty` in safetensors/src/tensor.rs: no tensors, without and with metadata.
        let bare = try SafeTensorsWriter.serialized([])
        #expect(bare == [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))

        let framework = try SafeTensorsWriter.serialized([], metadata: ["framework": "pt"])
        #expect(
            framework == [40, 0, 0, 0, 0, 0, 0, 0]
                + Array(#"{"__metadata__":{"framework":"pt"}}     "#.utf8))

        let file = try withTemporaryDirectory { try SafeTensorsFile(path: $0.write(framework)) }
        #expect(file.names.isEmpty && file.metadata == ["framework": "pt"])
    }

    @Test("asking for a missing tensor or an unreadable dtype names it")
    func lookupErrors() throws {
        let bytes = safetensorsFile(
            #"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
            data: [7, 0, 0, 0, 0, 0, 0, 0])
        let file = try withTemporaryDirectory { try SafeTensorsFile(path: $0.write(bytes)) }

        #expect(file.info("nope") == nil)
        #expect(throws: SafeTensorsError.tensorNotFound("nope")) { try file.tensor("nope") }
        #expect(Array(try file.data(for: "ids")) == [7, 0, 0, 0, 0, 0, 0, 0])

        for read in [file.tensor, file.floatTensor] {
            do throws(SafeTensorsError) {
                _ = try read("ids")
                Issue.record("an I64 tensor was read as floats")
            } catch {
                #expect(error.description.hasPrefix("unsupported: "), "\(error)")
                #expect(error.description.contains("'ids'") && error.description.contains("I64"))
            }
        }
    }
}

@Suite("Safetensors writer")
struct SafeTensorsWriterTests {
    @Test("tensors the format or the writer cannot hold are refused before anything is written")
    func refusals() throws {
        let good = makeTensor([1], .f32, [1])
        let cases: [(tensors: [(name: String, tensor: Tensor)], mentions: String)] = [
            ([("a", good), ("a", good)], "given twice"),
            ([("__metadata__", good)], "reserved"),
            ([("q", Tensor(zeros: [32], type: .q8_0))], "unsupported: element type Q8_0"),
            ([("i", Tensor(zeros: [2], type: .i32))], "unsupported: element type I32"),
            ([("n", Tensor(shape: [-1, -1], type: .f32, storage: good.storage))], "[-1, -1]"),
        ]

        try withTemporaryDirectory { directory throws in
            for attempt in cases {
                let path = directory.path + "/out.safetensors"
                do throws(SafeTensorsError) {
                    try SafeTensorsWriter.write(attempt.tensors, to: path)
                    Issue.record("\(attempt.mentions): accepted")
                } catch {
                    guard case .invalidTensor = error else {
                        Issue.record("\(attempt.mentions): \(error)")
                        continue
                    }
                    #expect(error.description.contains(attempt.mentions), "\(error)")
                    #expect(!error.description.contains("\n"))
                }
                #expect(try directory.fileNames().isEmpty)
            }
        }
    }

    @Test("a write replaces the old file whole and leaves no temporary file")
    func atomicReplace() throws {
        try withTemporaryDirectory { directory in
            let path = directory.path + "/ckpt.safetensors"
            try SafeTensorsWriter.write([("w", makeTensor([1], .f32, [1]))], to: path)
            try SafeTensorsWriter.write(
                [("w", makeTensor([2], .f32, [2, 3]))], metadata: ["step": "2"], to: path)

            #expect(try directory.fileNames() == ["ckpt.safetensors"])
            let file = try SafeTensorsFile(path: path)
            #expect(file.metadata == ["step": "2"])
            #expect(try file.tensor("w").toArray() == [2, 3])
        }
    }

    @Test("a write into a missing directory fails with the system's reason")
    func missingDirectory() throws {
        let path = "/nonexistent-swiftlm-dir/out.safetensors"
        do {
            try SafeTensorsWriter.write([("w", makeTensor([1], .f32, [1]))], to: path)
            Issue.record("the write succeeded")
        } catch {
            guard case .writeFailed(path, _) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(error.description.contains("No such file"), "\(error)")
        }
    }
}

/// A tensor of `type` (F32, F16 or BF16) holding `values`, rounded to the type.
func makeTensor(_ shape: [Int], _ type: ElementType, _ values: [Float]) -> Tensor {
    precondition(shape.reduce(1, *) == values.count, "shape \(shape) needs \(values.count)")
    let tensor = Tensor(zeros: shape, type: type)
    values.withUnsafeBufferPointer { source in
        if let start = source.baseAddress {
            Quantization.quantizeRow(type, start, tensor.raw, count: values.count)
        }
    }
    return tensor
}

/// The bytes of a tensor's data.
func rawBytes(_ tensor: Tensor) -> [UInt8] {
    let count = tensor.type.byteCount(elements: tensor.elementCount)!
    return Array(UnsafeRawBufferPointer(start: tensor.raw, count: count))
}

/// A safetensors file around a header written by hand: the length (the true one unless
/// `length` is given), the JSON padded with spaces to a multiple of 8 as the reference pads it,
/// and `data`.
func safetensorsFile(_ json: String, data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    var header = Array(json.utf8)
    header += [UInt8](repeating: UInt8(ascii: " "), count: (8 - header.count % 8) % 8)
    let field = length ?? UInt64(header.count)
    return withUnsafeBytes(of: field.littleEndian, Array.init) + header + data
}
