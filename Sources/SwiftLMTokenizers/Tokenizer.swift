// Text <-> token ids, agreeing token for token with llama.cpp.
//
// The pipeline is llama_vocab::impl::tokenize's (src/llama-vocab.cpp): split the text on
// special tokens, then tokenize each plain fragment with the vocabulary's algorithm, with BOS
// and EOS around the result as the vocabulary asks. Decoding is llama_detokenize's.

/// A tokenizer for one vocabulary: byte-level BPE ("gpt2") or SentencePiece ("llama").
///
/// Immutable once made, and safe to share between tasks.
///
/// Known limits, each written where it lives: other tokenizer models (BERT, T5, RWKV ...)
/// and pre-tokenizers outside ``PreTokenizer``'s list throw `unsupported`; the whitespace
/// stripping llama.cpp applies beside special tokens of a few models chosen by name (Phi-3)
/// is not done; where a vocabulary has two candidate texts for one role (end of turn,
/// fill-in-the-middle) or two special tokens of equal length overlap, we take the lower id
/// where llama.cpp's choice depends on hash or sort order.
public final class Tokenizer: Sendable {
    enum Algorithm: Sendable {
        case bytePairEncoding(BytePairEncoder)
        case sentencePiece(SentencePieceEncoder)
    }

    /// The number of tokens; valid ids are `0..<vocabSize`.
    public let vocabSize: Int
    public let bosTokenID: Int?
    public let eosTokenID: Int?
    /// The end-of-turn token: the vocabulary's, or one found by its text as llama.cpp does.
    public let eotTokenID: Int?
    public let unknownTokenID: Int?
    public let paddingTokenID: Int?
    /// Whether `encode(addSpecial: true)` starts with BOS.
    public let addsBOS: Bool
    /// Whether `encode(addSpecial: true)` ends with EOS.
    public let addsEOS: Bool

    let algorithm: Algorithm
    let addsSpacePrefix: Bool
    /// llama.cpp's `clean_spaces`: tidy " ," and " 's" when decoding.
    let cleansSpaces: Bool
    /// Token texts by id, as bytes.
    let texts: ByteStringTable
    let attributes: [TokenAttributes]
    /// Control, user-defined and unknown tokens, longest text first: the order llama.cpp
    /// splits text on them.
    let specialTokens: [Int]
    let endOfGeneration: Set<Int>
    /// What each token decodes to, rendered once up front as llama.cpp's piece cache is.
    let pieces: ByteStringPieces

    /// Validates and indexes a vocabulary.
    ///
    /// - Throws: ``TokenizerError/unsupported(_:)`` for a tokenizer model other than "gpt2"
    ///   and "llama", or a pre-tokenizer we do not implement;
    ///   ``TokenizerError/invalidVocabulary(_:)`` for arrays shorter than the token list,
    ///   special token ids outside it, duplicate tokens, or byte-level BPE without merges.
    public init(vocabulary: TokenizerVocabulary) throws(TokenizerError) {
        let tokens = vocabulary.tokens
        try Self.validate(vocabulary)

        // llama.cpp renames empty tokens "[EMPTY_<id>]" so every text is a key.
        let spelled = tokens.enumerated().map { $1.isEmpty ? "[EMPTY_\($0)]" : $1 }
        let texts = try Self.indexTexts(spelled)
        var attributes =
            vocabulary.tokenTypes.map { types in
                tokens.indices.map { TokenAttributes(tokenType: types[$0]) }
            } ?? Array(repeating: .normal, count: tokens.count)

        switch vocabulary.model {
        case "gpt2":
            guard let merges = vocabulary.merges else {
                throw .invalidVocabulary(
                    "byte-level BPE vocabulary has no merges (tokenizer.ggml.merges)")
            }
            let preTokenizer = try PreTokenizer(name: vocabulary.pre)
            algorithm = .bytePairEncoding(
                BytePairEncoder(tokens: texts, merges: merges, preTokenizer: preTokenizer))
            cleansSpaces = preTokenizer.cleansSpaces
        case "llama":
            let scores = vocabulary.scores ?? Array(repeating: 0, count: tokens.count)
            algorithm = .sentencePiece(
                SentencePieceEncoder(
                    tokens: texts, scores: scores, unknownTokenID: vocabulary.unknownTokenID))
            cleansSpaces = false
        default:
            throw .unsupported(
                "tokenizer model '\(vocabulary.model)' (tokenizer.ggml.model); supported: "
                    + "gpt2 (byte-level BPE), llama (SentencePiece)")
        }

        let roles = SpecialTokenRoles(
            texts: spelled, attributes: &attributes, eos: vocabulary.eosTokenID,
            endOfTurn: vocabulary.eotTokenID)

        self.vocabSize = tokens.count
        self.bosTokenID = vocabulary.bosTokenID
        self.eosTokenID = vocabulary.eosTokenID
        self.eotTokenID = roles.endOfTurn
        self.unknownTokenID = vocabulary.unknownTokenID
        self.paddingTokenID = vocabulary.paddingTokenID
        self.addsBOS = vocabulary.addBOS && vocabulary.bosTokenID != nil
        self.addsEOS = vocabulary.addEOS && vocabulary.eosTokenID != nil
        self.addsSpacePrefix = vocabulary.addSpacePrefix
        self.texts = texts
        self.attributes = attributes
        self.endOfGeneration = roles.endOfGeneration
        self.specialTokens = tokens.indices
            .filter { !attributes[$0].isDisjoint(with: .special) }
            .sorted {
                texts[$0].count != texts[$1].count ? texts[$0].count > texts[$1].count : $0 < $1
            }
        self.pieces = ByteStringPieces(
            texts: texts, attributes: attributes, algorithm: algorithm)
    }

