extension TokenizerVocabulary {
    /// A byte-level vocabulary with no merges: the 256 bytes (in GPT-2's printable byte
    /// alphabet) and an end-of-text token, so any UTF-8 text is one token per byte. Small
    /// models trained from scratch use it: a 257-entry embedding instead of tens of thousands.
    public static func byteLevel() -> TokenizerVocabulary {
        let bytes = ByteLevelAlphabet.characterForByte.map { String(UnicodeScalar($0)!) }
        let endOfText = "<|endoftext|>"
        return TokenizerVocabulary(
            model: "gpt2", pre: "default", tokens: bytes + [endOfText],
            tokenTypes: Array(repeating: TokenType.normal.rawValue, count: 256)
                + [TokenType.control.rawValue],
            merges: [], bosTokenID: 256, eosTokenID: 256, addBOS: false, addEOS: false)
    }
}
