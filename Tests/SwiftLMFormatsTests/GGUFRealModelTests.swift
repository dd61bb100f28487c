import Foundation
import SwiftLMCore
import SwiftLMFormats
import Testing

/// The default model, when this machine has downloaded it. Nothing else depends on it.
private let smolLMPath =
    NSHomeDirectory() + "/.cache/swiftlm/SmolLM2-135M-Instruct.Q4_1.gguf"

@Suite(
    "GGUF real model (runs only where SmolLM2-135M-Instruct.Q4_1.gguf is cached)",
    .enabled(if: FileManager.default.fileExists(atPath: smolLMPath)))
struct GGUFRealModelTests {
    @Test("SmolLM2 135M reads with its documented header")
    func smolLM() throws {
        let file = try GGUFFile(path: smolLMPath)

        #expect(file.version == 3)
        #expect(file.architecture == "llama")
        #expect(file.metadataKeys.count == 33)
        #expect(file.tensors.count == 272)
        #expect(file.metadata["tokenizer.ggml.tokens"]?.stringArray?.count == 49152)
        #expect(file.metadata["tokenizer.ggml.merges"]?.stringArray?.count == 48900)

        let embedding = try #require(file.tensor(named: "token_embd.weight"))
        #expect(embedding.type == .q8_0)
        #expect(embedding.shape == [576, 49152])
        #expect(file.data(for: embedding).count == 576 * 49152 / 32 * 34)

        let counts = Dictionary(grouping: file.tensors, by: \.type).mapValues(\.count)
        #expect(counts[.q4_1] == 210)
        #expect(counts[.f32] == 61)
    }
}
