// Small vocabularies built by hand for the unit tests.

import SwiftLMTokenizers

enum TestVocabularies {
    /// GPT-2's spelling of each byte, written out independently of the library's table:
    /// printable Latin-1 bytes are themselves, the rest take U+0100 upwards in byte order.
    static let gpt2Characters: [String] = {
        var next = 0x100
        return (0..<256).map { byte in
            let printable =
                (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte)
                || (0xAE...0xFF).contains(byte)
            defer { if !printable { next += 1 } }
            return String(Unicode.Scalar(printable ? byte : next)!)
        }
    }()

    /// GPT-2 spelling of a text: the character of each of its UTF-8 bytes.
    static func spelled(_ text: String) -> String {
        text.utf8.map { gpt2Characters[Int($0)] }.joined()
    }

    /// A byte-level BPE vocabulary: the 256 byte tokens (id = byte), then one token per merge
    /// result, then `extra` tokens with their types.
    ///
    /// - Parameter merges: plain-text pairs such as ("a", "b"); spelled in GPT-2 characters here.
    static func byteLevel(
        merges: [(String, String)] = [], extra: [(String, TokenizerVocabulary.TokenType)] = [],
        pre: String? = "smollm", eos: Int? = nil
    ) -> TokenizerVocabulary {
        var tokens = gpt2Characters
        var types = [Int](repeating: 1, count: 256)
        for (left, right) in merges where !tokens.contains(spelled(left + right)) {
            tokens.append(spelled(left + right))
            types.append(1)
        }
        for (text, type) in extra {
            tokens.append(text)
            types.append(type.rawValue)
        }
        return TokenizerVocabulary(
            model: "gpt2", pre: pre, tokens: tokens, tokenTypes: types,
            merges: merges.map { "\(spelled($0.0)) \(spelled($0.1))" }, bosTokenID: eos,
            eosTokenID: eos, addBOS: false)
    }

    /// A SentencePiece vocabulary: <unk>, <s>, </s>, optionally the 256 byte tokens, then
    /// `pieces` ("▁" for a space) with their scores, then `extra` tokens.
    static func sentencePiece(
        pieces: [(String, Float)], byteFallback: Bool = true,
        extra: [(String, TokenizerVocabulary.TokenType)] = []
    ) -> TokenizerVocabulary {
        var tokens = ["<unk>", "<s>", "</s>"]
        var types = [2, 3, 3]
        if byteFallback {
            let hex = Array("0123456789ABCDEF")
            for byte in 0..<256 {
                tokens.append("<0x\(hex[byte >> 4])\(hex[byte & 15])>")
                types.append(6)
            }
        }
        var scores = [Float](repeating: 0, count: tokens.count)
        for (text, score) in pieces {
            tokens.append(text)
            types.append(1)
            scores.append(score)
        }
        for (text, type) in extra {
            tokens.append(text)
            types.append(type.rawValue)
            scores.append(0)
        }
        return TokenizerVocabulary(
            model: "llama", tokens: tokens, scores: scores, tokenTypes: types)
    }
}

extension Tokenizer {
    /// The vocabulary texts of `ids`, for readable expectations.
    func texts(_ ids: [Int]) -> [String] {
        ids.map(tokenText)
    }
}
