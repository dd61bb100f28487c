import Foundation
import SwiftLM
import Testing

/// The end-to-end group: checks on the real default model against llama.cpp's references.
/// It runs when `SWIFTLM_E2E=1` (scripts/test and CI set it); the model comes from
/// `scripts/fetch-model`, or `SWIFTLM_MODEL` names another copy (`DefaultModel.path`).
enum EndToEnd {
    static let enabled = ProcessInfo.processInfo.environment["SWIFTLM_E2E"] == "1"

    /// The default model, opened once for the whole group.
    static let model: PretrainedModel = {
        do {
            return try PretrainedModel(path: DefaultModel.path)
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
