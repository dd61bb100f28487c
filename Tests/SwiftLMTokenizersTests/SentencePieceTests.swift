// SentencePiece on hand-made vocabularies.

import SwiftLMTokenizers
import Testing

@Suite("SentencePiece")
struct SentencePieceTests {
    static let pieces: [(String, Float)] = [
        ("▁", -1), ("a", -2), ("b", -2), ("c", -2), ("h", -2), ("i", -2),
        ("ab", -3), ("bc", -4), ("▁h", -5), ("▁hi", -6), ("abc", -7),
    ]

    @Test("spaces become ▁ and the text gets a leading ▁")
    func spacePrefix() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.sentencePiece(pieces: Self.pieces))
        #expect(tokenizer.texts(tokenizer.encode("hi hi", addSpecial: false)) == ["▁hi", "▁hi"])
        #expect(tokenizer.texts(tokenizer.encode("hi")) == ["<s>", "▁hi"])
    }

    @Test("the pair whose merge scores highest merges first")
    func mergesByScore() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.sentencePiece(pieces: Self.pieces))
        // "ab" (-3) beats "bc" (-4), then "abc" joins "ab" and "c".
        #expect(tokenizer.texts(tokenizer.encode("abc", addSpecial: false)) == ["▁", "abc"])

        var favoured = Self.pieces
        favoured[7] = ("bc", -2.5)
        favoured.removeLast()
        let other = try Tokenizer(vocabulary: TestVocabularies.sentencePiece(pieces: favoured))
        #expect(other.texts(other.encode("abc", addSpecial: false)) == ["▁", "a", "bc"])
    }

    @Test("characters without a token fall back to byte tokens")
    func byteFallback() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.sentencePiece(pieces: Self.pieces))
        let ids = tokenizer.encode("é", addSpecial: false)
        #expect(tokenizer.texts(ids) == ["▁", "<0xC3>", "<0xA9>"])
        #expect(tokenizer.decode(ids) == "é")
    }

    @Test("without byte tokens an unknown character becomes <unk>")
    func unknownToken() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.sentencePiece(pieces: Self.pieces, byteFallback: false))
        let ids = tokenizer.encode("aéb", addSpecial: false)
        #expect(tokenizer.texts(ids) == ["▁", "a", "<unk>", "b"])
    }

    @Test("decoding drops the leading space that encoding added")
    func decodeDropsPrefix() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.sentencePiece(pieces: Self.pieces))
        let ids = tokenizer.encode("hi abc", addSpecial: false)
        #expect(tokenizer.decode(ids) == "hi abc")
        #expect(tokenizer.decode(tokenizer.encode("hi abc"), skipSpecial: true) == " hi abc")
        #expect(tokenizer.decode(tokenizer.encode("hi abc")) == "<s> hi abc")
    }

    @Test("text after a special token gets its own ▁")
    func prefixAfterSpecial() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.sentencePiece(
                pieces: Self.pieces, extra: [("<|user|>", .userDefined)]))
        let ids = tokenizer.encode("<|user|>hi", addSpecial: false)
        #expect(tokenizer.texts(ids) == ["<|user|>", "▁hi"])
    }
}
