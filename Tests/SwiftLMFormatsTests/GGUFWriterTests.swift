import Foundation
import SwiftLMCore
import SwiftLMFormats
import Testing

@Suite("GGUF writer")
struct GGUFWriterTests {
    @Test("a tensor whose data does not match its shape is refused")
    func wrongDataSize() {
        var writer = GGUFWriter()
        let error = GGUFError.invalidTensor(
            name: "w", reason: "data has 31 bytes, shape [4, 2] of F32 (ggml type 0) needs 32")
        #expect(throws: error) {
            try writer.addTensor(name: "w", shape: [4, 2], type: .f32, data: pattern(31, seed: 0))
        }
        #expect(!error.description.contains("\n"))
    }

    @Test("shapes the format cannot hold are refused")
    func badShapes() {
        var writer = GGUFWriter()
        let attempts: [(shape: [Int], type: ElementType, mentions: String)] = [
            ([], .f32, "n_dims is 0"),
            ([1, 1, 1, 1, 1], .f32, "n_dims is 5"),
            ([4, 0], .f32, "dims is [4, 0]"),
            ([-4], .f32, "dims is [-4]"),
            ([16], .q4_1, "multiple of 32"),
            ([Int.max, 2], .f32, "element count below"),
        ]
        for attempt in attempts {
            do {
                try writer.addTensor(name: "t", shape: attempt.shape, type: attempt.type, data: [])
                Issue.record("shape \(attempt.shape) was accepted")
            } catch {
                #expect(error.description.contains(attempt.mentions), "\(error)")
            }
        }
    }

    @Test("a second tensor with the same name and over-long names are refused")
    func names() throws {
        var writer = GGUFWriter()
        try writer.addTensor(name: "a", shape: [1], type: .f32, data: [0, 0, 0, 0])
        #expect(throws: GGUFError.self) {
            try writer.addTensor(name: "a", shape: [1], type: .f32, data: [0, 0, 0, 0])
        }

        let long = String(repeating: "x", count: GGUFWriter.maxTensorNameBytes + 1)
        #expect(throws: GGUFError.self) {
            try writer.addTensor(name: long, shape: [1], type: .f32, data: [0, 0, 0, 0])
        }
    }

    @Test("setting a key again replaces the value and keeps its place")
    func replaceKey() throws {
        var writer = GGUFWriter()
        writer.set("a", .uint32(1))
        writer.set("b", .string("x"))
        writer.set("a", .int64(-1))

        let file = try withTemporaryDirectory { try GGUFFile(path: $0.write(writer.serialized())) }
        #expect(file.metadataKeys == ["a", "b"])
        #expect(file.metadata["a"] == .int64(-1))
    }

    @Test("setting general.alignment changes the layout")
    func alignmentKey() throws {
        var writer = GGUFWriter()
        writer.set("general.alignment", .uint32(128))
        try writer.addTensor(name: "a", shape: [1], type: .f32, data: [1, 2, 3, 4])
        try writer.addTensor(name: "b", shape: [1], type: .f32, data: [5, 6, 7, 8])
        #expect(writer.alignment == 128)

        let bytes = writer.serialized()
        let file = try withTemporaryDirectory { try GGUFFile(path: $0.write(bytes)) }
        #expect(file.alignment == 128)
        #expect(file.tensors.map(\.offset) == [0, 128])
        #expect(file.dataOffset % 128 == 0)
        #expect(bytes.count == file.dataOffset + 256)
    }

    @Test("the header starts with the magic, the version and the counts")
    func headerBytes() throws {
        var writer = GGUFWriter()
        writer.set("k", .uint8(7))
        let bytes = writer.serialized(version: 2)

        #expect(Array(bytes[0..<4]) == Array("GGUF".utf8))
        #expect(Array(bytes[4..<8]) == [2, 0, 0, 0])
        #expect(Array(bytes[8..<16]) == [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(bytes[16..<24]) == [1, 0, 0, 0, 0, 0, 0, 0])
        #expect(bytes.count % 32 == 0)
    }

    @Test("writing into a missing directory fails with the path and leaves nothing behind")
    func writeFailure() throws {
        try withTemporaryDirectory { directory in
            let path = directory.path + "/no/such/dir/model.gguf"
            do {
                try GGUFWriter().write(to: path)
                Issue.record("write into a missing directory succeeded")
            } catch let error as GGUFError {
                guard case .writeFailed(let failedPath, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(failedPath == path)
                #expect(!error.description.contains("\n"))
            }
            #expect(try directory.fileNames().isEmpty)
        }
    }
}
