import SwiftLMCore
import SwiftLMModels

/// How a pretrained model is adapted: which weights train, and what holds the base.
public struct Adaptation: Codable, Equatable, Sendable {
    public enum Method: String, Codable, CaseIterable, Sendable {
        /// Every weight trains (F32 copies of the base).
        case full
        /// LoRA on a frozen F32 copy of the base.
        case lora
        /// LoRA on the base as the GGUF file holds it, dequantized panel by panel.
        case qlora
        /// Learned keys and values in front of every layer's attention.
        case prefix
        /// Learned input embeddings in front of every sequence.
        case prompt
    }

    public var method: Method
    /// LoRA and QLoRA.
    public var lora: LoRASettings?
    /// Prefix and prompt tuning.
    public var virtualTokens: Int?
    /// Prefix tuning only: train the prefix through Li and Liang's MLP of this hidden width
    /// (nil trains the table directly). Files keep only the MLP's output, as PEFT's do.
    public var prefixProjection: Int?
    /// Prefix tuning only: per-head gates on the prefix, starting at zero, so the fresh
    /// adapter changes nothing (`Ops.prefixCausalAttention`); false (the default) fixes them
    /// at 1, the prefix tuning of PEFT, whose files carry no gates. Gated prefixes trained
    /// unstably on the instruction task of docs/FINETUNING.md, hence off by default.
    public var prefixGated: Bool

    public init(
        method: Method, lora: LoRASettings? = nil, virtualTokens: Int? = nil,
        prefixProjection: Int? = nil, prefixGated: Bool = false
    ) {
        self.method = method
        self.lora = lora
        self.virtualTokens = virtualTokens
        self.prefixProjection = prefixProjection
        self.prefixGated = prefixGated
    }

    /// How the base weights are held while training.
    public var base: TrainableLlama.Base {
        switch method {
        case .full: return .trainable
        case .lora: return .frozen
        // Prefix and prompt tuning never need an F32 base either.
        case .qlora, .prefix, .prompt: return .quantized
        }
    }
}

/// The trainable weights of an adapter, as autograd variables: LoRA's factors per layer and
/// projection, prefix tuning's table (or the MLP that produces it), prompt tuning's
/// embeddings. `Adapter` holds the same as plain tensors, for files and inference.
public final class TrainableAdapter: @unchecked Sendable {
    public let adaptation: Adaptation
    /// `lora[layer][projection]`: `a` `[rank, in]`, `b` `[out, rank]`.
    let lora: [[Projection: (a: Variable, b: Variable)]]
    /// Prefix tuning without the MLP: `[P, layers * 2 * kvDim]` (`Adapter.prefix`'s layout).
    let prefixTable: Variable?
    /// Prefix tuning with the MLP: `[P, kvDim]` embedding, then tanh(E·W1ᵀ + b1)·W2ᵀ + b2.
    let prefixMLP: (embedding: Variable, w1: Variable, b1: Variable, w2: Variable, b2: Variable)?
    /// Prompt tuning: `[N, hidden]`.
    let prompt: Variable?
    /// Prefix tuning: each layer's `[headCount]` gates; trainable from zero, or constant ones.
    let prefixGates: [Variable]

