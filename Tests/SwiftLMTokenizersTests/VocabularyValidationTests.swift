// What Tokenizer refuses to build.

import SwiftLMTokenizers
import Testing

@Suite("Vocabulary validation")
struct VocabularyValidationTests {
    func error(_ vocabulary: TokenizerVocabulary) -> TokenizerError? {
        do {
            _ = try Tokenizer(vocabulary: vocabulary)
            return nil
        } catch {
            return error
        }
    }

    @Test("an unknown tokenizer model is unsupported")
    func unknownModel() {
        let vocabulary = TokenizerVocabulary(model: "bert", tokens: ["[PAD]", "a"])
        guard case .unsupported(let message) = error(vocabulary) else {
            Issue.record("expected unsupported")
            return
        }
        #expect(message.contains("'bert'"))
    }

    @Test("special token ids outside the vocabulary are refused")
    func idOutOfRange() {
        var vocabulary = TestVocabularies.byteLevel()
        vocabulary.eosTokenID = 256
        guard case .invalidVocabulary(let message) = error(vocabulary) else {
            Issue.record("expected invalidVocabulary")
            return
        }
        #expect(message.contains("eos_token_id is 256"))
        #expect(message.contains("0..<256"))
    }

    @Test("repeated tokens, short arrays and missing merges are refused")
    func inconsistentVocabularies() {
        #expect(error(TokenizerVocabulary(model: "llama", tokens: ["a", "a"])) != nil)
        #expect(error(TokenizerVocabulary(model: "llama", tokens: ["a", "b"], scores: [0])) != nil)
        #expect(error(TokenizerVocabulary(model: "gpt2", tokens: ["a"])) != nil)
        #expect(error(TokenizerVocabulary(model: "llama", tokens: [])) != nil)
    }

    @Test("absent keys take llama.cpp's defaults for the model")
    func defaults() {
        let llama = TokenizerVocabulary(model: "llama", tokens: ["<unk>", "<s>", "</s>"])
        #expect(llama.bosTokenID == 1 && llama.eosTokenID == 2 && llama.unknownTokenID == 0)
        #expect(llama.addBOS && !llama.addEOS && llama.addSpacePrefix)

        let gpt2 = TokenizerVocabulary(model: "gpt2", pre: "smollm", tokens: ["a", "b"])
        #expect(gpt2.bosTokenID == nil && !gpt2.addBOS && !gpt2.addSpacePrefix)
        #expect(TokenizerVocabulary(model: "gpt2", pre: "llama3", tokens: ["a"]).addBOS)
    }
}
