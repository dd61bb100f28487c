// Our tokenizer against llama.cpp on the fixtures it produced
// (scripts/reference/make_tokenizer_fixtures.py).

import Foundation
import SwiftLMTokenizers
import Testing

/// Compares one fixture case: ids, each token's piece, and both ways of decoding.
func expectAgreement(
    _ tokenizer: Tokenizer, _ reference: ReferenceCase, context: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let label = "\(context): \(reference.label)"
    let ids = tokenizer.encode(
        reference.text, addSpecial: reference.addSpecial, parseSpecial: reference.special)
    #expect(ids == reference.ids, "\(label)", sourceLocation: sourceLocation)

    let pieces = reference.ids.map { tokenizer.piece($0) }
    #expect(pieces == reference.piecesHex.map(fromHex), "\(label)", sourceLocation: sourceLocation)

    #expect(
        tokenizer.decodeBytes(reference.ids) == reference.decoded.bytes, "\(label)",
        sourceLocation: sourceLocation)
    #expect(
        tokenizer.decodeBytes(reference.ids, skipSpecial: true)
            == reference.decodedSkipSpecial.bytes,
        "\(label) skipSpecial", sourceLocation: sourceLocation)
}

func expectFacts(
    _ tokenizer: Tokenizer, _ facts: ReferenceFacts, context: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let ids = 0..<tokenizer.vocabSize
    #expect(
        ids.filter(tokenizer.isEndOfGeneration) == facts.eogIds, "\(context)",
        sourceLocation: sourceLocation)
    #expect(
        ids.filter(tokenizer.isControl) == facts.controlIds, "\(context)",
        sourceLocation: sourceLocation)
    #expect(tokenizer.addsBOS == facts.addBos, "\(context)", sourceLocation: sourceLocation)
    #expect(tokenizer.addsEOS == facts.addEos, "\(context)", sourceLocation: sourceLocation)
}

@Suite("Agreement with llama.cpp")
struct LlamaCppAgreementTests {
    @Test("SentencePiece matches llama.cpp on the tiny vocabulary")
    func sentencePieceTiny() throws {
        let fixture = try Fixtures.load(SentencePieceFixture.self, named: "tokenizer_spm_tiny")
        let tokenizer = try Tokenizer(vocabulary: fixture.vocabulary.vocabulary())

        expectFacts(tokenizer, fixture.facts, context: "spm")
        for reference in fixture.cases {
            expectAgreement(tokenizer, reference, context: "spm")
        }
    }

    @Test(
        "byte-level BPE matches llama.cpp for every supported pre-tokenizer",
        arguments: ["default", "gpt-2", "smollm", "llama3", "qwen2"])
    func bytePairTiny(pre: String) throws {
        let fixture = try Fixtures.load(BytePairFixture.self, named: "tokenizer_bpe_tiny")
        let cases = try #require(fixture.preTokenizers[pre])
        let tokenizer = try Tokenizer(vocabulary: fixture.vocabulary.vocabulary(pre: pre))

        expectFacts(tokenizer, cases.facts, context: pre)
        for reference in cases.cases {
            expectAgreement(tokenizer, reference, context: pre)
        }
    }
}

/// Checks against the real SmolLM2 vocabulary, dumped from its GGUF to JSON by
/// scripts/reference/dump_vocab.py. Runs only when SWIFTLM_VOCAB_JSON names that dump; the
/// end-to-end tests read the vocabulary from the GGUF itself.
@Suite("Agreement with llama.cpp on SmolLM2 (needs SWIFTLM_VOCAB_JSON)")
struct SmolLM2AgreementTests {
    static let vocabularyPath = ProcessInfo.processInfo.environment["SWIFTLM_VOCAB_JSON"]

