import SwiftLMCore
import SwiftLMModels

/// The trainable weights of one transformer block, as F32 leaf variables.
public struct TrainableLlamaBlock: Sendable {
    public var attentionNorm: Variable
    public var query: Variable
    public var key: Variable
    public var value: Variable
    public var attentionOutput: Variable
    public var feedForwardNorm: Variable
    public var gate: Variable
    public var up: Variable
    public var down: Variable

    /// Every weight of the block, in the order of `WeightNames.Block`.
    public var all: [Variable] {
        [attentionNorm, query, key, value, attentionOutput, feedForwardNorm, gate, up, down]
    }
}

/// What a training forward pass does beyond the plain model.
public struct ForwardOptions: Sendable {
    /// Recompute each block's activations in the backward instead of keeping them.
    public var checkpointing = false
    /// Dropout on the output of each sub-layer before its residual add (0 disables it).
    public var dropout: Float = 0
    /// The seed of this step's dropout masks; each block and sub-layer derives its own.
    public var dropoutSeed: UInt64 = 0
    /// A training step rather than an evaluation: turns on the adapter's own dropout (LoRA's
    /// on its input), which the adapter's settings carry.
    public var training = false

    public init(
        checkpointing: Bool = false, dropout: Float = 0, dropoutSeed: UInt64 = 0,
        training: Bool = false
    ) {
        self.checkpointing = checkpointing
        self.dropout = dropout
        self.dropoutSeed = dropoutSeed
        self.training = training
    }
}

/// A Llama-family decoder with F32 weights that autograd can differentiate: the same
/// architecture, configuration and weight names as `LlamaModel`, which runs inference.
///
/// The forward pass is the inference forward written in differentiable operations (`Ops`);
/// a test holds the two to the same logits, and `inferenceModel()` hands the trained weights
/// to inference without a copy, so a trained model runs in `generate` and `serve` unchanged.
///
/// Weights are in GGUF's layout: the query and key rows of each head are ordered for
/// adjacent-pair RoPE (`ropeInterleaved`), as llama.cpp's converter permutes them.
/// `WeightNames.huggingFace` translates to and from HF's half-split layout.
public final class TrainableLlama: @unchecked Sendable {
    /// The configuration; only `performerDraw` changes during training.
    public private(set) var config: LlamaConfig
    /// `[vocabSize, hidden]`
    public let tokenEmbedding: Variable
    public let blocks: [TrainableLlamaBlock]
    /// `[hidden]`
    public let outputNorm: Variable
    /// `[vocabSize, hidden]`, or nil when the output head is the token embedding (tied).
    public let output: Variable?
    /// Which draw of Performer's random features the layers use (Performer attention only):
    /// the trainer moves it to `step / redrawEvery` so the features are redrawn periodically,
    /// as the Performer paper recommends for training.
    public var performerDraw: Int {
        get { config.performerDraw }
        set { config.performerDraw = newValue }
    }

    /// The adapter trained on top of the base weights (LoRA, prefix or prompt tuning); nil
    /// when the base weights themselves train or for plain inference checks.
    public var adapter: TrainableAdapter?

    /// How the base weights are held.
    public enum Base: Sendable {
        /// F32 and trained (training from scratch, full fine-tuning).
        case trainable
        /// F32 and frozen (LoRA).
        case frozen
        /// Frozen in the model file's own types, dequantized as used (QLoRA).
        case quantized
    }

    /// Every base weight with its GGUF name, in file order (trainable or not).
    public var parameters: [Variable] {
        [tokenEmbedding] + blocks.flatMap(\.all) + [outputNorm] + (output.map { [$0] } ?? [])
    }

    /// What the optimizer updates: the base weights that train, then the adapter's.
    public var trainableParameters: [Variable] {
        parameters.filter(\.requiresGradient) + (adapter?.parameters ?? [])
    }

    /// Parameters from named F32 tensors (a checkpoint, or a converted file), by GGUF name.
    /// Throws naming the first missing or mis-shaped tensor. With `trainable` false the
    /// weights are frozen constants and may be of any type `Ops.linear` dequantizes.
    public init(config: LlamaConfig, tensors: [String: Tensor], trainable: Bool = true) throws {
        try config.validate()
        self.config = config
        func parameter(_ name: String, _ shape: [Int]) throws -> Variable {
            guard let tensor = tensors[name] else { throw ModelError.missingTensor(name) }
            guard tensor.shape == shape, tensor.type == .f32 || !trainable else {
                throw ModelError.shapeMismatch(tensor: name, expected: shape, found: tensor.shape)
            }
            return Variable(tensor, requiresGradient: trainable, name: name)
        }
        let shapes = Self.shapes(config)
        tokenEmbedding = try parameter(WeightNames.tokenEmbedding, shapes.embedding)
        blocks = try (0..<config.layerCount).map { layer in
            let names = WeightNames.Block(layer: layer)
            return TrainableLlamaBlock(
                attentionNorm: try parameter(names.attentionNorm, [config.hidden]),
                query: try parameter(names.query, shapes.query),
                key: try parameter(names.key, shapes.keyValue),
                value: try parameter(names.value, shapes.keyValue),
                attentionOutput: try parameter(names.attentionOutput, shapes.attentionOutput),
                feedForwardNorm: try parameter(names.feedForwardNorm, [config.hidden]),
                gate: try parameter(names.gate, shapes.gateUp),
                up: try parameter(names.up, shapes.gateUp),
                down: try parameter(names.down, shapes.down))
        }
        outputNorm = try parameter(WeightNames.outputNorm, [config.hidden])
        output =
            config.tiedEmbeddings ? nil : try parameter(WeightNames.output, shapes.embedding)
    }

