import SwiftLMCore
import SwiftLMModels

/// The hyperparameters of a training run. Saved in every checkpoint, so `--resume` continues
/// with exactly the settings the run started with.
public struct TrainingOptions: Codable, Equatable, Sendable {
    /// Optimizer steps in the whole run.
    public var steps = 1000
    /// Sequences per micro-batch.
    public var batchSize = 8
    /// Tokens per sequence.
    public var seqLen = 128
    /// Micro-batches whose gradients are summed (and averaged) into one optimizer step.
    public var accumulationSteps = 1
    /// Peak learning rate, reached at the end of the warmup.
    public var learningRate: Float = 1e-3
    /// Final learning rate of the cosine decay; nil means a tenth of the peak.
    public var minLearningRate: Float?
    /// Linear warmup steps; nil means 10% of the run, at most 100 steps.
    public var warmupSteps: Int?
    /// "adamw" or "sgd".
    public var optimizer = "adamw"
    public var weightDecay: Double = 0.1
    public var beta1: Double = 0.9
    public var beta2: Double = 0.95
    public var epsilon: Double = 1e-8
    /// SGD's momentum.
    public var momentum: Double = 0.9
    /// Clip the global gradient norm to this value (0 disables clipping).
    public var gradientClip: Float = 1
    /// Recompute each block's activations in the backward (less memory, about a third more
    /// compute).
    public var checkpointing = false
    /// Residual dropout probability.
    public var dropout: Float = 0
    /// Write a checkpoint every this many steps (and at the end).
    public var checkpointEvery = 100
    /// Compute the validation loss every this many steps (and at the end); 0 disables it.
    public var evalEvery = 100
    /// Validation batches per evaluation.
    public var evalBatches = 8
    /// Append a metrics line every this many steps.
    public var logEvery = 10
    /// Seeds the weights (from scratch), the data windows and the dropout masks.
    public var seed: UInt64 = 1

    public init() {}

    public var resolvedWarmupSteps: Int { warmupSteps ?? min(100, steps / 10) }
    public var resolvedMinLearningRate: Float { minLearningRate ?? learningRate / 10 }
    /// Tokens that one optimizer step trains on.
    public var tokensPerStep: Int { batchSize * seqLen * accumulationSteps }

    /// Checks ranges; throws naming the option and the value.
    public func validate() throws {
        func require(_ ok: Bool, _ option: String, _ value: Any, _ expected: String) throws {
            if !ok { throw TrainingError.invalidOption(option, "\(value)", expected) }
        }
        try require(steps >= 1, "steps", steps, ">= 1")
        try require(batchSize >= 1, "batch-size", batchSize, ">= 1")
        try require(seqLen >= 2, "seq-len", seqLen, ">= 2")
        try require(accumulationSteps >= 1, "accumulation-steps", accumulationSteps, ">= 1")
        try require(
            learningRate > 0 && learningRate.isFinite, "lr", learningRate, "a positive number")
        try require(["adamw", "sgd"].contains(optimizer), "optimizer", optimizer, "adamw or sgd")
        try require(dropout >= 0 && dropout < 1, "dropout", dropout, "in [0, 1)")
        try require(checkpointEvery >= 1, "checkpoint-every", checkpointEvery, ">= 1")
        try require(evalEvery >= 0, "eval-every", evalEvery, ">= 0")
        try require(logEvery >= 1, "log-every", logEvery, ">= 1")
        try require(gradientClip >= 0, "grad-clip", gradientClip, ">= 0")
    }
}

/// Named model sizes for training from scratch, with the byte-level vocabulary (257 tokens).
public enum ModelPreset: String, CaseIterable, Sendable {
    /// About 0.9 million parameters: trains in a minute on two cores.
    case tiny
    /// About 10 million parameters.
    case small

    public func config(vocabSize: Int) -> LlamaConfig {
        switch self {
        case .tiny:
            return LlamaConfig(
                vocabSize: vocabSize, hidden: 128, intermediate: 352, layerCount: 4,
                headCount: 4, kvHeadCount: 2, contextLength: 256)
        case .small:
            return LlamaConfig(
                vocabSize: vocabSize, hidden: 384, intermediate: 1024, layerCount: 6,
                headCount: 6, kvHeadCount: 2, contextLength: 512)
        }
    }
}

