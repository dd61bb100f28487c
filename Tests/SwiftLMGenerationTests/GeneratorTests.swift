import Foundation
import SwiftLM
import SwiftLMTestSupport
import Testing

@Suite("Generation on a tiny model")
struct GeneratorTests {
    @Test("a prompt that extends the previous one reuses its cache and answers the same")
    func promptPrefixIsReused() throws {
        let path = try TinyModel.write(weightType: .q8_0)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try PretrainedModel(path: path)
        let tokenizer = model.tokenizer
        let first = tokenizer.encode("Hello, world! The")
        let second = tokenizer.encode("Hello, world! The quick brown fox")

        let warm = Generator(
            tokenizer: tokenizer, context: InferenceContext(model: model.model, threadCount: 2))
        _ = try warm.generate(prompt: first, maxTokens: 4)
        let reused = try warm.generate(prompt: second, maxTokens: 8)

        let cold = Generator(
            tokenizer: tokenizer, context: InferenceContext(model: model.model, threadCount: 2))
        let fresh = try cold.generate(prompt: second, maxTokens: 8)

        #expect(reused.reusedPromptTokenCount == first.count)
        #expect(fresh.reusedPromptTokenCount == 0)
        #expect(reused.tokens == fresh.tokens)
    }

    @Test("the same prompt twice evaluates only its last token again")
    func samePromptKeepsAllButOne() throws {
        let path = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try PretrainedModel(path: path)
        let generator = Generator(
            tokenizer: model.tokenizer,
            context: InferenceContext(model: model.model, threadCount: 1))
        let prompt = model.tokenizer.encode("abcdef")

        let first = try generator.generate(prompt: prompt, maxTokens: 3)
        let second = try generator.generate(prompt: prompt, maxTokens: 3)

        #expect(second.reusedPromptTokenCount == prompt.count - 1)
        #expect(first.tokens == second.tokens)
    }

    @Test("max tokens and stop strings end generation with their reasons")
    func stopReasons() throws {
        let path = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try PretrainedModel(path: path)
        let generator = Generator(
            tokenizer: model.tokenizer,
            context: InferenceContext(model: model.model, threadCount: 1))
        let prompt = model.tokenizer.encode("Hello")

        let long = try generator.generate(prompt: prompt, maxTokens: 6)
        #expect(long.tokens.count == 6)
        #expect(long.stopReason == .maxTokens)

        let stop = String(long.text.prefix(2))
        let cut = try generator.generate(prompt: prompt, maxTokens: 6, stopStrings: [stop])
        #expect(cut.stopReason == .stopString)
        #expect(!cut.text.contains(stop))
    }
}
