// Token-by-token decoding.

import Testing

@testable import SwiftLMTokenizers

@Suite("Streaming decoder")
struct StreamingDecoderTests {
    @Test("a 4-byte emoji split over byte tokens comes out whole, once")
    func emojiOverByteTokens() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.sentencePiece(pieces: [("▁", -1)]))
        let ids = tokenizer.encode("🎉!", addSpecial: false)
        #expect(tokenizer.texts(ids) == ["▁", "<0xF0>", "<0x9F>", "<0x8E>", "<0x89>", "<0x21>"])

        var decoder = StreamingDecoder(tokenizer: tokenizer)
        let outputs = ids.map { decoder.append($0) }
        #expect(outputs == [" ", "", "", "", "🎉", "!"])
        #expect(decoder.flush() == "")
    }

    @Test("no output ever holds part of a character")
    func neverPartial() throws {
        let tokenizer = try Tokenizer(vocabulary: TestVocabularies.byteLevel(merges: [("a", "b")]))
        let text = "ab日本語👨‍👩‍👧éab"
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var joined = ""
        for id in tokenizer.encode(text) {
            let output = decoder.append(id)
            #expect(!output.contains("\u{FFFD}"))
            joined += output
        }
        joined += decoder.flush()
        #expect(joined == text)
    }

    @Test("bytes that never complete come out as U+FFFD on flush")
    func flushIncomplete() throws {
        let tokenizer = try Tokenizer(vocabulary: TestVocabularies.byteLevel())
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        #expect(decoder.append(0xE6) == "")
        #expect(decoder.append(0x97) == "")
        #expect(decoder.flush() == "\u{FFFD}")
        #expect(decoder.append(0x41) == "A")
    }

    @Test("a stray continuation byte is not held back")
    func strayContinuation() {
        #expect(StreamingDecoder.completePrefixLength([0x41, 0x80]) == 2)
        #expect(StreamingDecoder.completePrefixLength([0x41, 0xF0, 0x9F]) == 1)
        #expect(StreamingDecoder.completePrefixLength([0xF0, 0x9F, 0x8E, 0x89]) == 4)
        #expect(StreamingDecoder.completePrefixLength([]) == 0)
    }

    @Test("skipSpecial leaves control tokens out of the stream")
    func skipsControl() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TestVocabularies.byteLevel(extra: [("<|im_end|>", .control)]))
        var decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecial: true)
        #expect(decoder.append(0x41) == "A")
        #expect(decoder.append(256) == "")
        var rendering = StreamingDecoder(tokenizer: tokenizer)
        #expect(rendering.append(256) == "<|im_end|>")
    }
}