    private static func validate(_ vocabulary: TokenizerVocabulary) throws(TokenizerError) {
        let count = vocabulary.tokens.count
        guard count > 0 else {
            throw .invalidVocabulary("tokenizer.ggml.tokens is empty")
        }

        // Like llama.cpp, longer arrays are accepted and their tail ignored.
        for (name, length) in [
            ("tokenizer.ggml.scores", vocabulary.scores?.count),
            ("tokenizer.ggml.token_type", vocabulary.tokenTypes?.count),
        ] {
            if let length, length < count {
                throw .invalidVocabulary("\(name) has \(length) entries for \(count) tokens")
            }
        }

        for (name, id) in [
            ("bos_token_id", vocabulary.bosTokenID), ("eos_token_id", vocabulary.eosTokenID),
            ("eot_token_id", vocabulary.eotTokenID),
            ("unknown_token_id", vocabulary.unknownTokenID),
            ("padding_token_id", vocabulary.paddingTokenID),
        ] {
            if let id, !(0..<count).contains(id) {
                throw .invalidVocabulary(
                    "tokenizer.ggml.\(name) is \(id), outside the vocabulary 0..<\(count)")
            }
        }
    }

    /// Numbers the token texts by id; llama.cpp refuses a vocabulary with a repeated text.
    private static func indexTexts(_ tokens: [String]) throws(TokenizerError) -> ByteStringTable {
        var table = ByteStringTable(minimumCapacity: tokens.count)
        for (id, token) in tokens.enumerated() {
            let (index, inserted) = table.insert(Array(token.utf8)[...])
            guard inserted else {
                throw .invalidVocabulary(
                    "token \(id) repeats the text of token \(index): \(token.debugDescription)")
            }
        }
        return table
    }

    // MARK: - Encoding

    /// The token ids of `text`.
    ///
    /// - Parameters:
    ///   - addSpecial: add BOS and EOS as the vocabulary asks (llama_tokenize's
    ///     `add_special`).
    ///   - parseSpecial: control and unknown tokens written in the text become single
    ///     tokens (llama_tokenize's `parse_special`). User-defined tokens always do.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = true)
        -> [Int]
    {
        let bytes = Array(text.utf8)
        var output: [Int] = []
        output.reserveCapacity(bytes.count / 3 + 2)

        if addSpecial && addsBOS, let bosTokenID {
            output.append(bosTokenID)
        }

        // SentencePiece puts "▁" before the first fragment and after every special token.
        var followsSpecial = true
        for fragment in fragments(of: bytes, parseSpecial: parseSpecial) {
            switch (fragment, algorithm) {
            case (.token(let id), _):
                output.append(id)
                followsSpecial = true
            case (.text(let range), .bytePairEncoding(let encoder)):
                encoder.encode(bytes[range], into: &output)
            case (.text(let range), .sentencePiece(let encoder)):
                encoder.encode(
                    bytes[range], spacePrefix: addsSpacePrefix && followsSpecial, into: &output)
                followsSpecial = false
            }
        }

        if addSpecial && addsEOS, let eosTokenID {
            output.append(eosTokenID)
        }
        return output
    }

    // MARK: - Token facts

    /// Whether generating `id` ends generation: EOS, end-of-turn, and the other tokens
    /// llama.cpp treats so ("<|im_end|>", "<|endoftext|>" ...; llama_vocab_is_eog).
    public func isEndOfGeneration(_ id: Int) -> Bool {
        endOfGeneration.contains(id)
    }

    /// Whether `id` is a control token (llama_vocab_is_control), including those llama.cpp
    /// promotes to control because of their text.
    public func isControl(_ id: Int) -> Bool {
        attributes.indices.contains(id) && attributes[id].contains(.control)
    }

    /// The token's text as stored in the vocabulary (GPT-2 characters, "▁" for spaces).
    public func tokenText(_ id: Int) -> String {
        precondition(attributes.indices.contains(id), "token id \(id) outside 0..<\(vocabSize)")
        return String(decoding: texts[id], as: UTF8.self)
    }
}
