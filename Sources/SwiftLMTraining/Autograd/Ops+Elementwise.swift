import Foundation
import SwiftLMCore

extension Ops {
    /// `a + scale · b` (same shapes): a LoRA branch, `(alpha / r) · x·Aᵀ·Bᵀ`, added to the
    /// frozen projection.
    public static func addScaled(_ a: Variable, _ b: Variable, scale: Float) -> Variable {
        precondition(a.shape == b.shape, "addScaled: shapes \(a.shape) and \(b.shape) differ")
        let count = a.elementCount
        let result = Tensor(uninitialized: a.shape)
        let x = a.value.floats
        let y = b.value.floats
        let out = result.floats
        pool.parallelFor(count) { chunk in
            for index in chunk { out[index] = x[index] + scale * y[index] }
        }

        return Variable(result, inputs: [a, b]) { output in
            let upstream = output.gradient!.floats
            for (input, factor) in [(a, Float(1)), (b, scale)] where input.requiresGradient {
                let target = input.gradientStorage()
                pool.parallelFor(count) { chunk in
                    for index in chunk { target[index] += factor * upstream[index] }
                }
            }
        }
    }

    /// `[rows, width] + [width] -> [rows, width]`: a bias added to every row.
    public static func addBias(_ x: Variable, _ bias: Variable) -> Variable {
        precondition(
            x.value.rank == 2 && bias.shape == [x.shape[1]], "addBias: \(x.shape) + \(bias.shape)")
        let rows = x.shape[0]
        let width = x.shape[1]
        let result = Tensor(uninitialized: x.shape)
        for row in 0..<rows {
            for column in 0..<width {
                result.floats[row * width + column] =
                    x.value.floats[row * width + column] + bias.value.floats[column]
            }
        }

        return Variable(result, inputs: [x, bias]) { output in
            let upstream = output.gradient!.floats
            if x.requiresGradient {
                let target = x.gradientStorage()
                for index in 0..<(rows * width) { target[index] += upstream[index] }
            }
            if bias.requiresGradient {
                let target = bias.gradientStorage()
                for row in 0..<rows {
                    for column in 0..<width { target[column] += upstream[row * width + column] }
                }
            }
        }
    }

    /// Elementwise `tanh`: the activation of prefix tuning's reparameterising MLP (Li and
    /// Liang 2021). The backward uses `1 − tanh²`, from the saved output.
    public static func tanh(_ x: Variable) -> Variable {
        let count = x.elementCount
        let result = Tensor(uninitialized: x.shape)
        for index in 0..<count { result.floats[index] = Foundation.tanh(x.value.floats[index]) }

        return Variable(result, inputs: [x]) { output in
            let upstream = output.gradient!.floats
            let target = x.gradientStorage()
            for index in 0..<count {
                let y = result.floats[index]
                target[index] += upstream[index] * (1 - y * y)
            }
        }
    }
}
