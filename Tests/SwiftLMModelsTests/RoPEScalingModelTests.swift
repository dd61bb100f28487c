import Foundation
import SwiftLM
import SwiftLMTestSupport
import Testing

/// llama.cpp's logits for the tiny model with RoPE scaling in its metadata
/// (scripts/reference/make_rope_scaling_fixtures.py).
struct RoPEScalingReference: Decodable {
    struct Variant: Decodable {
        struct Metadata: Decodable {
            let type: String
            let factor: Float
            let original_context_length: Int?
        }
        let metadata: Metadata
        let logits: [[Float]]
    }
    let input_ids: [Int]
    let variants: [String: Variant]

    static let shared: RoPEScalingReference = {
        let url = Bundle.module.url(
            forResource: "tiny_model_rope_scaling_logits", withExtension: "json",
            subdirectory: "Fixtures")!
        return try! JSONDecoder().decode(Self.self, from: Data(contentsOf: url))
    }()
}

@Suite("RoPE scaling of whole models")
struct RoPEScalingModelTests {
    /// The tiny model's writer with `rope.scaling.*` keys added.
    static func writer(
        type: String?, factor: Float?, originalContextLength: Int? = nil
    ) throws -> GGUFWriter {
        var writer = try TinyModel.writer()
        if let type { writer.set("llama.rope.scaling.type", .string(type)) }
        if let factor { writer.set("llama.rope.scaling.factor", .float32(factor)) }
        if let originalContextLength {
            writer.set(
                "llama.rope.scaling.original_context_length",
                .uint32(UInt32(originalContextLength)))
        }
        return writer
    }

    static func config(of writer: GGUFWriter) throws -> LlamaConfig {
        let path = try TinyModel.write(writer)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try LlamaConfig(gguf: GGUFFile(path: path))
    }

    /// As for the unscaled model, every logit must be llama.cpp's to the bit: the scaled angles
    /// are built in ggml's order with its fused multiply-adds, and YaRN's magnitude in
    /// llama.cpp's steps.
    @Test(
        "logits of linear and YaRN scaled models equal llama.cpp's",
        arguments: [
            "linear_4", "yarn_4_ctx150", "yarn_2.5_ctx1000", "yarn_12_ctx64",
            "yarn_29.75_ctx4096",
        ])
    func logitsMatchLlamaCpp(variant: String) throws {
        let reference = RoPEScalingReference.shared
        #expect(reference.input_ids == TinyModel.inputIDs)
        let expected = try #require(reference.variants[variant])
        let metadata = expected.metadata
        let path = try TinyModel.write(
            Self.writer(
                type: metadata.type, factor: metadata.factor,
                originalContextLength: metadata.original_context_length))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try PretrainedModel(path: path)
        #expect(model.config.ropeScaling.kind.rawValue == metadata.type)
        let context = InferenceContext(model: model.model, threadCount: 2)
        let logits = try context.evaluate(TinyModel.inputIDs, logits: .all)

        var largest: Float = 0
        for (position, row) in expected.logits.enumerated() {
            let start = position * TinyModel.vocabSize
            let ours = Array(logits[start..<(start + TinyModel.vocabSize)])
            for (a, b) in zip(ours, row) { largest = max(largest, abs(a - b)) }
        }
        print("tiny \(variant): largest |logit difference| vs llama.cpp = \(largest)")
        #expect(largest == 0)
    }

    @Test("scaling changes the logits of every position but the first")
    func scalingMatters() throws {
        let reference = RoPEScalingReference.shared
        let linear = try #require(reference.variants["linear_4"]).logits
        let yarn = try #require(reference.variants["yarn_4_ctx150"]).logits
        let plain = try #require(TinyModelReference.shared.logits["f32"])
        // Position 0 turns by no angle whatever the scaling, and YaRN's magnitude cancels in
        // a softmax over one key.
        #expect(linear[0] == plain[0] && yarn[0] == plain[0])
        for position in 1..<plain.count {
            #expect(linear[position] != plain[position] && yarn[position] != linear[position])
        }
    }

    @Test("LlamaConfig reads YaRN's keys, taking the context length as the original by default")
    func readsYarn() throws {
        var writer = try Self.writer(type: "yarn", factor: 4, originalContextLength: 32)
        writer.set("llama.rope.scaling.yarn_beta_fast", .float32(16))
        writer.set("llama.rope.scaling.yarn_beta_slow", .float32(2))
        #expect(
            try Self.config(of: writer).ropeScaling
                == .yarn(factor: 4, originalContextLength: 32, betaFast: 16, betaSlow: 2))

