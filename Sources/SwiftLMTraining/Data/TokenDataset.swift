import Foundation
import SwiftLMCore

/// A token file split for training: the first tokens to train on, the last
/// `validationFraction` of them held out to measure generalization, as nanoGPT's
/// `prepare.py` splits a corpus 90/10.
///
/// Batches are flat, row-major `[batchSize, seqLen]` arrays of token ids; `targets` is
/// `inputs` shifted one token ahead, so row `b`, column `t` of `targets` is the token that
/// follows row `b`, column `t` of `inputs`.
public struct TokenDataset: Sendable {
    public let file: TokenFile
    /// Token indices of the training part.
    public let trainRange: Range<Int>
    /// Token indices of the validation part, which follows the training part.
    public let validationRange: Range<Int>

    /// Splits `file`, holding out its last `validationFraction` of tokens.
    ///
    /// - Throws: ``TokenDatasetError/partTooSmall(part:tokenCount:required:fileTokenCount:)``
    ///   when either part holds fewer than `seqLen + 1` tokens, one window;
    ///   ``TokenDatasetError/invalidValidationFraction(_:)`` unless 0 < fraction < 1.
    /// Tokens in the training part.
    public var trainingTokenCount: Int { trainRange.count }
    /// Tokens in the held-out validation part.
    public var validationTokenCount: Int { validationRange.count }

    public init(
        file: TokenFile, seqLen: Int, validationFraction: Double = 0.1
    ) throws(TokenDatasetError) {
        precondition(seqLen >= 1, "seqLen \(seqLen) must be at least 1")
        guard validationFraction > 0 && validationFraction < 1 else {
            throw .invalidValidationFraction(validationFraction)
        }

        let validationCount = Int((Double(file.tokenCount) * validationFraction).rounded())
        let split = file.tokenCount - validationCount
        for (part, count) in [("training", split), ("validation", validationCount)]
        where count < seqLen + 1 {
            throw .partTooSmall(
                part: part, tokenCount: count, required: seqLen + 1,
                fileTokenCount: file.tokenCount)
        }

        self.file = file
        trainRange = 0..<split
        validationRange = split..<file.tokenCount
    }

    /// `batchSize` windows of `seqLen + 1` tokens, each starting at a uniformly drawn position
    /// of the training part: `[batchSize, seqLen]` inputs and targets.
    ///
    /// Every draw comes from `random`, so a run restored from a saved `TrainingRandom`
    /// continues with the batches the uninterrupted run would have drawn.
    public func nextBatch(
        batchSize: Int, seqLen: Int, random: inout TrainingRandom
    ) -> (inputs: [Int], targets: [Int]) {
        precondition(batchSize >= 1, "batchSize \(batchSize) must be at least 1")
        precondition(
            seqLen >= 1 && seqLen + 1 <= trainRange.count,
            "seqLen \(seqLen) needs \(seqLen + 1) tokens, the training part has "
                + "\(trainRange.count)")

        let startCount = UInt64(trainRange.count - seqLen)
        let starts = (0..<batchSize).map { _ in
            trainRange.lowerBound + Int(uniform(below: startCount, using: &random))
        }
        return windows(starting: starts, seqLen: seqLen)
    }

    /// The validation part as consecutive windows, batched: window `i` has inputs
    /// `i * seqLen ..< (i + 1) * seqLen` of the part and targets one token later, so every
    /// validation token after the first is predicted exactly once. The same every call.
    ///
    /// Every batch holds `batchSize` windows except perhaps the last, which holds the rest;
    /// a batch's row count is `inputs.count / seqLen`.
    ///
    /// - Parameter maxBatches: stop after this many batches; nil for the whole part.
    public func validationBatches(
        batchSize: Int, seqLen: Int, maxBatches: Int? = nil
    ) -> [(inputs: [Int], targets: [Int])] {
        precondition(batchSize >= 1, "batchSize \(batchSize) must be at least 1")
        precondition(
            seqLen >= 1 && seqLen + 1 <= validationRange.count,
            "seqLen \(seqLen) needs \(seqLen + 1) tokens, the validation part has "
                + "\(validationRange.count)")
        precondition((maxBatches ?? 1) >= 1, "maxBatches \(maxBatches!) must be at least 1")

        // The last target of a window is the first input of the next, hence `count - 1`.
        let windowCount = (validationRange.count - 1) / seqLen
        let starts = (0..<windowCount).map { validationRange.lowerBound + $0 * seqLen }
        let batchStarts = stride(from: 0, to: windowCount, by: batchSize).prefix(maxBatches ?? .max)
        return batchStarts.map { first in
            let batch = starts[first..<min(first + batchSize, windowCount)]
            return windows(starting: Array(batch), seqLen: seqLen)
        }
    }

    /// The cross-entropy in nats per token of a unigram model, the baseline a trained model
    /// must beat: token frequencies counted on the training part with add-one (Laplace)
    /// smoothing over the whole vocabulary, evaluated on every token of the validation part.
    ///
    /// - Complexity: O(tokenCount + vocabSize).
    public func unigramEntropy() -> Double {
        var counts = [Int](repeating: 0, count: file.vocabSize)
        for index in trainRange { counts[file[index]] += 1 }

        // p(t) = (count(t) + 1) / (trainCount + vocabSize); the log of the denominator is
        // shared by every token.
        let logTotal = log(Double(trainRange.count + file.vocabSize))
        var sum = 0.0
        for index in validationRange { sum += logTotal - log(Double(counts[file[index]] + 1)) }
        return sum / Double(validationRange.count)
    }

    /// Inputs and targets of the windows of `seqLen + 1` tokens at `starts`.
    private func windows(starting starts: [Int], seqLen: Int) -> (inputs: [Int], targets: [Int]) {
        var inputs: [Int] = []
        var targets: [Int] = []
        inputs.reserveCapacity(starts.count * seqLen)
        targets.reserveCapacity(starts.count * seqLen)
        for start in starts {
            let window = file.tokens(start..<(start + seqLen + 1))
            inputs += window[0..<seqLen]
            targets += window[1...seqLen]
        }
        return (inputs, targets)
    }
}

/// A uniform integer in `0..<bound`.
///
/// Lemire's multiply-shift with rejection ("Fast Random Integer Generation in an Interval",
/// 2019), written out rather than taken from `Int.random(in:using:)`, whose algorithm the
/// standard library may change: a saved seed must give the same windows on every toolchain.
func uniform(below bound: UInt64, using random: inout TrainingRandom) -> UInt64 {
    precondition(bound > 0, "empty range")
    var product = random.next().multipliedFullWidth(by: bound)
    if product.low < bound {
        // 2^64 mod bound values of `low` would make some results more likely; redraw them.
        let threshold = (0 &- bound) % bound
        while product.low < threshold {
            product = random.next().multipliedFullWidth(by: bound)
        }
    }
    return product.high
}
