// Errors of the tokenizer module.

/// Why a vocabulary cannot be turned into a ``Tokenizer``.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The vocabulary asks for something SwiftLM does not implement (a tokenizer model or a
    /// pre-tokenizer); the text names it and what is supported.
    case unsupported(String)
    /// The vocabulary contradicts itself: arrays of different lengths, a token id out of
    /// range, a duplicate token. The text names the field, the bad value and the allowed range.
    case invalidVocabulary(String)

    public var description: String {
        switch self {
        case .unsupported(let what): "unsupported: \(what)"
        case .invalidVocabulary(let why): "invalid tokenizer vocabulary: \(why)"
        }
    }
}
