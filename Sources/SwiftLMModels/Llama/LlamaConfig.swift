import Foundation
import SwiftLMCore
import SwiftLMFormats

/// Hyperparameters of a Llama-family decoder, named as in docs/ARCHITECTURE.md's glossary.
///
/// Read from GGUF metadata by `init(gguf:)`; training builds one directly or from JSON.
public struct LlamaConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var hidden: Int
    public var intermediate: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var contextLength: Int
    public var ropeBase: Float
    /// Leading dimensions of each head that RoPE rotates (all of them for Llama).
    public var ropeDims: Int
    /// Adjacent-pair RoPE (ggml "normal", Llama GGUF files) rather than half-split ("NeoX").
    public var ropeInterleaved: Bool
    /// How RoPE stretches past the trained context (`rope.scaling.*`); `.none` for most models.
    public var ropeScaling: RoPEScaling
    public var rmsNormEpsilon: Float
    /// Whether the output head reuses the token embedding matrix.
    public var tiedEmbeddings: Bool
    /// How attention is computed; `.exact` for every pretrained model. Kept in GGUF files as
    /// `swiftlm.attention` (JSON), which llama.cpp ignores: it runs such a file with exact
    /// attention.
    public var attention: AttentionKind = .exact
    /// Which draw of Performer's random features the model was last trained with
    /// (`RandomFeatures.layer(_:draw:...)`); 0 for other kinds. Kept in GGUF files as
    /// `swiftlm.performer_draw`.
    public var performerDraw = 0

    public init(
        vocabSize: Int, hidden: Int, intermediate: Int, layerCount: Int, headCount: Int,
        kvHeadCount: Int, headDim: Int? = nil, contextLength: Int, ropeBase: Float = 10000,
        ropeDims: Int? = nil, ropeInterleaved: Bool = true, ropeScaling: RoPEScaling = .none,
        rmsNormEpsilon: Float = 1e-5, tiedEmbeddings: Bool = true
    ) {
        self.vocabSize = vocabSize
        self.hidden = hidden
        self.intermediate = intermediate
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim ?? hidden / headCount
        self.contextLength = contextLength
        self.ropeBase = ropeBase
        self.ropeDims = ropeDims ?? self.headDim
        self.ropeInterleaved = ropeInterleaved
        self.ropeScaling = ropeScaling
        self.rmsNormEpsilon = rmsNormEpsilon
        self.tiedEmbeddings = tiedEmbeddings
    }

    /// Width of the keys (and values) of one position: `kvHeadCount * headDim`.
    public var kvDim: Int { kvHeadCount * headDim }

    /// Checks the relations the forward pass relies on; throws naming the offending key.
    public func validate() throws {
        func require(_ ok: Bool, _ key: String, _ value: Int, _ expected: String) throws {
            if !ok {
                throw ModelError.invalidMetadata(key: key, value: "\(value)", expected: expected)
            }
        }
        try require(vocabSize > 0, "vocab_size", vocabSize, "> 0")
        try require(hidden > 0, "embedding_length", hidden, "> 0")
        try require(intermediate > 0, "feed_forward_length", intermediate, "> 0")
        try require(layerCount > 0, "block_count", layerCount, "> 0")
        try require(headCount > 0, "attention.head_count", headCount, "> 0")
        try require(
            kvHeadCount > 0 && headCount % kvHeadCount == 0, "attention.head_count_kv",
            kvHeadCount, "a divisor of head_count \(headCount)")
        try require(
            headDim > 0 && headDim % 2 == 0, "head dimension", headDim, "a positive even number")
        try require(
            ropeDims > 0 && ropeDims <= headDim && ropeDims % 2 == 0, "rope.dimension_count",
            ropeDims, "even and at most the head dimension \(headDim)")
        try require(contextLength > 0, "context_length", contextLength, "> 0")
        if let (field, value, expected) = ropeScaling.problem(dims: ropeDims) {
            throw ModelError.invalidMetadata(key: "rope.\(field)", value: value, expected: expected)
        }
        try attention.validate(contextLength: contextLength)
    }

    // Decoded by hand so that configurations saved before `ropeScaling` existed (training
    // checkpoints) still load, as unscaled.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            vocabSize: try container.decode(Int.self, forKey: .vocabSize),
            hidden: try container.decode(Int.self, forKey: .hidden),
            intermediate: try container.decode(Int.self, forKey: .intermediate),
            layerCount: try container.decode(Int.self, forKey: .layerCount),
            headCount: try container.decode(Int.self, forKey: .headCount),
            kvHeadCount: try container.decode(Int.self, forKey: .kvHeadCount),
            headDim: try container.decode(Int.self, forKey: .headDim),
            contextLength: try container.decode(Int.self, forKey: .contextLength),
            ropeBase: try container.decode(Float.self, forKey: .ropeBase),
            ropeDims: try container.decode(Int.self, forKey: .ropeDims),
            ropeInterleaved: try container.decode(Bool.self, forKey: .ropeInterleaved),
            ropeScaling: try container.decodeIfPresent(RoPEScaling.self, forKey: .ropeScaling)
                ?? .none,
            rmsNormEpsilon: try container.decode(Float.self, forKey: .rmsNormEpsilon),
            tiedEmbeddings: try container.decode(Bool.self, forKey: .tiedEmbeddings))
        attention = try container.decodeIfPresent(AttentionKind.self, forKey: .attention) ?? .exact
        performerDraw = try container.decodeIfPresent(Int.self, forKey: .performerDraw) ?? 0
    }
}

