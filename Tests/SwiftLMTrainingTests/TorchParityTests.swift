import Foundation
import SwiftLMCore
import SwiftLMFormats
import SwiftLMModels
import Testing

@testable import SwiftLMTraining

/// The whole training path against PyTorch and HF transformers' LlamaForCausalLM on a tiny
/// model: loss, logits, every parameter's gradient, 20 AdamW steps with clipping and the
/// warmup-cosine schedule, 5 SGD steps. Fixtures: scripts/reference/make_training_reference.py.
@Suite("Training matches PyTorch on a tiny Llama")
struct TorchParityTests {
    struct Batch: Decodable {
        var inputs: [[Int]]
        var targets: [[Int]]
    }
    struct AdamWRun: Decodable {
        var lr_peak: Float
        var lr_min: Float
        var warmup_steps: Int
        var steps: Int
        var betas: [Double]
        var eps: Double
        var weight_decay: Double
        var max_grad_norm: Float
        var losses: [Double]
        var grad_norms: [Double]
        var learning_rates: [Double]
    }
    struct SGDRun: Decodable {
        var lr: Float
        var momentum: Double
        var steps: Int
        var losses: [Double]
    }
    struct Reference: Decodable {
        var inputs: [[Int]]
        var targets: [[Int]]
        var loss: Double
        var logits_row0_position0: [Float]
        var logits_row0_position11: [Float]
        var batches: [Batch]
        var adamw: AdamWRun
        var sgd: SGDRun
    }

    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static let reference: Reference = {
        let url = fixtures.appendingPathComponent("training_reference.json")
        return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }()
    static let config = LlamaConfig(
        vocabSize: 64, hidden: 32, intermediate: 48, layerCount: 2, headCount: 4, kvHeadCount: 2,
        headDim: 8, contextLength: 64, ropeBase: 10000, rmsNormEpsilon: 1e-5,
        tiedEmbeddings: true)

    /// HF tensors by GGUF name, the query and key rows reordered for adjacent-pair RoPE as
    /// llama.cpp's converter does (the one table: `WeightNames`).
    static func tensors(_ file: String) throws -> [String: Tensor] {
        let safetensors = try SafeTensorsFile(
            path: fixtures.appendingPathComponent(file).path)
        var result: [String: Tensor] = [:]
        for name in safetensors.names {
            let gguf = try #require(WeightNames.gguf(huggingFace: name), "unmapped \(name)")
            var tensor = try safetensors.floatTensor(name)
            if gguf.hasSuffix("attn_q.weight") || gguf.hasSuffix("attn_k.weight") {
                let heads = gguf.hasSuffix("attn_q.weight") ? config.headCount : config.kvHeadCount
                tensor = reorderRows(tensor, heads: heads)
            }
            result[gguf] = tensor
        }
        return result
    }

    static func reorderRows(_ tensor: Tensor, heads: Int) -> Tensor {
        let order = WeightNames.interleavedRoPERowOrder(heads: heads, headDim: config.headDim)
        let width = tensor.shape[1]
        let result = Tensor(zeros: tensor.shape)
        for (row, source) in order.enumerated() {
            (result.floats + row * width).update(from: tensor.floats + source * width, count: width)
        }
        return result
    }

    static func model() throws -> TrainableLlama {
        try TrainableLlama(
            config: config, tensors: tensors("training_reference_weights.safetensors"))
    }

    /// max |a − b| / max |b| over a tensor: relative to the tensor's scale, so elements near
    /// zero are held to the same absolute accuracy as the large ones.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 0
        let error = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        return scale > 0 ? error / scale : error
    }

    static func loss(_ model: TrainableLlama, _ batch: Batch) -> Variable {
        model.loss(
            tokens: batch.inputs.flatMap { $0 }, targets: batch.targets.flatMap { $0 },
            batchSize: batch.inputs.count, seqLen: batch.inputs[0].count)
    }

    @Test("loss, logits and every parameter's gradient equal PyTorch's within 1e-4")
    func gradients() throws {
        let model = try Self.model()
        let reference = Self.reference
        let batch = Batch(inputs: reference.inputs, targets: reference.targets)
        let logits = model.logits(tokens: batch.inputs.flatMap { $0 }, batchSize: 2, seqLen: 12)
        let first = Array(logits.value.toArray()[0..<64])
        let last = Array(logits.value.toArray()[11 * 64..<12 * 64])
        #expect(Self.relativeError(first, reference.logits_row0_position0) < 1e-5)
        #expect(Self.relativeError(last, reference.logits_row0_position11) < 1e-5)

        let loss = Self.loss(model, batch)
        #expect(abs(Double(loss.value.floats[0]) - reference.loss) / reference.loss < 1e-5)
        loss.backward()

        let expected = try Self.tensors("training_reference_grads.safetensors")
        #expect(expected.count == model.parameters.count)
        for parameter in model.parameters {
            let want = try #require(expected[parameter.name]).toArray()
            let error = Self.relativeError(parameter.gradient!.toArray(), want)
            #expect(error < 1e-4, "\(parameter.name): relative error \(error)")
        }
    }

    @Test("20 AdamW steps with clipping and warmup-cosine give PyTorch's losses within 1e-4")
    func adamWTrajectory() throws {
        let model = try Self.model()
        let run = Self.reference.adamw
        let optimizer = AdamW(
            parameters: model.parameters, beta1: run.betas[0], beta2: run.betas[1],
            epsilon: run.eps, weightDecay: run.weight_decay)
        let schedule = LearningRateSchedule.warmupCosine(
            peak: run.lr_peak, warmupSteps: run.warmup_steps, totalSteps: run.steps,
            minimum: run.lr_min)

        for step in 0..<run.steps {
            optimizer.zeroGradients()
            let loss = Self.loss(model, Self.reference.batches[step])
            let value = Double(loss.value.floats[0])
            #expect(abs(value - run.losses[step]) / run.losses[step] < 1e-4, "step \(step)")
            loss.backward()
            let norm = GradientClipping.clipGlobalNorm(
                model.parameters, maxNorm: run.max_grad_norm)
            #expect(abs(Double(norm) - run.grad_norms[step]) / run.grad_norms[step] < 1e-4)
            let learningRate = schedule.learningRate(atStep: step)
            #expect(abs(Double(learningRate) - run.learning_rates[step]) < 1e-9)
            optimizer.step(learningRate: learningRate)
        }

        let final = try Self.tensors("training_reference_final.safetensors")
        for parameter in model.parameters {
            let want = try #require(final[parameter.name]).toArray()
            let error = Self.relativeError(parameter.value.toArray(), want)
            #expect(error < 1e-4, "\(parameter.name): relative error \(error)")
        }
    }

    @Test("5 SGD-with-momentum steps give PyTorch's losses within 1e-4")
    func sgdTrajectory() throws {
        let model = try Self.model()
        let run = Self.reference.sgd
        let optimizer = SGD(parameters: model.parameters, momentum: run.momentum)
        for step in 0..<run.steps {
            optimizer.zeroGradients()
            let loss = Self.loss(model, Self.reference.batches[step])
            let value = Double(loss.value.floats[0])
            #expect(abs(value - run.losses[step]) / run.losses[step] < 1e-4, "step \(step)")
            loss.backward()
            optimizer.step(learningRate: run.lr)
        }
    }
}
