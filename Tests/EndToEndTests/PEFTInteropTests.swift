import Foundation
import SwiftLM
import Testing

/// LoRA adapters cross between SwiftLM and Hugging Face PEFT both ways, checked on the default
/// model against logits PEFT computed (scripts/reference/make_peft_reference.py): an adapter
/// PEFT wrote gives here the logits PEFT gives, and one `swiftlm finetune` wrote gives in PEFT
/// the logits it gives here.
///
/// Both sides compute in F32 from the same dequantized Q4_1 weights (transformers dequantizes
/// the GGUF on load), so the comparison runs SwiftLM's F32 training forward, not the Q4_1
/// inference kernels, whose activation quantization moves logits by up to ~1 (as llama.cpp's
/// does; see the reference script).
@Suite("PEFT interoperability on the default model", .enabled(if: EndToEnd.enabled), .serialized)
struct PEFTInteropTests {
    struct Reference: Decodable {
        let tokens: [Int]
        let vocab_ids: [Int]
        let base_logits: [[Float]]
        let adapted_logits: [[Float]]
    }

    static let model: TrainableLlama = {
        try! TrainableLlama(model: EndToEnd.model.model, base: .frozen)
    }()

    static func fixtureFolder(_ name: String) throws -> String {
        try #require(
            Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")
        ).path
    }

    /// Logits at the reference's vocabulary ids, every position, with `adapter` applied.
    static func logits(_ reference: Reference, adapter: Adapter?) -> [[Float]] {
        let config = EndToEnd.model.config
        model.adapter = adapter.map { TrainableAdapter($0, config: config) }
        defer { model.adapter = nil }
        let all = GradientRecording.withoutRecording {
            model.logits(
                tokens: reference.tokens, batchSize: 1, seqLen: reference.tokens.count
            ).value.toArray()
        }
        return reference.tokens.indices.map { position in
            reference.vocab_ids.map { all[position * config.vocabSize + $0] }
        }
    }

    static func largestDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
        zip(a, b).flatMap { zip($0, $1).map { abs($0 - $1) } }.max() ?? .infinity
    }

    static func check(adapterFolder: String, reference name: String) throws {
        let reference = try EndToEnd.fixture(name, as: Reference.self)
        let adapter = try PEFTAdapterFile.read(
            directory: try fixtureFolder(adapterFolder), config: EndToEnd.model.config)

        let base = logits(reference, adapter: nil)
        let adapted = logits(reference, adapter: adapter)
        // The adapter moves logits by several units; both sides agree to float rounding
        // (measured 2026-12-04: at most 9.3e-5, the fixtures round to 6 digits).
        #expect(largestDifference(reference.base_logits, reference.adapted_logits) > 1)
        let baseGap = largestDifference(base, reference.base_logits)
        let adaptedGap = largestDifference(adapted, reference.adapted_logits)
        #expect(baseGap < 5e-4, "base logits differ from PEFT's by \(baseGap)")
        #expect(adaptedGap < 5e-4, "adapted logits differ from PEFT's by \(adaptedGap)")
    }

    @Test("an adapter PEFT wrote (v, gate, down) gives PEFT's logits here")
    func peftAdapterHere() throws {
        try Self.check(adapterFolder: "peft_lora", reference: "peft_lora_logits")
    }

    @Test("an adapter swiftlm finetune wrote (q, k, v, o) gives these logits in PEFT")
    func ourAdapterInPEFT() throws {
        try Self.check(adapterFolder: "swiftlm_lora", reference: "swiftlm_lora_logits")

        // What PEFT read is what the writer writes: reading and writing it again gives the
        // same tensors, byte for byte.
        let folder = try Self.fixtureFolder("swiftlm_lora")
        let config = EndToEnd.model.config
        let copy = NSTemporaryDirectory() + "swiftlm-lora-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try PEFTAdapterFile.write(
            try PEFTAdapterFile.read(directory: folder, config: config), config: config,
            baseModel: "SmolLM2-135M-Instruct.Q4_1.gguf", to: copy)
        let name = "/" + PEFTAdapterFile.weightsName
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: folder + name))
                == Data(contentsOf: URL(fileURLWithPath: copy + name)))
    }
}
