import Foundation
import SwiftLM

/// How each command opens its model.
enum ModelLocation {
    /// Opens `--model PATH`, or the default model with a hint when it is absent.
    static func open(_ arguments: Arguments) throws -> PretrainedModel {
        if let path = arguments.string("model") { return try PretrainedModel(path: path) }
        let path = DefaultModel.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw UsageError(
                "the default model is not at \(path); run scripts/fetch-model or pass --model PATH")
        }
        return try PretrainedModel(path: path)
    }
}
