// Turning tokens into text one token at a time, as they are generated.

/// Decodes a stream of tokens into text without ever emitting part of a character.
///
/// A token can end in the middle of a UTF-8 sequence (an emoji spread over several byte
/// tokens, or a byte-level BPE token holding half a CJK character). `append` returns only
/// complete characters and keeps the incomplete tail for the next call; `flush` returns what
/// is left, with U+FFFD for bytes that never completed. Bytes that can never form a character
/// are emitted as U+FFFD right away rather than held.
///
/// Pieces are joined as they are (llama_token_to_piece), without llama_detokenize's
/// sequence-level clean-ups, as llama.cpp's own streaming output does.
public struct StreamingDecoder: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecial: Bool
    private var pending: [UInt8] = []

    /// - Parameter skipSpecial: render control and unknown tokens as nothing.
    public init(tokenizer: Tokenizer, skipSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// Adds a token; returns the characters it completes, possibly none.
    public mutating func append(_ id: Int) -> String {
        if skipSpecial && !tokenizer.isVisibleWhenPlain(id) {
            return ""
        }
        pending.append(contentsOf: tokenizer.piece(id))

        let complete = Self.completePrefixLength(pending)
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Returns whatever is still held back, incomplete sequences as U+FFFD.
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// How many leading bytes can be decoded now: all of them, unless the last few are the
    /// start of a character whose remaining bytes have not arrived yet.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        guard !bytes.isEmpty else { return 0 }

        // A character is at most 4 bytes, so only a lead byte among the last 3 can be waiting.
        for back in 1...min(3, bytes.count) {
            let index = bytes.count - back
            let byte = bytes[index]
            if byte & 0xC0 == 0x80 {
                continue  // a continuation byte: look further back for its lead
            }

            let width: Int
            switch byte {
            case 0xC2...0xDF: width = 2
            case 0xE0...0xEF: width = 3
            case 0xF0...0xF4: width = 4
            default: width = 1  // ASCII or a byte that can never start a character
            }
            return width > back ? index : bytes.count
        }
        return bytes.count
    }
}

extension Tokenizer {
    /// Whether llama.cpp renders the token when special tokens are not asked for.
    func isVisibleWhenPlain(_ id: Int) -> Bool {
        attributes[id].isDisjoint(with: .hiddenWhenPlain)
    }
}