extension LlamaConfig {
    /// The GGUF key of `attention` (JSON), written only for kinds other than exact.
    public static let attentionKey = "swiftlm.attention"
    /// The GGUF key of `performerDraw`, written only for Performer attention.
    public static let performerDrawKey = "swiftlm.performer_draw"

    /// Reads the hyperparameters from `<architecture>.*` metadata keys of a GGUF file.
    public init(gguf file: GGUFFile) throws {
        guard let architecture = file.architecture else {
            throw ModelError.missingMetadata(key: "general.architecture")
        }
        guard architecture == "llama" else {
            throw ModelError.unsupportedArchitecture(architecture)
        }

        func integer(_ key: String) throws -> Int {
            guard let value = file.metadata["\(architecture).\(key)"] else {
                throw ModelError.missingMetadata(key: "\(architecture).\(key)")
            }
            guard let number = value.int else {
                throw ModelError.invalidMetadata(
                    key: "\(architecture).\(key)", value: "\(value)", expected: "an integer")
            }
            return number
        }
        func optionalInteger(_ key: String) -> Int? { file.metadata["\(architecture).\(key)"]?.int }
        func optionalFloat(_ key: String) -> Float? {
            file.metadata["\(architecture).\(key)"]?.float
        }

        let hidden = try integer("embedding_length")
        let headCount = try integer("attention.head_count")
        let tokenCount = file.metadata["tokenizer.ggml.tokens"]?.stringArray?.count
        guard let vocabSize = optionalInteger("vocab_size") ?? tokenCount else {
            throw ModelError.missingMetadata(key: "\(architecture).vocab_size")
        }
        let headDim =
            optionalInteger("attention.key_length") ?? (headCount > 0 ? hidden / headCount : 0)
        let contextLength = try integer("context_length")

        self.init(
            vocabSize: vocabSize, hidden: hidden, intermediate: try integer("feed_forward_length"),
            layerCount: try integer("block_count"), headCount: headCount,
            kvHeadCount: optionalInteger("attention.head_count_kv") ?? headCount,
            headDim: headDim, contextLength: contextLength,
            ropeBase: optionalFloat("rope.freq_base") ?? 10000,
            ropeDims: optionalInteger("rope.dimension_count") ?? headDim,
            ropeInterleaved: true,
            ropeScaling: try Self.ropeScaling(
                gguf: file, architecture: architecture, contextLength: contextLength),
            rmsNormEpsilon: optionalFloat("attention.layer_norm_rms_epsilon") ?? 1e-5,
            tiedEmbeddings: file.tensor(named: WeightNames.output) == nil)
        if let json = file.metadata[Self.attentionKey]?.string {
            do {
                attention = try JSONDecoder().decode(AttentionKind.self, from: Data(json.utf8))
            } catch {
                throw ModelError.invalidMetadata(
                    key: Self.attentionKey, value: json, expected: "an attention kind in JSON")
            }
        }
        if let draw = file.metadata[Self.performerDrawKey] {
            guard let number = draw.int, number >= 0 else {
                throw ModelError.invalidMetadata(
                    key: Self.performerDrawKey, value: "\(draw)", expected: "an integer >= 0")
            }
            performerDraw = number
        }
        try validate()
    }
}

