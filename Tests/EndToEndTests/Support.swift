import Foundation
import SwiftLM
import Testing

/// The end-to-end group: checks on the real default model against llama.cpp's references.
/// It runs when `SWIFTLM_E2E=1` (scripts/test and CI set it); the model comes from
/// `scripts/fetch-model`, or `SWIFTLM_MODEL` names another copy.
enum EndToEnd {
    static let enabled = ProcessInfo.processInfo.environment["SWIFTLM_E2E"] == "1"

    static var modelPath: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["SWIFTLM_MODEL"], !path.isEmpty { return path }
        let cache =
            environment["SWIFTLM_CACHE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
                ?? NSHomeDirectory() + "/.cache") + "/swiftlm"
        return cache + "/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    /// The default model, opened once for the whole group.
    static let model: PretrainedModel = {
        do {
            return try PretrainedModel(path: modelPath)
        } catch {
            fatalError("end-to-end tests need the default model (scripts/fetch-model): \(error)")
        }
    }()

    static func fixture<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        let url = try #require(
            Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    static func fixtureText(_ name: String) throws -> String {
        let url = try #require(
            Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
        return try String(contentsOf: url, encoding: .utf8)
    }
}
