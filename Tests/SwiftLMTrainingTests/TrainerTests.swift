import Foundation
import SwiftLMCore
import SwiftLMFormats
import SwiftLMModels
import SwiftLMTokenizers
import Testing

@testable import SwiftLMTraining

@Suite("Trainer: the loop, checkpoints and resume")
struct TrainerTests {
    static let config = LlamaConfig(
        vocabSize: 30, hidden: 16, intermediate: 24, layerCount: 2, headCount: 2, kvHeadCount: 1,
        contextLength: 32)

    /// A token file of a learnable sequence: a repeating pattern with seeded noise.
    static func dataset(in scratch: DataScratch) throws -> TokenDataset {
        var random = TrainingRandom(seed: 5)
        let ids = (0..<3000).map { index in
            random.nextUnitFloat() < 0.1 ? Int(random.next() % 30) : (index * 7) % 30
        }
        let path = scratch.file("data.tokens")
        try TokenFileWriter.write(ids, vocabSize: 30, to: path)
        return try TokenDataset(file: TokenFile(path: path), seqLen: 16)
    }

    static func options(steps: Int) -> TrainingOptions {
        var options = TrainingOptions()
        options.steps = steps
        options.batchSize = 4
        options.seqLen = 16
        options.learningRate = 1e-2
        options.checkpointEvery = 5
        options.evalEvery = 5
        options.evalBatches = 2
        options.logEvery = 1
        options.dropout = 0.1
        return options
    }

    static func freshModel() throws -> TrainableLlama {
        var random = TrainingRandom(seed: 1)
        return try TrainableLlama(config: config, random: &random)
    }

    @Test("training lowers the loss below the unigram baseline")
    func lossFalls() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let dataset = try Self.dataset(in: scratch)
        var options = Self.options(steps: 60)
        options.dropout = 0
        let trainer = try Trainer(
            model: Self.freshModel(), dataset: dataset, options: options,
            directory: scratch.file("run"), resume: false)
        let before = trainer.evaluate()
        try trainer.run()
        let after = try #require(trainer.lastValidationLoss)
        #expect(after < before - 1, "validation loss \(before) -> \(after)")
        #expect(after < dataset.unigramEntropy(), "baseline \(dataset.unigramEntropy())")
    }

    @Test("a run stopped after a checkpoint and resumed logs exactly the uninterrupted losses")
    func resumeIsExact() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let dataset = try Self.dataset(in: scratch)

        let whole = try Trainer(
            model: Self.freshModel(), dataset: dataset, options: Self.options(steps: 12),
            directory: scratch.file("whole"), resume: false)
        try whole.run()

        // The interrupted run stops after step 7; its checkpoint is from step 5, and the
        // metrics of steps 6 and 7 must be dropped and run again.
        let first = try Trainer(
            model: Self.freshModel(), dataset: dataset, options: Self.options(steps: 12),
            directory: scratch.file("split"), resume: false)
        try first.runUntil(step: 7)
        let second = try Trainer(
            model: Self.freshModel(), dataset: dataset, options: Self.options(steps: 12),
            directory: scratch.file("split"), resume: true)
        #expect(second.step == 5)
        try second.run()

        let expected = try MetricsLog.read(directory: scratch.file("whole"))
        let resumed = try MetricsLog.read(directory: scratch.file("split"))
        #expect(expected.map(\.step) == Array(1...12))
        #expect(resumed.map(\.step) == expected.map(\.step))
        #expect(resumed.map(\.loss) == expected.map(\.loss))
        #expect(resumed.map(\.validationLoss) == expected.map(\.validationLoss))
        for (a, b) in zip(whole.model.parameters, second.model.parameters) {
            #expect(a.value.toArray() == b.value.toArray(), "\(a.name)")
        }
    }

    @Test("a NaN loss stops the run with a clear error and keeps the last good checkpoint")
    func nanLossKeepsCheckpoint() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let dataset = try Self.dataset(in: scratch)
        let trainer = try Trainer(
            model: Self.freshModel(), dataset: dataset, options: Self.options(steps: 20),
            directory: scratch.file("run"), resume: false)
        try trainer.runUntil(step: 5)
        let path = TrainingCheckpoint.path(in: scratch.file("run"))
        let saved = try Data(contentsOf: URL(fileURLWithPath: path))

        trainer.model.outputNorm.value.floats[0] = .nan
        let error = #expect(throws: TrainingError.self) { try trainer.run() }
        guard case .nonFiniteLoss(let step, let loss) = error else {
            Issue.record("expected a non-finite loss error, got \(String(describing: error))")
            return
        }
        #expect(step == 6 && loss.isNaN)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == saved)
        #expect(try TrainingCheckpoint(path: path).state.step == 5)
    }

    @Test("gradient accumulation over two half batches equals one full batch")
    func accumulationEqualsFullBatch() throws {
        let model = try Self.freshModel()
        let tokens = (0..<32).map { ($0 * 5) % 30 }
        let targets = (0..<32).map { ($0 * 5 + 5) % 30 }
        func gradients(_ halves: Bool) -> [[Float]] {
            for parameter in model.parameters { parameter.zeroGradient() }
            if halves {
                for half in 0..<2 {
                    let range = half * 16..<(half + 1) * 16
                    model.loss(
                        tokens: Array(tokens[range]), targets: Array(targets[range]),
                        batchSize: 1, seqLen: 16
                    ).backward()
                }
                GradientAccumulation.averageGradients(model.parameters, over: 2)
            } else {
                model.loss(tokens: tokens, targets: targets, batchSize: 2, seqLen: 16).backward()
            }
            return model.parameters.map { $0.gradient!.toArray() }
        }
        for (a, b) in zip(gradients(true), gradients(false)) {
            #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 + 1e-4 * abs($1) })
        }
    }

    @Test("a trained model written as GGUF loads for inference with the training logits")
    func exportRunsInInference() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let vocabulary = TokenizerVocabulary.byteLevel()
        var config = Self.config
        config.vocabSize = vocabulary.tokens.count
        var random = TrainingRandom(seed: 2)
        let byteModel = try TrainableLlama(config: config, random: &random)
        // Widen the initialisation so the logits are far from uniform.
        for parameter in byteModel.parameters where parameter.value.rank == 2 {
            for index in 0..<parameter.elementCount { parameter.value.floats[index] *= 20 }
        }
        let path = scratch.file("model.gguf")
        try ModelFileWriter.write(
            config: config, name: "test", tokenizer: ModelFileWriter.tokenizerMetadata(vocabulary),
            tensors: byteModel.namedTensors, to: path)

        let loaded = try PretrainedModel(path: path)
        #expect(loaded.config == config)
        let tokens = loaded.tokenizer.encode("hello, world", addSpecial: false)
        #expect(tokens == Array("hello, world".utf8).map(Int.init))
        let context = InferenceContext(model: loaded.model, threadCount: 1)
        let inferred = try context.evaluate(tokens, logits: .all)
        let trained = byteModel.logits(tokens: tokens, batchSize: 1, seqLen: tokens.count)
        let difference = zip(inferred, trained.value.toArray()).map { abs($0 - $1) }.max()!
        // Inference rounds keys, values, queries and softmax weights to F16 as llama.cpp does;
        // training keeps F32.
        #expect(difference < 2e-2, "largest logit difference \(difference)")
    }
}
