import SwiftLMCore

/// The weights of one transformer block of a Llama-family decoder.
public struct LlamaBlockWeights: Sendable {
    /// `[hidden]`
    public var attentionNorm: Tensor
    /// `[headCount * headDim, hidden]`
    public var query: WeightMatrix
    /// `[kvHeadCount * headDim, hidden]`
    public var key: WeightMatrix
    /// `[kvHeadCount * headDim, hidden]`
    public var value: WeightMatrix
    /// `[hidden, headCount * headDim]`
    public var attentionOutput: WeightMatrix
    /// `[hidden]`
    public var feedForwardNorm: Tensor
    /// `[intermediate, hidden]`
    public var gate: WeightMatrix
    /// `[intermediate, hidden]`
    public var up: WeightMatrix
    /// `[hidden, intermediate]`
    public var down: WeightMatrix

    public init(
        attentionNorm: Tensor, query: WeightMatrix, key: WeightMatrix, value: WeightMatrix,
        attentionOutput: WeightMatrix, feedForwardNorm: Tensor, gate: WeightMatrix,
        up: WeightMatrix, down: WeightMatrix
    ) {
        self.attentionNorm = attentionNorm
        self.query = query
        self.key = key
        self.value = value
        self.attentionOutput = attentionOutput
        self.feedForwardNorm = feedForwardNorm
        self.gate = gate
        self.up = up
        self.down = down
    }
}

/// A Llama-family decoder: token embedding, `layerCount` blocks of RMSNorm, grouped-query
/// attention with RoPE and a SwiGLU feed-forward, a final RMSNorm and the output head.
///
/// This is SwiftLM's one model definition: inference runs it through `forward`, and training
/// and fine-tuning build on the same weights and configuration.
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    /// `[vocabSize, hidden]`
    public let tokenEmbedding: Tensor
    public let blocks: [LlamaBlockWeights]
    /// `[hidden]`
    public let outputNorm: Tensor
    /// `[vocabSize, hidden]`; the token embedding itself when the embeddings are tied.
    public let output: WeightMatrix

    public init(
        config: LlamaConfig, tokenEmbedding: Tensor, blocks: [LlamaBlockWeights],
        outputNorm: Tensor, output: WeightMatrix
    ) {
        precondition(blocks.count == config.layerCount, "one weight set per layer")
        self.config = config
        self.tokenEmbedding = tokenEmbedding
        self.blocks = blocks
        self.outputNorm = outputNorm
        self.output = output
    }

    /// Every tensor with its GGUF name, in file order (the output head only when untied).
    public var namedTensors: [(name: String, tensor: Tensor)] {
        var tensors = [(WeightNames.tokenEmbedding, tokenEmbedding)]
        for (layer, block) in blocks.enumerated() {
            let names = WeightNames.Block(layer: layer)
            tensors += [
                (names.attentionNorm, block.attentionNorm), (names.query, block.query.tensor),
                (names.key, block.key.tensor), (names.value, block.value.tensor),
                (names.attentionOutput, block.attentionOutput.tensor),
                (names.feedForwardNorm, block.feedForwardNorm), (names.gate, block.gate.tensor),
                (names.up, block.up.tensor), (names.down, block.down.tensor),
            ]
        }
        tensors.append((WeightNames.outputNorm, outputNorm))
        if !config.tiedEmbeddings { tensors.append((WeightNames.output, output.tensor)) }
        return tensors.map { (name: $0.0, tensor: $0.1) }
    }

    /// Weights in all, a tied output head counted once.
    public var parameterCount: Int { namedTensors.reduce(0) { $0 + $1.tensor.elementCount } }

    /// Every weight matrix of the model, for reports such as `swiftlm info`.
    public var weightMatrices: [WeightMatrix] {
        blocks.flatMap {
            [$0.query, $0.key, $0.value, $0.attentionOutput, $0.gate, $0.up, $0.down]
        }
            + [output]
    }
}