    static func tokenizer() throws -> Tokenizer {
        let data = try Data(contentsOf: URL(fileURLWithPath: try #require(vocabularyPath)))
        let metadata = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let value = { (key: String) in metadata["tokenizer.ggml.\(key)"] }
        let vocabulary = TokenizerVocabulary(
            model: value("model") as! String, pre: value("pre") as? String,
            tokens: value("tokens") as! [String],
            scores: (value("scores") as? [Double])?.map(Float.init),
            tokenTypes: value("token_type") as? [Int], merges: value("merges") as? [String],
            bosTokenID: value("bos_token_id") as? Int, eosTokenID: value("eos_token_id") as? Int,
            unknownTokenID: value("unknown_token_id") as? Int,
            paddingTokenID: value("padding_token_id") as? Int,
            addBOS: value("add_bos_token") as? Bool, addEOS: value("add_eos_token") as? Bool,
            addSpacePrefix: value("add_space_prefix") as? Bool)
        return try Tokenizer(vocabulary: vocabulary)
    }

    static func references() throws -> [ReferenceCase] {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("EndToEndTests/Fixtures/tokenizer_smollm2.json")
        return try Fixtures.decode([ReferenceCase].self, from: Data(contentsOf: url))
    }

    @Test(
        "every fixture string tokenizes and decodes as in llama.cpp",
        .enabled(if: vocabularyPath != nil))
    func fixtureStrings() throws {
        let tokenizer = try Self.tokenizer()
        for reference in try Self.references() {
            expectAgreement(tokenizer, reference, context: "smollm2")
        }
    }

    @Test(
        "end of generation is <|endoftext|>, <|im_end|> and <reponame>",
        .enabled(if: vocabularyPath != nil))
    func endOfGeneration() throws {
        let tokenizer = try Self.tokenizer()
        #expect((0..<tokenizer.vocabSize).filter(tokenizer.isEndOfGeneration) == [0, 2, 4])
        #expect(tokenizer.eotTokenID == 2 || tokenizer.eotTokenID == 0)
    }
}

/// Thousands of random strings tokenized by llama.cpp (scripts/reference/fuzz_tokenizer.py).
/// Runs only when SWIFTLM_TOKENIZER_FUZZ_DIR names that script's output; the SmolLM2 part
/// also needs SWIFTLM_VOCAB_JSON.
@Suite("Agreement with llama.cpp on random strings (needs SWIFTLM_TOKENIZER_FUZZ_DIR)")
struct RandomStringAgreementTests {
    static let directory = ProcessInfo.processInfo.environment["SWIFTLM_TOKENIZER_FUZZ_DIR"]

    static func data(_ name: String) throws -> Data {
        try Data(
            contentsOf: URL(fileURLWithPath: try #require(directory)).appendingPathComponent(name))
    }

    @Test("SentencePiece", .enabled(if: directory != nil))
    func sentencePiece() throws {
        let fixture = try Fixtures.decode(
            SentencePieceFixture.self, from: Self.data("spm_tiny.json"))
        let tokenizer = try Tokenizer(vocabulary: fixture.vocabulary.vocabulary())
        for reference in fixture.cases {
            expectAgreement(tokenizer, reference, context: "spm")
        }
    }

    @Test("byte-level BPE", .enabled(if: directory != nil))
    func bytePair() throws {
        let fixture = try Fixtures.decode(BytePairFixture.self, from: Self.data("bpe_tiny.json"))
        for (pre, cases) in fixture.preTokenizers.sorted(by: { $0.key < $1.key }) {
            let tokenizer = try Tokenizer(vocabulary: fixture.vocabulary.vocabulary(pre: pre))
            for reference in cases.cases {
                expectAgreement(tokenizer, reference, context: pre)
            }
        }
    }

    @Test(
        "SmolLM2",
        .enabled(if: directory != nil && SmolLM2AgreementTests.vocabularyPath != nil))
    func smolLM2() throws {
        let tokenizer = try SmolLM2AgreementTests.tokenizer()
        let cases = try Fixtures.decode([ReferenceCase].self, from: Self.data("smollm2.json"))
        for reference in cases {
            expectAgreement(tokenizer, reference, context: "smollm2")
        }
    }
}
