import SwiftLM
import Testing

/// One string tokenized by llama.cpp (scripts/reference/make_tokenizer_fixtures.py).
struct TokenizerCase: Decodable {
    let text: String
    let special: Bool
    let add_special: Bool
    let ids: [Int]
}

@Suite("Tokenizer agrees with llama.cpp on the default model", .enabled(if: EndToEnd.enabled))
struct TokenizerAgreementTests {
    @Test("every reference string gives llama.cpp's token ids")
    func idsMatchLlamaCpp() throws {
        let cases = try EndToEnd.fixture("tokenizer_smollm2", as: [TokenizerCase].self)
        let tokenizer = EndToEnd.model.tokenizer
        #expect(cases.count >= 30)

        var mismatches = 0
        for reference in cases {
            let ids = tokenizer.encode(
                reference.text, addSpecial: reference.add_special, parseSpecial: reference.special)
            if ids != reference.ids { mismatches += 1 }
            #expect(ids == reference.ids, "text: \(reference.text.debugDescription)")
        }
        print(
            "tokenizer: \(cases.count - mismatches)/\(cases.count) strings identical to llama.cpp")
    }

    @Test("special tokens in text are single tokens")
    func specialTokensAreSingle() throws {
        let tokenizer = EndToEnd.model.tokenizer
        #expect(tokenizer.encode("<|im_start|>", addSpecial: false).count == 1)
        #expect(tokenizer.encode("<|im_start|>", addSpecial: false, parseSpecial: false).count > 1)
    }

    @Test("decoding the ids gives back the text")
    func decodeRoundTrips() throws {
        let cases = try EndToEnd.fixture("tokenizer_smollm2", as: [TokenizerCase].self)
        let tokenizer = EndToEnd.model.tokenizer
        for reference in cases where reference.special && !reference.add_special {
            #expect(tokenizer.decode(reference.ids) == reference.text)
        }
    }
}
