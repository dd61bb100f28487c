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
    public var rmsNormEpsilon: Float
    /// Whether the output head reuses the token embedding matrix.
    public var tiedEmbeddings: Bool

    public init(
        vocabSize: Int, hidden: Int, intermediate: Int, layerCount: Int, headCount: Int,
        kvHeadCount: Int, headDim: Int? = nil, contextLength: Int, ropeBase: Float = 10000,
        ropeDims: Int? = nil, ropeInterleaved: Bool = true, rmsNormEpsilon: Float = 1e-5,
        tiedEmbeddings: Bool = true
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
    }
}

extension LlamaConfig {
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

        self.init(
            vocabSize: vocabSize, hidden: hidden, intermediate: try integer("feed_forward_length"),
            layerCount: try integer("block_count"), headCount: headCount,
            kvHeadCount: optionalInteger("attention.head_count_kv") ?? headCount,
            headDim: headDim, contextLength: try integer("context_length"),
            ropeBase: optionalFloat("rope.freq_base") ?? 10000,
            ropeDims: optionalInteger("rope.dimension_count") ?? headDim,
            ropeInterleaved: true,
            rmsNormEpsilon: optionalFloat("attention.layer_norm_rms_epsilon") ?? 1e-5,
            tiedEmbeddings: file.tensor(named: WeightNames.output) == nil)
        try validate()
    }
}
