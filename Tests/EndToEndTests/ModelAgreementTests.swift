import Foundation
import SwiftLM
import Testing

/// llama.cpp's outputs on the default model (scripts/reference/make_model_fixtures.py).
struct ModelReference: Decodable {
    struct Greedy: Decodable {
        let kind: String
        let prompt: String
        let prompt_ids: [Int]
        let continuation: [Int]
        let messages: [[String: String]]?
    }
    struct Position: Decodable {
        let top1: Int
        let top_ids: [Int]
        let top_logits: [Float]
        let sample_logits: [Float]
    }
    struct Logits: Decodable {
        let prompt: String
        let ids: [Int]
        let sample_stride: Int
        let positions: [Position]
    }
    struct Perplexity: Decodable {
        let file: String
        let context: Int
        let tokens: Int
        let chunks: Int
        let scored: Int
        let perplexity: Double
    }
    let greedy: [Greedy]
    let logits: Logits
    let perplexity: Perplexity

    static func load() throws -> ModelReference {
        try EndToEnd.fixture("model_smollm2", as: ModelReference.self)
    }
}

@Suite("Default model agrees with llama.cpp", .enabled(if: EndToEnd.enabled))
struct ModelAgreementTests {
    @Test("prompts tokenize as llama.cpp tokenized them")
    func promptsTokenizeIdentically() throws {
        let reference = try ModelReference.load()
        let tokenizer = EndToEnd.model.tokenizer
        for greedy in reference.greedy {
            #expect(tokenizer.encode(greedy.prompt) == greedy.prompt_ids)
        }
        #expect(tokenizer.encode(reference.logits.prompt) == reference.logits.ids)
    }

    @Test("chat prompts render from the file's template as jinja2 renders them")
    func chatTemplateRendersIdentically() throws {
        let reference = try ModelReference.load()
        let template = try EndToEnd.model.chatTemplate()
        for greedy in reference.greedy where greedy.kind == "chat" {
            let messages = try #require(greedy.messages).map {
                ChatMessage(role: $0["role"]!, content: $0["content"]!)
            }
            #expect(
                try template.render(messages: messages, addGenerationPrompt: true) == greedy.prompt)
        }
    }

    @Test("greedy continuations of 32 tokens are identical", arguments: 0..<7)
    func greedyContinuationsMatch(index: Int) throws {
        let reference = try ModelReference.load()
        try #require(index < reference.greedy.count)
        let greedy = reference.greedy[index]
        let model = EndToEnd.model
        let context = InferenceContext(model: model.model, contextLength: 512, threadCount: 2)
        let generator = Generator(tokenizer: model.tokenizer, context: context)

        let result = try generator.generate(prompt: greedy.prompt_ids, maxTokens: 32)
        // llama.cpp's list includes the end-of-generation token when the model produced one.
        var ours = result.tokens
        if result.stopReason == .endOfGeneration, let last = greedy.continuation.last,
            model.tokenizer.isEndOfGeneration(last)
        {
            ours.append(last)
        }
        #expect(
            ours == greedy.continuation, "\(greedy.kind) prompt: \(greedy.prompt.debugDescription)")
    }

    @Test("teacher-forced logits have llama.cpp's top-1 at every position")
    func logitsMatch() throws {
        let reference = try ModelReference.load().logits
        let model = EndToEnd.model
        let vocabSize = model.config.vocabSize
        let context = InferenceContext(model: model.model, contextLength: 256, threadCount: 2)
        let logits = try context.evaluate(reference.ids, logits: .all)

        var largest: Float = 0
        var sameTop1 = 0
        for (position, expected) in reference.positions.enumerated() {
            let row = Array(logits[(position * vocabSize)..<((position + 1) * vocabSize)])
            if argmax(row) == expected.top1 { sameTop1 += 1 }
            #expect(argmax(row) == expected.top1, "top-1 differs at position \(position)")
            for (id, value) in zip(expected.top_ids, expected.top_logits) {
                largest = max(largest, abs(row[id] - value))
            }
            for (index, value) in expected.sample_logits.enumerated() {
                largest = max(largest, abs(row[index * reference.sample_stride] - value))
            }
        }
        print(
            "logits: top-1 identical at \(sameTop1)/\(reference.positions.count) positions; "
                + "largest |difference| vs llama.cpp = \(largest)")
        // SwiftLM computes llama.cpp's logits bit for bit; what remains is the fixture's rounding
        // to 5 decimals and the binary32 spacing of logits below 32.
        #expect(largest < 1e-5)
    }

    @Test("perplexity equals llama.cpp's at the same context (relative difference below 1e-9)")
    func perplexityMatches() throws {
        let reference = try ModelReference.load().perplexity
        let model = EndToEnd.model
        let text = try EndToEnd.fixtureText(reference.file)
        let tokens = model.tokenizer.encode(text)
        #expect(tokens.count == reference.tokens)

        let context = InferenceContext(
            model: model.model, contextLength: reference.context, threadCount: 2)
        let result = try perplexity(
            of: tokens, windowLength: reference.context, context: context, bosTokenID: nil)
        let relative = abs(result.perplexity - reference.perplexity) / reference.perplexity
        print(
            "perplexity: ours \(result.perplexity), llama.cpp \(reference.perplexity), "
                + "relative difference \(relative)")
        #expect(result.scored == reference.scored)
        #expect(relative < 1e-9)
    }
}
