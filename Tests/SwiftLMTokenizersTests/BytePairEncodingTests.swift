// Byte-level BPE on hand-made vocabularies.

import SwiftLMTokenizers
import Testing

@Suite("Byte-level BPE")
struct BytePairEncodingTests {
    @Test("merges apply lowest rank first")
    func mergesByRank() throws {
        let bcFirst = try Tokenizer(
            vocabulary: TestVocabularies.byteLevel(merges: [("b", "c"), ("a", "b")]))
        #expect(bcFirst.texts(bcFirst.encode("abc")) == ["a", "bc"])

        let abFirst = try Tokenizer(
            vocabulary: TestVocabularies.byteLevel(merges: [("a", "b"), ("b", "c")]))
        #expect(abFirst.texts(abFirst.encode("abc")) == ["ab", "c"])
    }

    @Test("merged symbols keep merging as later ranks allow")
    func mergesChain() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.byteLevel(merges: [("b", "c"), ("a", "bc"), ("d", "d")]))
        #expect(tokenizer.texts(tokenizer.encode("abcdd")) == ["abc", "dd"])
    }

    @Test("among pairs of equal rank the leftmost merges first")
    func leftmostFirst() throws {
        let tokenizer = try Tokenizer(vocabulary: TestVocabularies.byteLevel(merges: [("a", "a")]))
        #expect(tokenizer.texts(tokenizer.encode("aaa")) == ["aa", "a"])
        #expect(tokenizer.texts(tokenizer.encode("aaaa")) == ["aa", "aa"])
    }

    @Test("merges never cross pre-tokenizer words")
    func mergesStayInWords() throws {
        let space = TestVocabularies.spelled(" ")
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.byteLevel(merges: [("a", " "), (" ", "b")]))
        // "a b" splits into "a" and " b"; "a " is never a candidate.
        #expect(tokenizer.texts(tokenizer.encode("a b")) == ["a", "\(space)b"])
    }

    @Test("every byte maps to a printable character and back")
    func byteRoundTrip() throws {
        let tokenizer = try Tokenizer(vocabulary: TestVocabularies.byteLevel())
        for byte in 0..<256 {
            #expect(tokenizer.piece(byte) == [UInt8(byte)], "byte \(byte)")
            let character = try #require(tokenizer.tokenText(byte).unicodeScalars.first)
            #expect(!character.properties.isWhitespace, "byte \(byte)")
        }
        #expect(tokenizer.tokenText(0x20) == "Ġ")
        #expect(tokenizer.tokenText(0x0A) == "Ċ")
        #expect(Set((0..<256).map(tokenizer.tokenText)).count == 256)
    }

    @Test("decoding undoes encoding for varied text")
    func roundTrip() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.byteLevel(
                merges: [("t", "h"), ("th", "e"), (" ", "the"), (" ", " "), ("1", "2")]))
        let texts = [
            "", " ", "the theme", "  indented\n\tcode()", "1234567890", "naïve café",
            "e\u{301}", "日本語テキスト", "👨‍👩‍👧 family", "مرحبا",
            "\r\n\r\n", "a\u{00A0}b", "it's they're", "<|im_start|> not special here",
        ]
        for text in texts {
            let ids = tokenizer.encode(text)
            #expect(tokenizer.decode(ids) == text, "\(text.debugDescription)")
            #expect(ids.flatMap(tokenizer.piece) == Array(text.utf8), "\(text.debugDescription)")
        }
    }

    @Test("special tokens written in the text become one token")
    func specialTokensSplitOut() throws {
        let vocabulary = TestVocabularies.byteLevel(
            merges: [("h", "i")],
            extra: [("<|im_start|>", .control), ("<|im_end|>", .control), ("<tool>", .userDefined)])
        let tokenizer = try Tokenizer(vocabulary: vocabulary)
        let start = 257
        let end = 258
        let tool = 259

        #expect(tokenizer.encode("<|im_start|>hi<|im_end|>") == [start, 256, end])
        #expect(tokenizer.encode("<|im_start|><|im_start|>") == [start, start])
        #expect(tokenizer.decode([start, 256, end]) == "<|im_start|>hi<|im_end|>")
        #expect(tokenizer.decode([start, 256, end], skipSpecial: true) == "hi")

        // Without parseSpecial, control tokens are plain text; user-defined ones still split.
        let plain = tokenizer.encode("<|im_start|>hi<tool>", parseSpecial: false)
        #expect(!plain.contains(start))
        #expect(plain.last == tool)
        #expect(tokenizer.decode(plain) == "<|im_start|>hi<tool>")
    }

    @Test("a longer special token wins over a shorter one inside it")
    func longestSpecialFirst() throws {
        let vocabulary = TestVocabularies.byteLevel(
            extra: [("<a>", .control), ("<a><b>", .control)])
        let tokenizer = try Tokenizer(vocabulary: vocabulary)
        #expect(tokenizer.encode("<a><b><a>") == [257, 256])
    }

    @Test("end-of-turn tokens are found by their text and end generation")
    func endOfGeneration() throws {
        let vocabulary = TestVocabularies.byteLevel(
            extra: [
                ("<|endoftext|>", .control), ("<|im_end|>", .normal), ("<|im_start|>", .control),
            ],
            eos: 256)
        let tokenizer = try Tokenizer(vocabulary: vocabulary)

        #expect(tokenizer.isEndOfGeneration(256))
        #expect(tokenizer.isEndOfGeneration(257))
        #expect(!tokenizer.isEndOfGeneration(258))
        #expect(!tokenizer.isEndOfGeneration(65))
        // llama.cpp promotes a normal "<|im_end|>" to a control token.
        #expect(tokenizer.isControl(257))
        #expect(tokenizer.eotTokenID == 256)
    }

    @Test("addSpecial adds BOS and EOS only when the vocabulary asks")
    func addSpecial() throws {
        var vocabulary = TestVocabularies.byteLevel(extra: [("<s>", .control), ("</s>", .control)])
        vocabulary.bosTokenID = 256
        vocabulary.eosTokenID = 257
        #expect(try Tokenizer(vocabulary: vocabulary).encode("a") == [97])

        vocabulary.addBOS = true
        vocabulary.addEOS = true
        let tokenizer = try Tokenizer(vocabulary: vocabulary)
        #expect(tokenizer.encode("a") == [256, 97, 257])
        #expect(tokenizer.encode("a", addSpecial: false) == [97])
        #expect(tokenizer.encode("") == [256, 257])
        #expect(tokenizer.decode([256, 97, 257], skipSpecial: true) == "a")
    }
}
