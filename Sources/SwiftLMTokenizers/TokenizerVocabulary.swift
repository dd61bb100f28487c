// The tokenizer's data, as a GGUF file's `tokenizer.ggml.*` metadata holds it.

/// A vocabulary: plain data that the model loader fills from GGUF metadata, and that
/// ``Tokenizer`` validates and indexes.
///
/// Field for field this is the `tokenizer.ggml.*` metadata llama.cpp reads in
/// `llama_vocab::impl::load` (src/llama-vocab.cpp). Where a key may be absent from the file, the
/// initializer takes `nil` for "absent" and fills in llama.cpp's default for the model, so a
/// loader can pass what it found without knowing those defaults.
public struct TokenizerVocabulary: Sendable {
    /// llama.cpp's token types (`tokenizer.ggml.token_type`, `llama_token_type`).
    public enum TokenType: Int, Sendable {
        case undefined = 0
        case normal = 1
        case unknown = 2
        case control = 3
        case userDefined = 4
        case unused = 5
        case byte = 6
    }

    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    public var model: String
    /// `tokenizer.ggml.pre`: the byte-level BPE pre-tokenizer, e.g. "smollm", "llama3";
    /// `nil` when absent, which llama.cpp reads as "default". Ignored for "llama".
    public var pre: String?
    /// `tokenizer.ggml.tokens`: the text of each token, indexed by id.
    public var tokens: [String]
    /// `tokenizer.ggml.scores`: SentencePiece merge scores, higher merges first; `nil` reads
    /// as all zero.
    public var scores: [Float]?
    /// `tokenizer.ggml.token_type`: a ``TokenType`` raw value per token; `nil` reads as all
    /// normal.
    public var tokenTypes: [Int]?
    /// `tokenizer.ggml.merges`: "left right" per merge; a merge's rank is its index.
    public var merges: [String]?
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    /// `tokenizer.ggml.eot_token_id`; when `nil`, ``Tokenizer`` looks for an end-of-turn token
    /// by its text ("<|im_end|>", "<|eot_id|>" ...) as llama.cpp does.
    public var eotTokenID: Int?
    public var unknownTokenID: Int?
    public var paddingTokenID: Int?
    /// `tokenizer.ggml.add_bos_token`: whether `encode(addSpecial: true)` starts with BOS.
    public var addBOS: Bool
    /// `tokenizer.ggml.add_eos_token`: whether `encode(addSpecial: true)` ends with EOS.
    public var addEOS: Bool
    /// `tokenizer.ggml.add_space_prefix`: SentencePiece's leading "▁"; when decoding, the
    /// first piece's leading space is dropped.
    public var addSpacePrefix: Bool

    /// Creates a vocabulary, filling absent keys with llama.cpp's defaults.
    ///
    /// - Parameters:
    ///   - bosTokenID, eosTokenID, unknownTokenID: `nil` when the key is absent: "llama" then
    ///     uses 1, 2 and 0, "gpt2" uses 11 for BOS and EOS, as llama.cpp does. A default that
    ///     is not a valid id of this vocabulary is dropped.
    ///   - addBOS: `nil` when absent: true for "llama" and for the Llama 3 family of
    ///     pre-tokenizers, false otherwise.
    ///   - addEOS: `nil` when absent: false.
    ///   - addSpacePrefix: `nil` when absent: true for "llama", false otherwise.
    public init(
        model: String,
        pre: String? = nil,
        tokens: [String],
        scores: [Float]? = nil,
        tokenTypes: [Int]? = nil,
        merges: [String]? = nil,
        bosTokenID: Int? = nil,
        eosTokenID: Int? = nil,
        eotTokenID: Int? = nil,
        unknownTokenID: Int? = nil,
        paddingTokenID: Int? = nil,
        addBOS: Bool? = nil,
        addEOS: Bool? = nil,
        addSpacePrefix: Bool? = nil
    ) {
        self.model = model
        self.pre = pre
        self.tokens = tokens
        self.scores = scores
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.eotTokenID = eotTokenID
        self.paddingTokenID = paddingTokenID

        let defaults = Self.defaults(model: model, pre: pre)
        let inRange = { (id: Int?) in id.flatMap { tokens.indices.contains($0) ? $0 : nil } }
        self.bosTokenID = bosTokenID ?? inRange(defaults.bos)
        self.eosTokenID = eosTokenID ?? inRange(defaults.eos)
        self.unknownTokenID = unknownTokenID ?? inRange(defaults.unknown)
        self.addBOS = addBOS ?? defaults.addBOS
        self.addEOS = addEOS ?? false
        self.addSpacePrefix = addSpacePrefix ?? (model == "llama")
    }

    /// llama.cpp's per-model defaults for keys a GGUF may leave out.
    private static func defaults(model: String, pre: String?) -> (
        bos: Int?, eos: Int?, unknown: Int?, addBOS: Bool
    ) {
        switch model {
        case "llama":
            return (1, 2, 0, true)
        case "gpt2":
            let addBOS = (try? PreTokenizer(name: pre))?.addsBOSByDefault ?? false
            return (11, 11, nil, addBOS)
        default:
            return (nil, nil, nil, false)
        }
    }
}