    /// Every trainable variable, named for checkpoints.
    public let parameters: [Variable]

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.elementCount } }

    /// A fresh adapter: LoRA's `A` uniform in ±1/√in (PyTorch's and PEFT's Kaiming-uniform
    /// bound with a = √5) and `B` zero, so the adapted model starts exactly as the base;
    /// prefix and prompt tables from `initialTable` when given (the keys and values, or the
    /// embeddings, of real tokens: Li and Liang 2021 and Lester et al. 2021 both found that
    /// real-word initialisation trains better than random), else ~ N(0, 0.02²).
    public init(
        fresh adaptation: Adaptation, config: LlamaConfig, random: inout TrainingRandom,
        initialTable: Tensor? = nil
    ) {
        let tableScale: Float = 0.02
        self.adaptation = adaptation
        var lora: [[Projection: (a: Variable, b: Variable)]] = []
        var parameters: [Variable] = []
        func normal(_ shape: [Int], _ std: Float, _ name: String) -> Variable {
            let tensor = Tensor(zeros: shape)
            for index in 0..<tensor.elementCount {
                tensor.floats[index] = random.nextNormal() * std
            }
            let variable = Variable(tensor, requiresGradient: true, name: name)
            parameters.append(variable)
            return variable
        }

        func table(_ shape: [Int], _ initial: Tensor?, _ name: String) -> Variable {
            guard let initial else { return normal(shape, tableScale, name) }
            precondition(initial.shape == shape, "initial table \(initial.shape), need \(shape)")
            let variable = Variable(
                Tensor(shape: shape, values: initial.toArray()), requiresGradient: true,
                name: name)
            parameters.append(variable)
            return variable
        }

        if let settings = adaptation.lora {
            for layer in 0..<config.layerCount {
                var factors: [Projection: (a: Variable, b: Variable)] = [:]
                for projection in settings.targets {
                    let shape = projection.shape(config)
                    let bound = 1 / Float(shape[1]).squareRoot()
                    let a = Tensor(zeros: [settings.rank, shape[1]])
                    for index in 0..<a.elementCount {
                        a.floats[index] = (2 * random.nextUnitFloat() - 1) * bound
                    }
                    let names = Self.loraNames(layer, projection)
                    let pair = (
                        a: Variable(a, requiresGradient: true, name: names.a),
                        b: Variable(
                            Tensor(zeros: [shape[0], settings.rank]), requiresGradient: true,
                            name: names.b)
                    )
                    parameters += [pair.a, pair.b]
                    factors[projection] = pair
                }
                lora.append(factors)
            }
        }
        self.lora = lora

        let count = adaptation.virtualTokens ?? 0
        let width = config.layerCount * 2 * config.kvDim
        if adaptation.method == .prefix, let hidden = adaptation.prefixProjection {
            prefixTable = nil
            prefixMLP = (
                embedding: normal([count, config.kvDim], 1, "prefix.embedding"),
                w1: normal(
                    [hidden, config.kvDim], 1 / Float(config.kvDim).squareRoot(),
                    "prefix.mlp.0.weight"),
                b1: normal([hidden], 0, "prefix.mlp.0.bias"),
                w2: normal(
                    [width, hidden], tableScale / Float(hidden).squareRoot(),
                    "prefix.mlp.2.weight"),
                b2: normal([width], 0, "prefix.mlp.2.bias")
            )
        } else {
            prefixMLP = nil
            prefixTable =
                adaptation.method == .prefix
                ? table([count, width], initialTable, "prefix.table") : nil
        }
        prompt =
            adaptation.method == .prompt
            ? table([count, config.hidden], initialTable, "prompt.embeddings") : nil
        prefixGates =
            adaptation.method != .prefix
            ? []
            : (0..<config.layerCount).map { layer in
                guard adaptation.prefixGated else {
                    return Variable(
                        Tensor(
                            shape: [config.headCount],
                            values: .init(repeating: 1, count: config.headCount)))
                }
                let gate = Variable(
                    Tensor(zeros: [config.headCount]), requiresGradient: true,
                    name: "prefix.gates.\(layer)")
                parameters.append(gate)
                return gate
            }
        self.parameters = parameters
    }

    /// The trainable form of an adapter read from a file (to continue training it).
    public init(_ adapter: Adapter, config: LlamaConfig) {
        var parameters: [Variable] = []
        func variable(_ tensor: Tensor, _ name: String) -> Variable {
            let result = Variable(
                Tensor(shape: tensor.shape, values: tensor.toArray()), requiresGradient: true,
                name: name)
            parameters.append(result)
            return result
        }
        switch adapter {
        case .lora(let settings, let layers):
            adaptation = Adaptation(method: .lora, lora: settings)
            var lora = [[Projection: (a: Variable, b: Variable)]](
                repeating: [:], count: config.layerCount)
            for layer in layers {
                let names = Self.loraNames(layer.layer, layer.projection)
                lora[layer.layer][layer.projection] = (
                    variable(layer.a, names.a), variable(layer.b, names.b)
                )
            }
            self.lora = lora
            prefixTable = nil
            prompt = nil
            prefixGates = []
        case .prefix(let table, let gates):
            adaptation = Adaptation(
                method: .prefix, virtualTokens: table.shape[0], prefixGated: gates != nil)
            lora = []
            prefixTable = variable(table, "prefix.table")
            prompt = nil
            let heads = config.headCount
            prefixGates = (0..<config.layerCount).map { layer in
                let values = gates.map {
                    Array($0.toArray()[(layer * heads)..<((layer + 1) * heads)])
                }
                guard let values else {
                    return Variable(
                        Tensor(shape: [heads], values: .init(repeating: 1, count: heads)))
                }
                return variable(Tensor(shape: [heads], values: values), "prefix.gates.\(layer)")
            }
        case .prompt(let table):
            adaptation = Adaptation(method: .prompt, virtualTokens: table.shape[0])
            lora = []
            prefixTable = nil
            prompt = variable(table, "prompt.embeddings")
            prefixGates = []
        }
        prefixMLP = nil
        self.parameters = parameters
    }

    /// Virtual positions before every sequence (prefix and prompt tuning), else 0.
    public var virtualTokens: Int {
        prefixTable?.shape[0] ?? prefixMLP?.embedding.shape[0] ?? prompt?.shape[0] ?? 0
    }

    /// Prefix tuning's `[P, layers * 2 * kvDim]` keys and values for this forward pass.
    func prefix() -> Variable? {
        if let prefixTable { return prefixTable }
        guard let mlp = prefixMLP else { return nil }
        let hidden = Ops.tanh(Ops.addBias(Ops.linear(mlp.embedding, weight: mlp.w1), mlp.b1))
        return Ops.addBias(Ops.linear(hidden, weight: mlp.w2), mlp.b2)
    }

    /// The adapter as plain tensors (copies), for files and inference.
    public func adapter() -> Adapter {
        func copy(_ tensor: Tensor) -> Tensor {
            Tensor(shape: tensor.shape, values: tensor.toArray())
        }
        if let settings = adaptation.lora {
            var layers: [LoRALayer] = []
            for (layer, factors) in lora.enumerated() {
                for projection in Projection.allCases {
                    guard let pair = factors[projection] else { continue }
                    layers.append(
                        LoRALayer(
                            layer: layer, projection: projection, a: copy(pair.a.value),
                            b: copy(pair.b.value)))
                }
            }
            return .lora(settings, layers)
        }
        if let prompt { return .prompt(copy(prompt.value)) }
        let table = GradientRecording.withoutRecording { prefix()! }
        let gates =
            adaptation.prefixGated
            ? Tensor(
                shape: [prefixGates.count, prefixGates.first?.elementCount ?? 0],
                values: prefixGates.flatMap { $0.value.toArray().map { max(0, $0) } })
            : nil
        return .prefix(copy(table.value), gates: gates)
    }

    /// The trainable variables that layer `layer`'s block uses (for checkpointing).
    func parameters(layer: Int) -> [Variable] {
        let gates = layer < prefixGates.count ? [prefixGates[layer]] : []
        guard layer < lora.count else { return gates }
        return Projection.allCases.flatMap { projection in
            lora[layer][projection].map { [$0.a, $0.b] } ?? []
        }
    }

    static func loraNames(_ layer: Int, _ projection: Projection) -> (a: String, b: String) {
        ("lora.blk.\(layer).\(projection.rawValue).a", "lora.blk.\(layer).\(projection.rawValue).b")
    }
}
