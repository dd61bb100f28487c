import Foundation
import SwiftLMCore
import SwiftLMModels
import SwiftLMTokenizers
import Testing

@testable import SwiftLMTraining

@Suite("Attention kinds in the model: training, inference and files")
struct AttentionKindModelTests {
    static func model(
        _ attention: AttentionKind, scale: Float = 10, contextLength: Int = 16
    ) throws -> TrainableLlama {
        var config = TrainableLlamaTests.config
        config.attention = attention
        config.contextLength = contextLength
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

    /// Evaluates `tokens` in pieces of `chunk`, returning every row of logits.
    static func inferLogits(
        _ context: InferenceContext, _ tokens: [Int], chunk: Int
    ) throws -> [Float] {
        var logits: [Float] = []
        var start = 0
        while start < tokens.count {
            let piece = Array(tokens[start..<min(start + chunk, tokens.count)])
            logits += try context.evaluate(piece, logits: .all)
            start += piece.count
        }
        return logits
    }

    static func largestDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "\(a.count) against \(b.count) logits")
        return zip(a, b).map { abs($0 - $1) }.max()!
    }

    @Test("a sliding window's KV cache keeps only the window, the chunk and the globals")
    func slidingWindowRing() throws {
        let attention = AttentionKind.slidingWindow(
            window: 4, globalPositions: [0], randomBlocks: 0)
        let model = try Self.model(attention, contextLength: 64)
        var random = TrainingRandom(seed: 9)
        let tokens = (0..<40).map { _ in Int(random.next() % 40) }
        let trained = model.logits(tokens: tokens, batchSize: 1, seqLen: 40).value.toArray()

        for chunk in [40, 5, 1] {
            // Chunks of at most 6 tokens: a ring of 4 + 6 - 1 slots that wraps four times.
            let context = InferenceContext(
                model: model.inferenceModel(), contextLength: 64, batchCapacity: 6,
                threadCount: 2)
            #expect(
                context.cache.retention
                    == .window(window: 4, ringSize: 9, globalPositions: [0]))
            #expect(context.cache.slotCount == 10)
            let inferred = try Self.inferLogits(context, tokens, chunk: chunk)
            let difference = Self.largestDifference(trained, inferred)
            // The cache keeps keys and values in F16, as for exact attention.
            #expect(difference < 2e-2, "chunk \(chunk): largest difference \(difference)")

            // The last token's window is still in the ring: it can be evaluated again.
            #expect(context.reusablePrefix(39) == 39)
            // Position 26 (the window of the token at 29) was overwritten by position 35.
            #expect(context.reusablePrefix(29) == 0)
            context.truncate(to: 39)
            let again = try context.evaluate([tokens[39]])
            let vocabSize = model.config.vocabSize
            // Equal but for the order of sums of a one-row product against a chunk's.
            #expect(Self.largestDifference(again, Array(inferred.suffix(vocabSize))) < 1e-5)
        }
    }

    @Test("a global position past the window keeps the whole cache and still gives training's")
    func slidingWindowLateGlobal() throws {
        let attention = AttentionKind.slidingWindow(
            window: 4, globalPositions: [0, 20], randomBlocks: 0)
        let model = try Self.model(attention, contextLength: 64)
        var random = TrainingRandom(seed: 10)
        let tokens = (0..<30).map { _ in Int(random.next() % 40) }
        let trained = model.logits(tokens: tokens, batchSize: 1, seqLen: 30).value.toArray()
        let context = InferenceContext(
            model: model.inferenceModel(), contextLength: 64, batchCapacity: 6, threadCount: 2)
        #expect(context.cache.retention == .all)
        let inferred = try Self.inferLogits(context, tokens, chunk: 7)
        #expect(Self.largestDifference(trained, inferred) < 2e-2)
    }

    @Test("Performer trains with checkpointing exactly")
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
    }

    @Test("Performer inference decodes with running sums and gives the training logits")
    func performerInference() throws {
        let model = try Self.model(.performer(features: 32, redrawEvery: 10), scale: 3)
        model.performerDraw = 3
        let trained = model.logits(tokens: Self.tokens, batchSize: 1, seqLen: 12).value.toArray()
        let largest = trained.map(abs).max()!

        for chunk in [12, 5, 1] {
            let context = InferenceContext(
                model: model.inferenceModel(), contextLength: 16, threadCount: 2)
            #expect(context.cache.slotCount == 0)
            let inferred = try Self.inferLogits(context, Self.tokens, chunk: chunk)
            let difference = Self.largestDifference(trained, inferred)
            #expect(difference < 1e-4 * largest, "chunk \(chunk): largest difference \(difference)")

            // Running sums cannot be rewound: only the whole sequence or nothing is reusable.
            #expect(context.reusablePrefix(12) == 12)
            #expect(context.reusablePrefix(11) == 0)
            context.reset()
            let first = try context.evaluate(Array(Self.tokens.prefix(3)), logits: .all)
            #expect(Self.largestDifference(first, Array(inferred.prefix(first.count))) < 1e-5)
        }

        // Another draw of the features gives other logits: inference uses the model's draw.
        model.performerDraw = 4
        let redrawn = model.logits(tokens: Self.tokens, batchSize: 1, seqLen: 12).value.toArray()
        #expect(Self.largestDifference(trained, redrawn) > 1e-3)
    }

    @Test("a Performer model's feature draw travels through GGUF")
    func performerDrawInFiles() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        var config = TrainableLlamaTests.config
        config.vocabSize = 257
        config.attention = .performer(features: 16, redrawEvery: 5)
        var random = TrainingRandom(seed: 4)
        let model = try TrainableLlama(config: config, random: &random)
        model.performerDraw = 7
        let path = scratch.file("performer.gguf")
        try ModelFileWriter.write(
            config: model.config, name: "test",
            tokenizer: ModelFileWriter.tokenizerMetadata(.byteLevel()),
            tensors: model.namedTensors, to: path)
        let loaded = try PretrainedModel(path: path)
        #expect(loaded.config.performerDraw == 7)
        #expect(loaded.config.attention == model.config.attention)

        let expected = model.logits(tokens: Self.tokens, batchSize: 1, seqLen: 12).value.toArray()
        let context = InferenceContext(model: loaded.model, contextLength: 16, threadCount: 1)
        let inferred = try context.evaluate(Self.tokens, logits: .all)
        #expect(Self.largestDifference(expected, inferred) < 1e-4 * expected.map(abs).max()!)
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