        let withoutOriginal = try Self.writer(type: "yarn", factor: 8)
        #expect(
            try Self.config(of: withoutOriginal).ropeScaling
                == .yarn(factor: 8, originalContextLength: TinyModel.contextLength))
    }

    @Test("LlamaConfig reads linear scaling, with or without the type key, as llama.cpp does")
    func readsLinear() throws {
        #expect(
            try Self.config(of: Self.writer(type: "linear", factor: 2)).ropeScaling
                == .linear(factor: 2))
        // llama.cpp takes a factor without a type as linear.
        #expect(
            try Self.config(of: Self.writer(type: nil, factor: 3)).ropeScaling
                == .linear(factor: 3))
        var legacy = try TinyModel.writer()
        legacy.set("llama.rope.scale_linear", .float32(2))
        #expect(try Self.config(of: legacy).ropeScaling == .linear(factor: 2))
    }

    @Test("no scaling keys, type none, or a factor of 1 or 0 leave RoPE unscaled")
    func readsNone() throws {
        #expect(try Self.config(of: TinyModel.writer()).ropeScaling == .none)
        #expect(try Self.config(of: Self.writer(type: "none", factor: 4)).ropeScaling == .none)
        #expect(try Self.config(of: Self.writer(type: "linear", factor: 1)).ropeScaling == .none)
        #expect(try Self.config(of: Self.writer(type: "linear", factor: 0)).ropeScaling == .none)
    }

    @Test("a scaling type, attention factor or factor SwiftLM cannot use is refused by name")
    func refusesUnsupported() throws {
        #expect(
            throws: ModelError.unsupportedMetadata(
                key: "llama.rope.scaling.type", value: "'longrope'",
                supported: "'none', 'linear' and 'yarn'")
        ) { try Self.config(of: Self.writer(type: "longrope", factor: 4)) }

        var scaled = try Self.writer(type: "yarn", factor: 4)
        scaled.set("llama.rope.scaling.attn_factor", .float32(0.5))
        #expect(
            throws: ModelError.unsupportedMetadata(
                key: "llama.rope.scaling.attn_factor", value: "0.5", supported: "1.0")
        ) { try Self.config(of: scaled) }

        #expect(
            throws: ModelError.invalidMetadata(
                key: "rope.scaling.factor", value: "-2.0", expected: "a finite number > 0")
        ) { try Self.config(of: Self.writer(type: "yarn", factor: -2)) }
    }

    @Test(
        "ModelFileWriter writes the scaling that LlamaConfig reads back",
        arguments: [
            RoPEScaling.linear(factor: 4),
            .yarn(factor: 8, originalContextLength: 64),
            .yarn(factor: 2, originalContextLength: 100, betaFast: 24, betaSlow: 2),
        ])
    func writerRoundTrip(scaling: RoPEScaling) throws {
        var config = try Self.config(of: TinyModel.writer())
        config.ropeScaling = scaling
        #expect(try Self.rewritten(config) == config)
    }

    @Test("NTK-aware scaling, which GGUF cannot name, is written as its larger base")
    func writerFoldsNTK() throws {
        var config = try Self.config(of: TinyModel.writer())
        config.ropeScaling = .ntkAware(factor: 4)
        let written = try Self.rewritten(config)

        let table = RoPETable(
            dims: config.ropeDims, base: config.ropeBase, scaling: .ntkAware(factor: 4))
        #expect(written.ropeScaling == .none)
        #expect(written.ropeBase == table.base)
    }

    @Test("a configuration saved before ropeScaling existed decodes as unscaled")
    func decodesOldJSON() throws {
        var config = try Self.config(of: TinyModel.writer())
        config.ropeScaling = .yarn(factor: 4, originalContextLength: 64)
        let data = try JSONEncoder().encode(config)
        #expect(try JSONDecoder().decode(LlamaConfig.self, from: data) == config)

        var object = try #require(
            try JSONSerialization.jsonObject(with: data) as? [String: Any])
        object["ropeScaling"] = nil
        let old = try JSONSerialization.data(withJSONObject: object)
        config.ropeScaling = .none
        #expect(try JSONDecoder().decode(LlamaConfig.self, from: old) == config)
    }

    /// `config` written by ModelFileWriter with the tiny model's tokenizer and formula weights,
    /// and read back.
    static func rewritten(_ config: LlamaConfig) throws -> LlamaConfig {
        let source = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: source) }
        let tokenizer = ModelFileWriter.tokenizerMetadata(of: try GGUFFile(path: source))
        let tensors = TinyModel.tensorOrder.enumerated().map { index, entry in
            let (name, shape, _) = entry
            let values = TinyModel.values(seed: UInt32(index + 1), count: shape.reduce(1, *))
            return (name: name, tensor: Tensor(shape: shape, values: values))
        }

        let path = TinyModel.temporaryPath(suffix: ".gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ModelFileWriter.write(
            config: config, name: "rewritten", tokenizer: tokenizer, tensors: tensors, to: path)
        return try LlamaConfig(gguf: GGUFFile(path: path))
    }
}
