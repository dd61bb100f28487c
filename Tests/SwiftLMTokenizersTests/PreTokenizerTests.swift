// Word splitting of the byte-level BPE pre-tokenizers.

import Testing

@testable import SwiftLMTokenizers

@Suite("Pre-tokenizers")
struct PreTokenizerTests {
    /// The words `name`'s pre-tokenizer cuts `text` into.
    func words(_ text: String, _ name: String) throws -> [String] {
        let scalars = text.unicodeScalars.map(\.value)
        var start = 0
        return try PreTokenizer(name: name).split(scalars).map { length in
            defer { start += length }
            return String(
                String.UnicodeScalarView(
                    scalars[start..<start + length].map { Unicode.Scalar($0)! }))
        }
    }

    @Test("GPT-2 keeps a space with the word after it and leaves the last of a run")
    func gpt2Words() throws {
        #expect(try words("Hello world  foo", "gpt-2") == ["Hello", " world", " ", " foo"])
        #expect(try words("it's 42!!", "gpt-2") == ["it", "'s", " 42", "!!"])
        #expect(try words("IT'S", "gpt-2") == ["IT", "'", "S"])
        #expect(try words("a \n\n b", "gpt-2") == ["a", " \n\n", " b"])
        #expect(try words("end   ", "gpt-2") == ["end", "   "])
    }

    @Test("smollm isolates every digit before the GPT-2 rules")
    func smollmDigits() throws {
        #expect(try words("abc123 4", "smollm") == ["abc", "1", "2", "3", " ", "4"])
        // The digit cuts also bound the whitespace look-ahead: "  " before "5" stays whole.
        #expect(try words("a  5", "smollm") == ["a", "  ", "5"])
        #expect(try words("٣x", "smollm") == ["٣", "x"])
    }

    @Test("Llama 3 groups digits in threes and folds case in contractions")
    func llama3Words() throws {
        #expect(try words("12345", "llama3") == ["123", "45"])
        #expect(try words("IT'S (ok)", "llama3") == ["IT", "'S", " (", "ok", ")"])
        #expect(try words("x:\n\ny", "llama3") == ["x", ":\n\n", "y"])
        #expect(try words("a \n b", "llama3") == ["a", " \n", " b"])
    }

    @Test("Qwen 2 splits every digit")
    func qwen2Words() throws {
        #expect(try words("12345", "qwen2") == ["1", "2", "3", "4", "5"])
    }

    @Test("the default pre-tokenizer cuts punctuation runs and digit triples first")
    func defaultWords() throws {
        #expect(try words("a+=b", "default") == ["a", "+=", "b"])
        #expect(try words("1234567", "default") == ["123", "456", "7"])
        #expect(try PreTokenizer(name: nil).name == "default")
    }

    @Test("code points newer than Unicode 15.1 are unassigned, as in llama.cpp")
    func newerCodePoints() throws {
        // U+10D4A is a Garay letter (Unicode 16); llama.cpp does not know it is a letter.
        #expect(try words("a\u{10D4A}b", "gpt-2") == ["a", "\u{10D4A}", "b"])
        #expect(CodepointFlags.of(0x10D4A) == .undefined)
        #expect(CodepointFlags.of(0x41) == .letter)
        #expect(CodepointFlags.of(0xA0) == [.separator, .whitespace])
        #expect(CodepointFlags.of(0x85) == [.control, .whitespace])
    }

    @Test("an unknown pre-tokenizer name is refused with the name in the error")
    func unsupportedName() throws {
        #expect(throws: TokenizerError.self) { try PreTokenizer(name: "no-such-pre") }
        do {
            _ = try Tokenizer(vocabulary: TestVocabularies.byteLevel(pre: "no-such-pre"))
            Issue.record("expected an error")
        } catch {
            guard case .unsupported(let message) = error else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(message.contains("'no-such-pre'"))
            #expect(message.contains("smollm"))
        }
    }
}
