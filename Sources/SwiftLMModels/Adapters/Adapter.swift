import SwiftLMCore

/// A linear projection of a transformer block, the modules that LoRA can adapt.
public enum Projection: String, CaseIterable, Codable, Sendable {
    case query = "q"
    case key = "k"
    case value = "v"
    case attentionOutput = "o"
    case gate
    case up
    case down

    /// The module's path inside a Hugging Face Llama block, as PEFT names it
    /// (`self_attn.q_proj`, `mlp.down_proj`).
    public var huggingFacePath: String {
        switch self {
        case .query: return "self_attn.q_proj"
        case .key: return "self_attn.k_proj"
        case .value: return "self_attn.v_proj"
        case .attentionOutput: return "self_attn.o_proj"
        case .gate: return "mlp.gate_proj"
        case .up: return "mlp.up_proj"
        case .down: return "mlp.down_proj"
        }
    }

    /// The last component of `huggingFacePath`, what PEFT's `target_modules` lists.
    public var huggingFaceModule: String {
        String(huggingFacePath.split(separator: ".").last!)
    }

    /// A target by its short name (`q`) or its PEFT module name (`q_proj`).
    public init?(name: String) {
        if let short = Projection(rawValue: name) {
            self = short
        } else if let module = Projection.allCases.first(where: { $0.huggingFaceModule == name }) {
            self = module
        } else {
            return nil
        }
    }

    /// `[outFeatures, inFeatures]` of this projection's weight.
    public func shape(_ config: LlamaConfig) -> [Int] {
        let queryDim = config.headCount * config.headDim
        switch self {
        case .query: return [queryDim, config.hidden]
        case .key, .value: return [config.kvDim, config.hidden]
        case .attentionOutput: return [config.hidden, queryDim]
        case .gate, .up: return [config.intermediate, config.hidden]
        case .down: return [config.hidden, config.intermediate]
        }
    }

    /// Heads whose rows the GGUF file orders for adjacent-pair RoPE (query and key only): an
    /// adapter's output rows must be permuted to and from Hugging Face's order with them.
    func ropeHeads(_ config: LlamaConfig) -> Int? {
        switch self {
        case .query: return config.headCount
        case .key: return config.kvHeadCount
        default: return nil
        }
    }

    /// This projection's weight in a block.
    public func weight(of block: LlamaBlockWeights) -> WeightMatrix {
        switch self {
        case .query: return block.query
        case .key: return block.key
        case .value: return block.value
        case .attentionOutput: return block.attentionOutput
        case .gate: return block.gate
        case .up: return block.up
        case .down: return block.down
        }
    }

