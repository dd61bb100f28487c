// Per-token attributes, and how llama.cpp derives them from token types and texts.

/// llama.cpp's `llama_token_attr` bits that tokenizing and decoding look at.
struct TokenAttributes: OptionSet, Sendable {
    let rawValue: UInt8

    static let unknown = TokenAttributes(rawValue: 1 << 0)
    static let unused = TokenAttributes(rawValue: 1 << 1)
    static let normal = TokenAttributes(rawValue: 1 << 2)
    static let control = TokenAttributes(rawValue: 1 << 3)
    static let userDefined = TokenAttributes(rawValue: 1 << 4)
    static let byte = TokenAttributes(rawValue: 1 << 5)

    /// Tokens that text is split on before tokenizing (llama.cpp's `cache_special_tokens`).
    static let special: TokenAttributes = [.control, .userDefined, .unknown]
    /// Tokens that `parse_special == false` and `unparse_special == false` leave out.
    static let hiddenWhenPlain: TokenAttributes = [.control, .unknown]
}

extension TokenAttributes {
    /// The attribute for a `tokenizer.ggml.token_type` value; undefined and unknown values
    /// get none, as in llama.cpp, and such tokens decode to nothing.
    init(tokenType: Int) {
        switch TokenizerVocabulary.TokenType(rawValue: tokenType) {
        case .normal: self = .normal
        case .unknown: self = .unknown
        case .control: self = .control
        case .userDefined: self = .userDefined
        case .unused: self = .unused
        case .byte: self = .byte
        case .undefined, nil: self = []
        }
    }
}

/// The special tokens llama.cpp recognises by their text, and the end-of-generation set.
///
/// GGUF files rarely list end-of-turn or fill-in-the-middle tokens, so llama.cpp looks for
/// them by text after loading (`llama_vocab::impl::load`, "auto-detect special tokens by
/// text"), marks what it finds as control tokens, and builds the set of tokens that end
/// generation from them. These lists are llama.cpp's; a model not covered here is one
/// llama.cpp would not stop on either.
struct SpecialTokenRoles {
    /// The end-of-turn token: the vocabulary's own, or the lowest id with one of these texts.
    private(set) var endOfTurn: Int?
    /// Every token that ends generation.
    private(set) var endOfGeneration: Set<Int> = []

    static let endOfTurnTexts: Set<String> = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
        "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
        "<end_of_utterance>",
    ]
    static let endOfMessageTexts: Set<String> = ["<|eom_id|>"]
    static let fillInMiddlePrefixTexts: Set<String> = [
        "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>",
        "▁<PRE>", "<|code_prefix|>", "<|prefix|>",
    ]
    static let fillInMiddleSuffixTexts: Set<String> = [
        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
        "<|code_suffix|>", "<|suffix|>",
    ]
    static let fillInMiddleMiddleTexts: Set<String> = [
        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
        "<|code_middle|>", "<|middle|>",
    ]
    /// Fill-in-the-middle padding, repository and file-separator tokens also end generation.
    static let fillInMiddleEndingTexts: [Set<String>] = [
        ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
        ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"],
        ["<|file_sep|>"],
    ]
    static let endOfGenerationTexts: Set<String> = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
        "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>",
        "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>",
        "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[",
    ]
    /// gpt-oss tokens that llama.cpp always renders, whatever their type says.
    static let alwaysRenderedTexts: Set<String> = [
        "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>",
    ]

    /// Finds the roles and updates `attributes` the way llama.cpp does.
    ///
    /// - Parameter texts: the token texts, indexed by id.
    init(
        texts: [String], attributes: inout [TokenAttributes], eos: Int?, endOfTurn: Int?
    ) {
        // The lowest id with a matching text, marked as a control token. llama.cpp takes the
        // first in its hash map's order, which differs only for vocabularies with two
        // candidates for one role.
        func find(_ candidates: Set<String>) -> Int? {
            guard let id = texts.indices.first(where: { candidates.contains(texts[$0]) }) else {
                return nil
            }
            attributes[id].insert(.control)
            return id
        }

        self.endOfTurn = endOfTurn ?? find(Self.endOfTurnTexts)
        let endOfMessage = find(Self.endOfMessageTexts)
        _ = find(Self.fillInMiddlePrefixTexts)
        _ = find(Self.fillInMiddleSuffixTexts)
        _ = find(Self.fillInMiddleMiddleTexts)
        for candidates in Self.fillInMiddleEndingTexts {
            if let id = find(candidates) {
                endOfGeneration.insert(id)
            }
        }

        for (id, text) in texts.enumerated() {
            if Self.endOfGenerationTexts.contains(text) {
                endOfGeneration.insert(id)
                attributes[id].insert(.control)
            }
            if Self.alwaysRenderedTexts.contains(text) {
                attributes[id] = .userDefined
            }
        }
        for id in [eos, self.endOfTurn, endOfMessage].compactMap({ $0 }) {
            endOfGeneration.insert(id)
        }

        dropFalseEndings(texts: texts, attributes: &attributes)
    }

    /// llama.cpp's two exceptions: "<|end|>" does not end a gpt-oss or Solar Open turn that
    /// also has "<|return|>"/"<|call|>" or "<|calls|>"/"<|flush|>", and "</s>" is a normal
    /// token where "<|tool_response>" or "<|plamo:eos|>" ends generation.
    private mutating func dropFalseEndings(texts: [String], attributes: inout [TokenAttributes]) {
        let ending = Set(endOfGeneration.map { texts[$0] })
        let current = endOfGeneration
        let ends = { (text: String) in current.first { texts[$0] == text } }

        let hasCall = ending.contains("<|call|>") || ending.contains("<|calls|>")
        let hasToolTurns =
            hasCall && (ending.contains("<|return|>") || ending.contains("<|flush|>"))
        if hasToolTurns, let end = ends("<|end|>") {
            endOfGeneration.remove(end)
            attributes[end] = .userDefined
        }

        let hasOwnEnd = ending.contains("<|tool_response>") || ending.contains("<|plamo:eos|>")
        if hasOwnEnd, let closing = ends("</s>") {
            endOfGeneration.remove(closing)
            attributes[closing] = .normal
        }
    }
}
