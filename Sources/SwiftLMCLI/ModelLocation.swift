import Foundation
import SwiftLM

/// Where the default model lives, and how each command opens its model.
enum ModelLocation {
    static let defaultFileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `$SWIFTLM_MODEL`, else the cache folder that `scripts/fetch-model` fills.
    static var defaultPath: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["SWIFTLM_MODEL"], !path.isEmpty { return path }
        return cacheDirectory + "/" + defaultFileName
    }

    /// The same folder as scripts/fetch-model's: `$SWIFTLM_CACHE`, else
    /// `$XDG_CACHE_HOME/swiftlm`, else `$HOME/.cache/swiftlm`.
    static var cacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        // $HOME first, as the shell scripts read it; NSHomeDirectory ignores it on Linux.
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        if let cache = environment["SWIFTLM_CACHE"], !cache.isEmpty { return cache }
        let base =
            environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? home + "/.cache"
        return base + "/swiftlm"
    }

    /// Opens `--model PATH`, or the default model with a hint when it is absent.
    static func open(_ arguments: Arguments) throws -> PretrainedModel {
        if let path = arguments.string("model") { return try PretrainedModel(path: path) }
        let path = defaultPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw UsageError(
                "the default model is not at \(path); run scripts/fetch-model or pass --model PATH")
        }
        return try PretrainedModel(path: path)
    }
}