/// A model configuration file for `swiftlm train --config FILE`: the sizes of a Llama-family
/// model in snake_case JSON. Omitted keys take the usual defaults (`kv_heads` = `heads`,
/// `head_dim` = `hidden / heads`, `rope_base` = 10000, tied embeddings); `vocab_size` defaults
/// to the tokenizer's. `rope_scaling` (`RoPEScalingFile`) stretches RoPE; unscaled by default.
/// `attention` chooses the attention kind (`AttentionKind`); exact by default.
public struct ModelConfigFile: Codable, Sendable {
    public var vocabSize: Int?
    public var hidden: Int
    public var intermediate: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int?
    public var headDim: Int?
    public var contextLength: Int
    public var ropeBase: Float?
    public var ropeScaling: RoPEScalingFile?
    public var normEpsilon: Float?
    public var tiedEmbeddings: Bool?
    /// `{"kind": "exact" | "sliding_window" | "performer", ...}` (see `AttentionKind`).
    public var attention: AttentionKind?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case hidden, intermediate, layers, heads
        case kvHeads = "kv_heads"
        case headDim = "head_dim"
        case contextLength = "context_length"
        case ropeBase = "rope_base"
        case ropeScaling = "rope_scaling"
        case normEpsilon = "norm_epsilon"
        case tiedEmbeddings = "tied_embeddings"
        case attention
    }

    public func config(tokenizerVocabSize: Int) throws -> LlamaConfig {
        let vocabSize = self.vocabSize ?? tokenizerVocabSize
        guard vocabSize >= tokenizerVocabSize else {
            throw TrainingError.invalidOption(
                "vocab_size", "\(vocabSize)", ">= the tokenizer's \(tokenizerVocabSize) tokens")
        }
        guard heads > 0, hidden > 0 else {
            throw TrainingError.invalidOption("heads", "\(heads)", "> 0 with hidden > 0")
        }
        guard headDim != nil || hidden % heads == 0 else {
            throw TrainingError.invalidOption(
                "hidden", "\(hidden)", "a multiple of heads (\(heads)) or an explicit head_dim")
        }
        var config = LlamaConfig(
            vocabSize: vocabSize, hidden: hidden, intermediate: intermediate, layerCount: layers,
            headCount: heads, kvHeadCount: kvHeads ?? heads, headDim: headDim,
            contextLength: contextLength, ropeBase: ropeBase ?? 10000,
            ropeScaling: try ropeScaling?.scaling(contextLength: contextLength) ?? .none,
            rmsNormEpsilon: normEpsilon ?? 1e-5, tiedEmbeddings: tiedEmbeddings ?? true)
        config.attention = attention ?? .exact
        try config.validate()
        return config
    }
}

/// `rope_scaling` of a model configuration file, in GGUF's words: `type` (`none`, `linear`,
/// `ntk_aware` or `yarn`), `factor`, and for YaRN `original_context_length` (default: the
/// config's `context_length`), `beta_fast` (32) and `beta_slow` (1). NTK-aware scaling has no
/// GGUF type; the exported model carries it as its larger `rope.freq_base`.
public struct RoPEScalingFile: Codable, Sendable {
    public var type: String
    public var factor: Float?
    public var originalContextLength: Int?
    public var betaFast: Float?
    public var betaSlow: Float?

    enum CodingKeys: String, CodingKey {
        case type, factor
        case originalContextLength = "original_context_length"
        case betaFast = "beta_fast"
        case betaSlow = "beta_slow"
    }

    func scaling(contextLength: Int) throws -> RoPEScaling {
        let factor = self.factor ?? 1
        switch type {
        case "none": return .none
        case "linear": return .linear(factor: factor)
        case "ntk_aware": return .ntkAware(factor: factor)
        case "yarn":
            return .yarn(
                factor: factor, originalContextLength: originalContextLength ?? contextLength,
                betaFast: betaFast ?? 32, betaSlow: betaSlow ?? 1)
        default:
            throw TrainingError.invalidOption(
                "rope_scaling.type", "'\(type)'", "'none', 'linear', 'ntk_aware' or 'yarn'")
        }
    }
}
