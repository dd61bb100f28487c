import Foundation
import SwiftLM
import SwiftLMTestSupport
import Testing

/// llama.cpp's logits for the tiny formula model (scripts/reference/make_tiny_model_fixtures.py).
struct TinyModelReference: Decodable {
    let input_ids: [Int]
    /// The input evaluated in one batch.
    let logits: [String: [[Float]]]
    /// The input evaluated one token at a time, as generation does.
    let stepwise_logits: [String: [[Float]]]

    static let shared: TinyModelReference = {
        let url = Bundle.module.url(
            forResource: "tiny_model_logits", withExtension: "json", subdirectory: "Fixtures")!
        return try! JSONDecoder().decode(Self.self, from: Data(contentsOf: url))
    }()
}

@Suite("Tiny Llama model written by the test")
struct TinyModelTests {
    /// SwiftLM reproduces the float arithmetic of llama.cpp's CPU backend (docs/ARCHITECTURE.md,
    /// "Numerical agreement with llama.cpp"), so every logit must be llama.cpp's to the bit: the
    /// tolerance is 0. The fixture stores each binary32 logit exactly. Only BF16 is not mirrored
    /// (llama.cpp multiplies it with AVX-512 BF16 instructions) and agrees to rounding.
    @Test(
        "batched logits equal llama.cpp's at every position",
        arguments: [
            (ElementType.f32, Float(0)), (.f16, 0), (.bf16, 2e-5), (.q8_0, 0), (.q4_0, 0),
            (.q4_1, 0),
        ])
    func logitsMatchLlamaCpp(weightType: ElementType, tolerance: Float) throws {
        let path = try TinyModel.write(weightType: weightType)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try PretrainedModel(path: path)
        let context = InferenceContext(model: model.model, threadCount: 2)

        let reference = TinyModelReference.shared
        #expect(reference.input_ids == TinyModel.inputIDs)
        let expected = try #require(reference.logits["\(weightType)".lowercased()])
        let logits = try context.evaluate(TinyModel.inputIDs, logits: .all)

        var largest: Float = 0
        for (position, row) in expected.enumerated() {
            let start = position * TinyModel.vocabSize
            let ours = Array(logits[start..<(start + TinyModel.vocabSize)])
            #expect(argmax(ours) == argmax(row), "top-1 differs at position \(position)")
            for (a, b) in zip(ours, row) { largest = max(largest, abs(a - b)) }
        }
        print("tiny \(weightType): largest |logit difference| vs llama.cpp = \(largest)")
        #expect(largest <= tolerance)
    }

    /// One token at a time, ggml multiplies with `ggml_vec_dot_*` instead of tinyBLAS; SwiftLM
    /// follows it there too.
    @Test(
        "logits of token-by-token evaluation equal llama.cpp's bit for bit",
        arguments: [ElementType.f32, .f16, .q8_0, .q4_0, .q4_1])
    func stepwiseLogitsMatchLlamaCpp(weightType: ElementType) throws {
        let path = try TinyModel.write(weightType: weightType)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try PretrainedModel(path: path)
        let context = InferenceContext(model: model.model, batchCapacity: 1, threadCount: 2)
        let expected = try #require(
            TinyModelReference.shared.stepwise_logits["\(weightType)".lowercased()])

        for (position, token) in TinyModel.inputIDs.enumerated() {
            let logits = try context.evaluate([token])
            #expect(logits == expected[position], "logits differ at position \(position)")
        }
    }

    @Test("evaluating token by token gives the logits of one batched pass")
    func incrementalEqualsBatched() throws {
        let path = try TinyModel.write(weightType: .q4_1)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try PretrainedModel(path: path)
        let batched = InferenceContext(model: model.model, threadCount: 2)
        let stepwise = InferenceContext(model: model.model, batchCapacity: 1, threadCount: 1)

        let all = try batched.evaluate(TinyModel.inputIDs, logits: .all)
        var last: [Float] = []
        for token in TinyModel.inputIDs { last = try stepwise.evaluate([token]) }

        let tail = Array(all.suffix(TinyModel.vocabSize))
        let difference = zip(tail, last).map { abs($0 - $1) }.max()!
        #expect(difference < 1e-4)
    }

    @Test("a prompt longer than the context is refused with a clear error")
    func contextOverflowIsAnError() throws {
        let path = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try PretrainedModel(path: path)
        let context = InferenceContext(model: model.model, contextLength: 16, threadCount: 1)

        #expect(throws: ModelError.contextOverflow(tokens: 17, contextLength: 16)) {
            try context.evaluate([Int](repeating: 65, count: 17))
        }
        #expect(throws: ModelError.emptyPrompt) { try context.evaluate([]) }
        #expect(throws: ModelError.tokenOutOfRange(id: 999, vocabSize: 260)) {
            try context.evaluate([999])
        }
    }
}

@Suite("Loading models from GGUF")
struct ModelLoadingTests {
    @Test("an unknown architecture is named in the error")
    func unknownArchitecture() throws {
        var writer = try TinyModel.writer()
        writer.set("general.architecture", .string("mamba9"))
        let path = try TinyModel.write(writer)
        defer { try? FileManager.default.removeItem(atPath: path) }

        #expect(throws: ModelError.unsupportedArchitecture("mamba9")) {
            try PretrainedModel(path: path)
        }
    }

    @Test("a missing tensor is named in the error")
    func missingTensor() throws {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        let sizes = [
            "context_length": 64, "embedding_length": 64, "block_count": 1,
            "feed_forward_length": 128, "attention.head_count": 4,
        ]
        for (key, value) in sizes { writer.set("llama.\(key)", .uint32(UInt32(value))) }
        writer.set("tokenizer.ggml.tokens", .array(.string(["a", "b"])))
        let path = try TinyModel.write(writer)
        defer { try? FileManager.default.removeItem(atPath: path) }

        #expect(throws: ModelError.missingTensor("blk.0.attn_norm.weight")) {
            try PretrainedModel(path: path)
        }
    }

    @Test("the configuration comes from the file's metadata")
    func configurationFromMetadata() throws {
        let path = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try PretrainedModel(path: path).config

        #expect(config.layerCount == TinyModel.layerCount)
        #expect(config.headCount == TinyModel.headCount)
        #expect(config.kvHeadCount == TinyModel.kvHeadCount)
        #expect(config.hidden == TinyModel.hidden)
        #expect(config.intermediate == TinyModel.intermediate)
        #expect(config.vocabSize == TinyModel.vocabSize)
        #expect(config.tiedEmbeddings)
    }
}
