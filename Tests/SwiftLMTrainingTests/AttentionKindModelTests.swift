import Foundation
import SwiftLMCore
import SwiftLMModels
import SwiftLMTokenizers
import Testing

@testable import SwiftLMTraining

@Suite("Attention kinds in the model: training, inference and files")
struct AttentionKindModelTests {
    static func model(_ attention: AttentionKind, scale: Float = 10) throws -> TrainableLlama {
        var config = TrainableLlamaTests.config
        config.attention = attention
        var random = TrainingRandom(seed: 3)
        let model = try TrainableLlama(config: config, random: &random)
        for parameter in model.parameters where parameter.value.rank == 2 {
            for index in 0..<parameter.elementCount { parameter.value.floats[index] *= scale }
        }
        return model
    }

    static let tokens = [1, 7, 30, 2, 2, 19, 39, 0, 11, 5, 8, 13]

    @Test("a sliding window covering the sequence gives the exact model's logits")
    func wideWindowIsExact() throws {
        let exact = try Self.model(.exact)
        let windowed = try Self.model(
            .slidingWindow(window: 16, globalPositions: [], randomBlocks: 0))
        let a = exact.logits(tokens: Self.tokens, batchSize: 1, seqLen: 12).value.toArray()
        let b = windowed.logits(tokens: Self.tokens, batchSize: 1, seqLen: 12).value.toArray()
        #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-4 })
    }

    @Test("inference with a sliding window and a global token gives the training logits")
    func slidingWindowInference() throws {
        let model = try Self.model(.slidingWindow(window: 3, globalPositions: [0], randomBlocks: 0))
        let trained = model.logits(tokens: Self.tokens, batchSize: 1, seqLen: 12).value.toArray()
        let exact = try Self.model(.exact)
        let unwindowed = exact.logits(tokens: Self.tokens, batchSize: 1, seqLen: 12).value.toArray()

        // Batched prompt and token-by-token decoding both follow the window.
        for chunk in [12, 1] {
            let context = InferenceContext(
                model: model.inferenceModel(), contextLength: 16, threadCount: 2)
            var inferred: [Float] = []
            var start = 0
            while start < Self.tokens.count {
                let piece = Array(Self.tokens[start..<min(start + chunk, Self.tokens.count)])
                inferred += try context.evaluate(piece, logits: .all)
                start += piece.count
            }
            let difference = zip(trained, inferred).map { abs($0 - $1) }.max()!
            // The cache keeps keys and values in F16, as for exact attention.
            #expect(difference < 2e-2, "chunk \(chunk): largest difference \(difference)")
        }
        // The window matters: the exact model's late logits differ.
        let late = 11 * TrainableLlamaTests.config.vocabSize
        let moved = (0..<TrainableLlamaTests.config.vocabSize).map {
            abs(trained[late + $0] - unwindowed[late + $0])
        }.max()!
        #expect(moved > 0.1)
    }

    @Test("Performer trains with checkpointing exactly, and inference refuses it by name")
    func performerModel() throws {
        let model = try Self.model(.performer(features: 32, redrawEvery: 10), scale: 1)
        let targets = Array(Self.tokens.dropFirst()) + [Ops.ignoredTarget]
        func run(_ checkpointing: Bool) -> [[Float]] {
            for parameter in model.parameters { parameter.zeroGradient() }
            let loss = model.loss(
                tokens: Self.tokens, targets: targets, batchSize: 2, seqLen: 6,
                options: ForwardOptions(checkpointing: checkpointing))
            loss.backward()
            return [loss.value.toArray()] + model.parameters.map { $0.gradient!.toArray() }
        }
        let plain = run(false)
        #expect(plain[0][0].isFinite)
        #expect(run(true) == plain)

        let context = InferenceContext(model: model.inferenceModel(), contextLength: 16)
        #expect(throws: ModelError.self) { try context.evaluate([1, 2, 3]) }
    }

    @Test("the attention kind travels through GGUF and model config JSON")
    func attentionInFiles() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        var config = TrainableLlamaTests.config
        config.vocabSize = 257
        config.attention = .slidingWindow(window: 4, globalPositions: [0, 3], randomBlocks: 0)
        var random = TrainingRandom(seed: 1)
        let model = try TrainableLlama(config: config, random: &random)
        let path = scratch.file("model.gguf")
        try ModelFileWriter.write(
            config: config, name: "test",
            tokenizer: ModelFileWriter.tokenizerMetadata(.byteLevel()),
            tensors: model.namedTensors, to: path)
        #expect(try PretrainedModel(path: path).config.attention == config.attention)

        let json = #"""
            {"hidden": 32, "intermediate": 48, "layers": 2, "heads": 4, "context_length": 16,
             "attention": {"kind": "performer", "features": 64}}
            """#
        let file = try JSONDecoder().decode(ModelConfigFile.self, from: Data(json.utf8))
        let decoded = try file.config(tokenizerVocabSize: 257)
        #expect(decoded.attention == .performer(features: 64, redrawEvery: 0))

        let bad =
            #"{"hidden": 32, "intermediate": 48, "layers": 2, "heads": 4, "#
            + #""context_length": 16, "attention": {"kind": "sliding_window", "window": 0}}"#
        let badFile = try JSONDecoder().decode(ModelConfigFile.self, from: Data(bad.utf8))
        #expect(throws: ModelError.self) { try badFile.config(tokenizerVocabSize: 257) }
    }
}