    /// Fresh weights for training from scratch: matrices ~ N(0, 0.02²) as GPT-2 and Llama
    /// initialise them, with the residual output projections scaled by 1/√(2 · layerCount)
    /// (GPT-2) so the residual stream does not grow with depth; norms at 1.
    public convenience init(config: LlamaConfig, random: inout TrainingRandom) throws {
        let std: Float = 0.02
        let residualStd = std / (2 * Float(config.layerCount)).squareRoot()
        var tensors: [String: Tensor] = [:]
        func normal(_ shape: [Int], _ std: Float) -> Tensor {
            let tensor = Tensor(zeros: shape)
            for index in 0..<tensor.elementCount {
                tensor.floats[index] = random.nextNormal() * std
            }
            return tensor
        }
        func ones(_ count: Int) -> Tensor {
            Tensor(shape: [count], values: .init(repeating: 1, count: count))
        }

        let shapes = Self.shapes(config)
        tensors[WeightNames.tokenEmbedding] = normal(shapes.embedding, std)
        for layer in 0..<config.layerCount {
            let names = WeightNames.Block(layer: layer)
            tensors[names.attentionNorm] = ones(config.hidden)
            tensors[names.query] = normal(shapes.query, std)
            tensors[names.key] = normal(shapes.keyValue, std)
            tensors[names.value] = normal(shapes.keyValue, std)
            tensors[names.attentionOutput] = normal(shapes.attentionOutput, residualStd)
            tensors[names.feedForwardNorm] = ones(config.hidden)
            tensors[names.gate] = normal(shapes.gateUp, std)
            tensors[names.up] = normal(shapes.gateUp, std)
            tensors[names.down] = normal(shapes.down, residualStd)
        }
        tensors[WeightNames.outputNorm] = ones(config.hidden)
        if !config.tiedEmbeddings { tensors[WeightNames.output] = normal(shapes.embedding, std) }
        try self.init(config: config, tensors: tensors)
    }

    /// A pretrained model's weights: F32 copies (dequantized) that train for full
    /// fine-tuning or stay frozen for LoRA, or for QLoRA the model's own tensors, frozen and
    /// shared with it (nothing is copied).
    public convenience init(model: LlamaModel, base: Base = .trainable) throws {
        var tensors: [String: Tensor] = [:]
        func copy(_ tensor: Tensor) -> Tensor {
            guard base != .quantized else { return tensor }
            return Tensor(shape: tensor.shape, values: tensor.toArray())
        }
        tensors[WeightNames.tokenEmbedding] = copy(model.tokenEmbedding)
        for (layer, block) in model.blocks.enumerated() {
            let names = WeightNames.Block(layer: layer)
            tensors[names.attentionNorm] = copy(block.attentionNorm)
            tensors[names.query] = copy(block.query.tensor)
            tensors[names.key] = copy(block.key.tensor)
            tensors[names.value] = copy(block.value.tensor)
            tensors[names.attentionOutput] = copy(block.attentionOutput.tensor)
            tensors[names.feedForwardNorm] = copy(block.feedForwardNorm)
            tensors[names.gate] = copy(block.gate.tensor)
            tensors[names.up] = copy(block.up.tensor)
            tensors[names.down] = copy(block.down.tensor)
        }
        tensors[WeightNames.outputNorm] = copy(model.outputNorm)
        if !model.config.tiedEmbeddings { tensors[WeightNames.output] = copy(model.output.tensor) }
        try self.init(config: model.config, tensors: tensors, trainable: base == .trainable)
    }

    /// The parameters by GGUF name (for checkpoints and export).
    public var namedTensors: [(name: String, tensor: Tensor)] {
        parameters.map { ($0.name, $0.value) }
    }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.elementCount } }

    /// An inference model over the same F32 storage (no copy): what `generate` runs.
    public func inferenceModel() -> LlamaModel {
        let blockWeights = blocks.map { block in
            LlamaBlockWeights(
                attentionNorm: block.attentionNorm.value, query: WeightMatrix(block.query.value),
                key: WeightMatrix(block.key.value), value: WeightMatrix(block.value.value),
                attentionOutput: WeightMatrix(block.attentionOutput.value),
                feedForwardNorm: block.feedForwardNorm.value, gate: WeightMatrix(block.gate.value),
                up: WeightMatrix(block.up.value), down: WeightMatrix(block.down.value))
        }
        return LlamaModel(
            config: config, tokenEmbedding: tokenEmbedding.value, blocks: blockWeights,
            outputNorm: outputNorm.value, output: WeightMatrix((output ?? tokenEmbedding).value))
    }

    private static func shapes(
        _ config: LlamaConfig
    ) -> (
        embedding: [Int], query: [Int], keyValue: [Int], attentionOutput: [Int], gateUp: [Int],
        down: [Int]
    ) {
        let queryDim = config.headCount * config.headDim
        return (
            [config.vocabSize, config.hidden], [queryDim, config.hidden],
            [config.kvDim, config.hidden], [config.hidden, queryDim],
            [config.intermediate, config.hidden], [config.hidden, config.intermediate]
        )
    }
}
