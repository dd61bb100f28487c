import Foundation
import SwiftLMCore

extension Ops {
    /// The target id of a position that does not count towards the loss (PyTorch's default
    /// `ignore_index`).
    public static let ignoredTarget = -100

    /// `[tokens, vocabSize]`, `[tokens]` -> `[]`: mean cross-entropy of the softmax of each
    /// row against its target id, over the positions whose target is not `ignoredTarget`
    /// (torch.nn.functional.cross_entropy with `ignore_index`).
    ///
    /// Sums run in Double, so the loss of a long batch does not lose digits. With no counted
    /// position the loss is 0 and no gradient flows.
    public static func crossEntropy(_ logits: Variable, targets: [Int]) -> Variable {
        precondition(logits.value.rank == 2 && logits.shape[0] == targets.count, "crossEntropy")
        let vocabSize = logits.shape[1]
        let rows = targets.count
        precondition(
            targets.allSatisfy { $0 == ignoredTarget || ($0 >= 0 && $0 < vocabSize) },
            "crossEntropy: target id out of range")
        let counted = targets.filter { $0 != ignoredTarget }.count
        let input = logits.value.floats
        // log Σ exp of each row, kept for the backward.
        let logSumExp = Tensor(zeros: [rows])
        var rowLosses = [Double](repeating: 0, count: rows)
        rowLosses.withUnsafeMutableBufferPointer { losses in
            let losses = losses.baseAddress!
            pool.parallelFor(rows) { chunk in
                for row in chunk where targets[row] != ignoredTarget {
                    let from = input + row * vocabSize
                    var maximum = -Float.infinity
                    for index in 0..<vocabSize { maximum = max(maximum, from[index]) }
                    var sum: Double = 0
                    for index in 0..<vocabSize { sum += Double(exp(from[index] - maximum)) }
                    let lse = Double(maximum) + Foundation.log(sum)
                    logSumExp.floats[row] = Float(lse)
                    losses[row] = lse - Double(from[targets[row]])
                }
            }
        }
        let loss = counted == 0 ? 0 : rowLosses.reduce(0, +) / Double(counted)

        return Variable(Tensor(shape: [], values: [Float(loss)]), inputs: [logits]) { output in
            guard counted > 0 else { return }
            // d/dlogits = (softmax − onehot(target)) / counted, times the upstream scalar.
            let scale = output.gradient!.floats[0] / Float(counted)
            let target = logits.gradientStorage()
            pool.parallelFor(rows) { chunk in
                for row in chunk where targets[row] != ignoredTarget {
                    let from = input + row * vocabSize
                    let to = target + row * vocabSize
                    let lse = logSumExp.floats[row]
                    for index in 0..<vocabSize { to[index] += exp(from[index] - lse) * scale }
                    to[targets[row]] -= scale
                }
            }
        }
    }
}
