import Foundation
import SwiftLMCore
import SwiftLMModels
import Testing

@testable import SwiftLMTraining

@Suite("TrainableLlama: the training forward is the inference forward")
struct TrainableLlamaTests {
    static let config = LlamaConfig(
        vocabSize: 40, hidden: 32, intermediate: 48, layerCount: 2, headCount: 4, kvHeadCount: 2,
        contextLength: 16)

    static func model(seed: UInt64 = 3, scale: Float = 10) throws -> TrainableLlama {
        var random = TrainingRandom(seed: seed)
        let model = try TrainableLlama(config: config, random: &random)
        // Widen the 0.02 initialisation so that attention and the logits are far from uniform.
        for parameter in model.parameters where parameter.value.rank == 2 {
            for index in 0..<parameter.elementCount { parameter.value.floats[index] *= scale }
        }
        return model
    }

    @Test("logits equal the inference context's for every position of a sequence")
    func logitsMatchInference() throws {
        let model = try Self.model()
        let tokens = [1, 7, 30, 2, 2, 19, 39, 0, 11, 5]
        let trained = model.logits(tokens: tokens, batchSize: 1, seqLen: tokens.count)

        let context = InferenceContext(
            model: model.inferenceModel(), contextLength: 16, threadCount: 1)
        let inferred = try context.evaluate(tokens, logits: .all)
        var largest: Float = 0
        for index in 0..<tokens.count * Self.config.vocabSize {
            largest = max(largest, abs(trained.value.floats[index] - inferred[index]))
        }
        // Inference rounds keys, values, queries and softmax weights to F16 as llama.cpp does;
        // training keeps F32. Those roundings alone move logits of size ~10 by a few 1e-3.
        #expect(largest < 2e-2, "largest logit difference \(largest)")
    }

    @Test("a batch of two sequences gives each the logits it gets alone")
    func batchRowsAreIndependent() throws {
        let model = try Self.model()
        let first = [3, 4, 5, 6, 7, 8]
        let second = [9, 1, 9, 1, 9, 1]
        let both = model.logits(tokens: first + second, batchSize: 2, seqLen: 6).value.toArray()
        let alone = model.logits(tokens: second, batchSize: 1, seqLen: 6).value.toArray()
        let half = 6 * Self.config.vocabSize
        for index in 0..<half { #expect(abs(both[half + index] - alone[index]) < 1e-5) }
    }

    @Test("checkpointed blocks give the same loss and gradients as the plain forward")
    func checkpointingIsExact() throws {
        let model = try Self.model()
        let tokens = [1, 7, 30, 2, 2, 19, 39, 0, 11, 5, 6, 7]
        let targets = Array(tokens.dropFirst()) + [Ops.ignoredTarget]
        func run(_ checkpointing: Bool) -> [[Float]] {
            for parameter in model.parameters { parameter.zeroGradient() }
            let loss = model.loss(
                tokens: tokens, targets: targets, batchSize: 2, seqLen: 6,
                options: ForwardOptions(checkpointing: checkpointing, dropout: 0.1, dropoutSeed: 9))
            loss.backward()
            return [loss.value.toArray()] + model.parameters.map { $0.gradient!.toArray() }
        }
        #expect(run(true) == run(false))
    }
}
