import Foundation

/// Where the default model lives: the one place that the CLI and the tests ask, and the same
/// folder that `scripts/fetch-model` fills.
public enum DefaultModel {
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `$SWIFTLM_MODEL`, else `fileName` in `cacheDirectory`.
    public static var path: String {
        if let path = environment("SWIFTLM_MODEL") { return path }
        return cacheDirectory + "/" + fileName
    }

    /// `$SWIFTLM_CACHE`, else `$XDG_CACHE_HOME/swiftlm`, else `$HOME/.cache/swiftlm`.
    public static var cacheDirectory: String {
        if let cache = environment("SWIFTLM_CACHE") { return cache }
        // $HOME first, as the shell scripts read it; NSHomeDirectory ignores it on Linux.
        let home = environment("HOME") ?? NSHomeDirectory()
        return (environment("XDG_CACHE_HOME") ?? home + "/.cache") + "/swiftlm"
    }

    /// A variable's value, nil when it is unset or empty.
    private static func environment(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            return nil
        }
        return value
    }
}