    func replace(in block: inout LlamaBlockWeights, with weight: WeightMatrix) {
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

/// LoRA's hyperparameters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
/// Models"): each targeted weight `W` becomes `W + scale · B·A` with `A` `[rank, in]` and `B`
/// `[out, rank]`.
public struct LoRASettings: Codable, Equatable, Sendable {
    public var rank: Int
    public var alpha: Float
    /// rsLoRA (Kalajievic 2023): scale by `alpha / sqrt(rank)` instead of `alpha / rank`, so
    /// that higher ranks keep learning at the same rate.
    public var rankStabilized: Bool
    /// Dropout on the adapter's input during training.
    public var dropout: Float
    /// Projections adapted in every layer, in `Projection.allCases` order.
    public var targets: [Projection]

    public init(
        rank: Int = 8, alpha: Float = 16, rankStabilized: Bool = false, dropout: Float = 0,
        targets: [Projection] = [.query, .key, .value, .attentionOutput]
    ) {
        self.rank = rank
        self.alpha = alpha
        self.rankStabilized = rankStabilized
        self.dropout = dropout
        self.targets = Projection.allCases.filter(targets.contains)
    }

    public var scale: Float {
        rankStabilized ? alpha / Float(rank).squareRoot() : alpha / Float(rank)
    }
}

/// One adapted projection: where it is and its two factors.
public struct LoRALayer: Sendable {
    public var layer: Int
    public var projection: Projection
    /// `[rank, inFeatures]`
    public var a: Tensor
    /// `[outFeatures, rank]`, rows in the GGUF order of the projection's weight.
    public var b: Tensor

    public init(layer: Int, projection: Projection, a: Tensor, b: Tensor) {
        self.layer = layer
        self.projection = projection
        self.a = a
        self.b = b
    }
}

/// The weights of a parameter-efficient adaptation of a Llama-family model, as files carry
/// them and as inference applies them; training holds them as variables (`TrainableAdapter`).
///
/// Tensors are in SwiftLM's layout: rows of query and key outputs in GGUF's adjacent-pair
/// order. `PEFTAdapterFile` converts to and from Hugging Face's order.
public enum Adapter: Sendable {
    /// LoRA factors for every targeted projection of every layer.
    case lora(LoRASettings, [LoRALayer])
    /// Prefix tuning (Li and Liang 2021): `[virtualTokens, layerCount * 2 * kvDim]`; row `p`
    /// holds, for each layer `l`, the key of virtual position `p` at columns
    /// `2l · kvDim ..< (2l + 1) · kvDim` and its value right after: what a layer's KV cache
    /// holds for that position (keys as stored, after RoPE). Real tokens follow at positions
    /// `virtualTokens...`, as Hugging Face numbers them after a cached prefix.
    ///
    /// `gates`, `[layerCount, headCount]`, scale each head's attention weights on the prefix
    /// before the softmax normalises them (`Ops.prefixCausalAttention`); SwiftLM starts them at
    /// zero so a fresh prefix changes nothing. Nil means every gate is 1, which is prefix
    /// tuning as PEFT computes it.
    case prefix(Tensor, gates: Tensor?)
    /// Prompt tuning (Lester et al. 2021): `[virtualTokens, hidden]` input embeddings put in
    /// front of every sequence at positions `0..<virtualTokens`.
    case prompt(Tensor)

    public var method: String {
        switch self {
        case .lora: return "lora"
        case .prefix: return "prefix"
        case .prompt: return "prompt"
        }
    }

    /// Trainable values it holds.
    public var parameterCount: Int {
        switch self {
        case .lora(_, let layers):
            return layers.reduce(0) { $0 + $1.a.elementCount + $1.b.elementCount }
        case .prefix(let table, let gates):
            return table.elementCount + (gates?.elementCount ?? 0)
        case .prompt(let table):
            return table.elementCount
        }
    }

    /// Throws naming the first tensor whose shape does not fit `config`.
    public func validate(for config: LlamaConfig) throws(AdapterError) {
        switch self {
        case .lora(let settings, let layers):
            guard settings.rank >= 1 else {
                throw .invalidConfig("rank \(settings.rank) must be at least 1")
            }
            for layer in layers {
                let name = PEFTAdapterFile.loraName(layer.layer, layer.projection, "A")
                guard layer.layer >= 0 && layer.layer < config.layerCount else {
                    throw .invalidConfig(
                        "\(name): layer \(layer.layer) of a \(config.layerCount)-layer model")
                }
                let shape = layer.projection.shape(config)
                let expectedA = [settings.rank, shape[1]]
                guard layer.a.shape == expectedA else {
                    throw .shapeMismatch(tensor: name, expected: expectedA, found: layer.a.shape)
                }
                let expectedB = [shape[0], settings.rank]
                guard layer.b.shape == expectedB else {
                    throw .shapeMismatch(
                        tensor: PEFTAdapterFile.loraName(layer.layer, layer.projection, "B"),
                        expected: expectedB, found: layer.b.shape)
                }
            }
        case .prefix(let table, let gates):
            let width = config.layerCount * 2 * config.kvDim
            guard table.rank == 2, table.shape[1] == width, table.shape[0] >= 1 else {
                throw .shapeMismatch(
                    tensor: PEFTAdapterFile.promptTensorName,
                    expected: [max(table.shape.first ?? 1, 1), width], found: table.shape)
            }
            let gateShape = [config.layerCount, config.headCount]
            if let gates, gates.shape != gateShape {
                throw .shapeMismatch(
                    tensor: PEFTAdapterFile.gatesTensorName, expected: gateShape,
                    found: gates.shape)
            }
        case .prompt(let table):
            guard table.rank == 2, table.shape[1] == config.hidden, table.shape[0] >= 1 else {
                throw .shapeMismatch(
                    tensor: PEFTAdapterFile.promptTensorName,
                    expected: [max(table.shape.first ?? 1, 1), config.hidden], found: table.shape)
            }
        }
    }
}

/// Why an adapter could not be read, written or applied; one line naming the problem.
public enum AdapterError: Error, CustomStringConvertible, Equatable {
    case missingFile(String)
    case malformedConfig(path: String, reason: String)
    case invalidConfig(String)
    case unsupported(key: String, value: String, supported: String)
    case unknownTarget(String)
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    case unexpectedTensor(String)

    public var description: String {
        switch self {
        case .missingFile(let path):
            return "adapter file \(path) does not exist"
        case .malformedConfig(let path, let reason):
            return "\(path): \(reason)"
        case .invalidConfig(let reason):
            return "invalid adapter: \(reason)"
        case .unsupported(let key, let value, let supported):
            return "unsupported adapter: '\(key)' is \(value) (SwiftLM supports \(supported))"
        case .unknownTarget(let name):
            let known = Projection.allCases.map { "\($0.rawValue) (\($0.huggingFaceModule))" }
            return "no module '\(name)' in a Llama block; targets are "
                + known.joined(separator: ", ")
        case .missingTensor(let name):
            return "adapter lacks the tensor '\(name)'"
        case .shapeMismatch(let tensor, let expected, let found):
            return "adapter tensor '\(tensor)' has shape \(found), the model needs \(expected)"
        case .unexpectedTensor(let name):
            return "adapter tensor '\(name)' belongs to no module this model has"
        }
    }
}
