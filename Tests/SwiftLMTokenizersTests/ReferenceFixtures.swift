// Reading the llama.cpp reference fixtures written by
// scripts/reference/make_tokenizer_fixtures.py.

import Foundation
import SwiftLMTokenizers

/// One tokenization llama.cpp performed, and what it decoded the ids back to.
struct ReferenceCase: Decodable {
    /// A byte string that is UTF-8 text, or hex when it is not.
    struct Bytes: Decodable {
        let text: String?
        let hex: String?

        var bytes: [UInt8] {
            if let text {
                return Array(text.utf8)
            }
            return fromHex(hex ?? "")
        }
    }

    let text: String
    let special: Bool
    let addSpecial: Bool
    let ids: [Int]
    let piecesHex: [String]
    let decoded: Bytes
    let decodedSkipSpecial: Bytes

    var label: String {
        "\(text.debugDescription) special=\(special) addSpecial=\(addSpecial)"
    }
}

/// What llama.cpp reported about a vocabulary once loaded.
struct ReferenceFacts: Decodable {
    let eogIds: [Int]
    let controlIds: [Int]
    let addBos: Bool
    let addEos: Bool
}

/// A vocabulary in the fixtures, keyed like the GGUF metadata it was written to.
struct ReferenceVocabulary: Decodable {
    let model: String
    let pre: String?
    let tokens: [String]
    let scores: [Float]?
    let tokenTypes: [Int]
    let merges: [String]?
    let bosTokenId: Int?
    let eosTokenId: Int?
    let unknownTokenId: Int?
    let addBos: Bool?
    let addEos: Bool?
    let addSpacePrefix: Bool?

    func vocabulary(pre overridingPre: String? = nil) -> TokenizerVocabulary {
        TokenizerVocabulary(
            model: model, pre: overridingPre ?? pre, tokens: tokens, scores: scores,
            tokenTypes: tokenTypes, merges: merges, bosTokenID: bosTokenId,
            eosTokenID: eosTokenId, unknownTokenID: unknownTokenId, addBOS: addBos,
            addEOS: addEos, addSpacePrefix: addSpacePrefix)
    }
}

/// tokenizer_spm_tiny.json
struct SentencePieceFixture: Decodable {
    let vocabulary: ReferenceVocabulary
    let facts: ReferenceFacts
    let cases: [ReferenceCase]
}

/// tokenizer_bpe_tiny.json
struct BytePairFixture: Decodable {
    struct PreTokenizerCases: Decodable {
        let facts: ReferenceFacts
        let cases: [ReferenceCase]
    }

    let vocabulary: ReferenceVocabulary
    let preTokenizers: [String: PreTokenizerCases]
}

enum Fixtures {
    static func load<T: Decodable>(_ type: T.Type, named name: String) throws -> T {
        guard
            let url = Bundle.module.url(
                forResource: name, withExtension: "json", subdirectory: "Fixtures")
        else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: name])
        }
        return try decode(type, from: Data(contentsOf: url))
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: data)
    }
}

func fromHex(_ hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    return stride(from: 0, to: digits.count - 1, by: 2).map { index in
        UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16)!
    }
}
