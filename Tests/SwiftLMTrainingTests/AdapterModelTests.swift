import Foundation
import SwiftLMCore
import SwiftLMModels
import Testing

@testable import SwiftLMTraining

/// LoRA, prefix and prompt tuning on a tiny model: a fresh adapter changes nothing, and an
/// adapter computes in inference (merged, or as virtual tokens) what it computes in training.
@Suite("Adapters: training and inference agree")
struct AdapterModelTests {
    static let config = TrainableLlamaTests.config
    static let tokens = [1, 7, 30, 2, 2, 19, 39, 0, 11, 5]

    static func largestDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    /// The tiny test model, frozen, with `adaptation` freshly initialised.
    static func adapted(
        _ adaptation: Adaptation, base: TrainableLlama.Base = .frozen
    ) throws
        -> TrainableLlama
    {
        let weights = try TrainableLlamaTests.model().inferenceModel()
        let model = try TrainableLlama(model: weights, base: base)
        var random = TrainingRandom(seed: 5)
        model.adapter = TrainableAdapter(fresh: adaptation, config: config, random: &random)
        return model
    }

    static func logits(_ model: TrainableLlama) -> [Float] {
        GradientRecording.withoutRecording {
            model.logits(tokens: tokens, batchSize: 1, seqLen: tokens.count).value.toArray()
        }
    }

    static let allTargets = LoRASettings(rank: 4, alpha: 8, targets: Projection.allCases)

    @Test("a fresh LoRA leaves every logit unchanged, bit for bit; only it trains")
    func freshLoRA() throws {
        let base = Self.logits(try TrainableLlamaTests.model())
        let model = try Self.adapted(Adaptation(method: .lora, lora: Self.allTargets))
        #expect(Self.logits(model) == base)
        #expect(model.trainableParameters.count == 2 * 7 * Self.config.layerCount)
        #expect(model.parameters.allSatisfy { !$0.requiresGradient })
    }

    @Test("a fresh gated prefix leaves every logit unchanged; an ungated one does not")
    func freshPrefix() throws {
        let base = Self.logits(try TrainableLlamaTests.model())
        let gated = try Self.adapted(
            Adaptation(method: .prefix, virtualTokens: 3, prefixGated: true))
        // Equal but for rounding: the tokens sit at positions 3... after the prefix, and RoPE
        // rotates by absolute angles whose relative products differ in the last bits.
        #expect(Self.largestDifference(Self.logits(gated), base) < 1e-4)

        let ungated = try Self.adapted(
            Adaptation(method: .prefix, virtualTokens: 3, prefixGated: false))
        #expect(Self.largestDifference(Self.logits(ungated), base) > 1e-2)
    }

    /// Gives every adapter variable values away from its initialisation.
    static func perturb(_ model: TrainableLlama, seed: UInt64, scale: Float) {
        var random = TrainingRandom(seed: seed)
        for parameter in model.adapter!.parameters {
            for index in 0..<parameter.elementCount {
                parameter.value.floats[index] += random.nextNormal() * scale
            }
        }
    }

    /// Inference over what `model.adapter` exports: merged weights and virtual tokens.
    static func inferred(_ model: TrainableLlama, base: LlamaModel) throws -> [Float] {
        let adapter = model.adapter!.adapter()
        let context = InferenceContext(
            model: adapter.merged(into: base), contextLength: 16, threadCount: 1)
        try context.setVirtualPrefix(adapter.virtualPrefix)
        return try context.evaluate(tokens, logits: .all)
    }

