import Foundation
import SwiftLMModels

/// The perplexity of a token sequence, scored as llama.cpp's `perplexity` tool scores it.
public struct PerplexityResult: Sendable, Codable {
    public var tokens: Int
    public var windows: Int
    /// Tokens whose log-likelihood was counted.
    public var scored: Int
    public var perplexity: Double
}

public enum PerplexityError: Error, CustomStringConvertible {
    case tooFewTokens(have: Int, need: Int, windowLength: Int)

    public var description: String {
        switch self {
        case .tooFewTokens(let have, let need, let windowLength):
            return "the text has \(have) tokens; perplexity with a context of \(windowLength) "
                + "needs at least \(need)"
        }
    }
}

/// Scores `tokens` in consecutive windows of `windowLength` tokens, each from an empty cache.
///
/// As in llama.cpp's perplexity tool, the first token of a window is replaced by BOS when the
/// vocabulary adds one, and only the second half of each window is scored, so that every
/// scored token sees at least half a window of context. Trailing tokens that do not fill a
/// window are ignored.
///
/// - Parameter progress: called after each window with (windows done, windows in all).
public func perplexity(
    of tokens: [Int], windowLength: Int, context: InferenceContext, bosTokenID: Int?,
    progress: (Int, Int) -> Void = { _, _ in }
) throws -> PerplexityResult {
    guard tokens.count >= 2 * windowLength else {
        throw PerplexityError.tooFewTokens(
            have: tokens.count, need: 2 * windowLength, windowLength: windowLength)
    }
    let vocabSize = context.model.config.vocabSize
    let windows = tokens.count / windowLength
    let first = windowLength / 2
    var negativeLogLikelihood = 0.0
    var scored = 0

    for window in 0..<windows {
        var input = Array(tokens[(window * windowLength)..<((window + 1) * windowLength)])
        if let bosTokenID { input[0] = bosTokenID }
        context.reset()
        let logits = try context.evaluate(input, logits: .all)

        for position in first..<(windowLength - 1) {
            let row = logits[(position * vocabSize)..<((position + 1) * vocabSize)]
            negativeLogLikelihood -= logSoftmax(row, at: input[position + 1])
            scored += 1
        }
        progress(window + 1, windows)
    }
    return PerplexityResult(
        tokens: tokens.count, windows: windows, scored: scored,
        perplexity: exp(negativeLogLikelihood / Double(scored)))
}

/// `log softmax(row)[token]`, in Double.
func logSoftmax(_ row: ArraySlice<Float>, at token: Int) -> Double {
    let maximum = Double(row.max()!)
    var sum = 0.0
    for logit in row { sum += exp(Double(logit) - maximum) }
    return Double(row[row.startIndex + token]) - maximum - log(sum)
}
