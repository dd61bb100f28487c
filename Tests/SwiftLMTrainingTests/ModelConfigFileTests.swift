import Foundation
import SwiftLMCore
import SwiftLMModels
import Testing

@testable import SwiftLMTraining

@Suite("Model configuration files")
struct ModelConfigFileTests {
    static func config(_ json: String) throws -> LlamaConfig {
        let file = try JSONDecoder().decode(ModelConfigFile.self, from: Data(json.utf8))
        return try file.config(tokenizerVocabSize: 257)
    }

    static let sizes = #""hidden": 64, "intermediate": 128, "layers": 2, "heads": 4"#

    @Test("rope_scaling selects each kind, YaRN's original context defaulting to the context")
    func ropeScaling() throws {
        let plain = try Self.config(#"{\#(Self.sizes), "context_length": 256}"#)
        #expect(plain.ropeScaling == .none)

        let ntk = try Self.config(
            #"{\#(Self.sizes), "context_length": 256, "#
                + #""rope_scaling": {"type": "ntk_aware", "factor": 4}}"#)
        #expect(ntk.ropeScaling == .ntkAware(factor: 4))

        let yarn = try Self.config(
            #"{\#(Self.sizes), "context_length": 256, "#
                + #""rope_scaling": {"type": "yarn", "factor": 8, "beta_fast": 16}}"#)
        #expect(yarn.ropeScaling == .yarn(factor: 8, originalContextLength: 256, betaFast: 16))

        let linear = try Self.config(
            #"{\#(Self.sizes), "context_length": 256, "#
                + #""rope_scaling": {"type": "linear", "factor": 2}}"#)
        #expect(linear.ropeScaling == .linear(factor: 2))
    }

    @Test("an unknown rope_scaling type or a bad factor is refused by name")
    func badScaling() throws {
        #expect(
            throws: TrainingError.invalidOption(
                "rope_scaling.type", "'dynamic'", "'none', 'linear', 'ntk_aware' or 'yarn'")
        ) {
            try Self.config(
                #"{\#(Self.sizes), "context_length": 256, "rope_scaling": {"type": "dynamic"}}"#)
        }
        #expect(
            throws: ModelError.invalidMetadata(
                key: "rope.scaling.factor", value: "0.0", expected: "a finite number > 0")
        ) {
            try Self.config(
                #"{\#(Self.sizes), "context_length": 256, "#
                    + #""rope_scaling": {"type": "linear", "factor": 0}}"#)
        }
    }
}