    @Test("trained LoRA, prefix and prompt adapters give inference the training logits")
    func adaptersInInference() throws {
        let base = try TrainableLlamaTests.model().inferenceModel()
        let cases: [(Adaptation, Float)] = [
            (Adaptation(method: .lora, lora: Self.allTargets), 0.3),
            (Adaptation(method: .prefix, virtualTokens: 3, prefixGated: true), 1),
            (Adaptation(method: .prefix, virtualTokens: 2, prefixProjection: 8), 0.5),
            (Adaptation(method: .prompt, virtualTokens: 3), 1),
        ]
        for (adaptation, scale) in cases {
            let model = try Self.adapted(adaptation)
            Self.perturb(model, seed: 8, scale: scale)
            let trained = Self.logits(model)
            #expect(
                Self.largestDifference(trained, Self.logits(try TrainableLlamaTests.model())) > 0.1)
            // Inference rounds attention to F16 as llama.cpp does (see TrainableLlamaTests).
            let gap = Self.largestDifference(trained, try Self.inferred(model, base: base))
            #expect(gap < 2e-2, "\(adaptation.method): largest logit difference \(gap)")
        }
    }

    @Test("QLoRA's quantized base computes what LoRA's dequantized copy computes")
    func quantizedBase() throws {
        let floats = try TrainableLlamaTests.model().inferenceModel()
        let quantized = LlamaModel(
            config: floats.config, tokenEmbedding: floats.tokenEmbedding.quantizedForTest(.q8_0),
            blocks: floats.blocks.map { block in
                var block = block
                // Q8_0 takes rows in blocks of 32: the down projection's 48 stay F32.
                for projection in Projection.allCases where projection != .down {
                    let tensor = projection.weight(of: block).tensor.quantizedForTest(.q8_0)
                    projection.replaceForTest(in: &block, with: WeightMatrix(tensor))
                }
                return block
            }, outputNorm: floats.outputNorm, output: floats.output)
        let adaptation = Adaptation(method: .qlora, lora: Self.allTargets)
        let qlora = try TrainableLlama(model: quantized, base: .quantized)
        let lora = try TrainableLlama(model: quantized, base: .frozen)
        for model in [qlora, lora] {
            var random = TrainingRandom(seed: 5)
            model.adapter = TrainableAdapter(
                fresh: adaptation, config: Self.config, random: &random)
            Self.perturb(model, seed: 9, scale: 0.3)
        }
        #expect(qlora.tokenEmbedding.value.type == .q8_0)

        func lossAndGradients(_ model: TrainableLlama) -> [[Float]] {
            let targets = Array(Self.tokens.dropFirst()) + [Ops.ignoredTarget]
            let loss = model.loss(
                tokens: Self.tokens, targets: targets, batchSize: 1, seqLen: Self.tokens.count)
            loss.backward()
            return [loss.value.toArray()] + model.trainableParameters.map { $0.gradient!.toArray() }
        }
        for (q, f) in zip(lossAndGradients(qlora), lossAndGradients(lora)) {
            #expect(Self.largestDifference(q, f) < 1e-4)
        }
    }

    @Test("checkpointing gives adapters the same gradients as the plain forward")
    func checkpointingWithAdapters() throws {
        let cases = [
            Adaptation(
                method: .lora,
                lora: LoRASettings(rank: 2, alpha: 4, dropout: 0.2, targets: [.query, .down])),
            Adaptation(method: .prefix, virtualTokens: 2, prefixProjection: 4),
            Adaptation(method: .prompt, virtualTokens: 2),
        ]
        for adaptation in cases {
            let model = try Self.adapted(adaptation)
            Self.perturb(model, seed: 4, scale: 0.5)
            let tokens = Self.tokens + [6, 7]
            let targets = Array(tokens.dropFirst()) + [Ops.ignoredTarget]
            func run(_ checkpointing: Bool) -> [[Float]] {
                for parameter in model.trainableParameters { parameter.zeroGradient() }
                let loss = model.loss(
                    tokens: tokens, targets: targets, batchSize: 2, seqLen: 6,
                    options: ForwardOptions(
                        checkpointing: checkpointing, dropout: 0, dropoutSeed: 3, training: true))
                loss.backward()
                return [loss.value.toArray()]
                    + model.trainableParameters.map { $0.gradient?.toArray() ?? [] }
            }
            #expect(run(true) == run(false), "\(adaptation.method)")
        }
    }
}

extension Projection {
    func replaceForTest(in block: inout LlamaBlockWeights, with weight: WeightMatrix) {
        switch self {
        case .query: block.query = weight
        case .key: block.key = weight
        case .value: block.value = weight
        case .attentionOutput: block.attentionOutput = weight
        case .gate: block.gate = weight
        case .up: block.up = weight
        case .down: block.down = weight
        }
    }
}