extension LlamaConfig {
    /// The RoPE scaling of a GGUF file's `<architecture>.rope.scaling.*` keys, read as
    /// llama.cpp's `llama_model::load_hparams` reads them: a missing type means linear, a
    /// missing or zero factor means 1 (the older key `rope.scale_linear` is the fallback), and
    /// YaRN's original context defaults to `context_length`. Keys that change the attention
    /// magnitude beyond YaRN's own temperature are refused rather than ignored.
    static func ropeScaling(
        gguf file: GGUFFile, architecture: String, contextLength: Int
    ) throws -> RoPEScaling {
        func value(_ key: String) -> GGUFValue? { file.metadata["\(architecture).\(key)"] }
        func float(_ key: String) throws -> Float? {
            guard let raw = value(key) else { return nil }
            guard let number = raw.float else {
                throw ModelError.invalidMetadata(
                    key: "\(architecture).\(key)", value: "\(raw)", expected: "a number")
            }
            return number
        }
        func integer(_ key: String) throws -> Int? {
            guard let raw = value(key) else { return nil }
            guard let number = raw.int else {
                throw ModelError.invalidMetadata(
                    key: "\(architecture).\(key)", value: "\(raw)", expected: "an integer")
            }
            return number
        }

        let typeKey = "rope.scaling.type"
        let typeName = value(typeKey)?.string ?? "linear"
        let storedFactor = try float("rope.scaling.factor") ?? float("rope.scale_linear") ?? 0
        let factor = storedFactor == 0 ? 1 : storedFactor

        // Keys that change YaRN's blend of angles or the magnitude on cos and sin beyond its
        // temperature; SwiftLM computes neither, so a file that sets them is refused.
        for (key, neutral) in [
            ("rope.scaling.attn_factor", Float(1)), ("rope.scaling.yarn_attn_factor", 1),
            ("rope.scaling.yarn_ext_factor", 1), ("rope.scaling.yarn_log_multiplier", 0),
        ] {
            if let number = try float(key), number != neutral {
                throw ModelError.unsupportedMetadata(
                    key: "\(architecture).\(key)", value: "\(number)", supported: "\(neutral)")
            }
        }

        switch typeName {
        case "none":
            return .none
        case "linear":
            // A factor of 1 leaves every angle as it is; the unscaled kernel is exact for it.
            return factor == 1 ? .none : .linear(factor: factor)
        case "yarn":
            return .yarn(
                factor: factor,
                originalContextLength: try integer("rope.scaling.original_context_length")
                    ?? contextLength,
                betaFast: try float("rope.scaling.yarn_beta_fast") ?? 32,
                betaSlow: try float("rope.scaling.yarn_beta_slow") ?? 1)
        default:
            throw ModelError.unsupportedMetadata(
                key: "\(architecture).\(typeKey)", value: "'\(typeName)'",
                supported: "'none', 'linear' and 'yarn'")
        }
    }
}
