import Foundation
import SwiftLMCore

extension Ops {
    /// `[tokens, intermediate]` twice -> `[tokens, intermediate]`: SwiGLU (Shazeer, 2020),
    /// `silu(gate) ⊙ up`, the gated feed-forward of Llama.
    public static func swiGLU(gate: Variable, up: Variable) -> Variable {
        precondition(gate.shape == up.shape, "swiGLU: shapes \(gate.shape) and \(up.shape)")
        let count = gate.elementCount
        let result = Tensor(uninitialized: gate.shape)
        let g = gate.value.floats
        let u = up.value.floats
        let out = result.floats
        pool.parallelFor(count) { chunk in
            for index in chunk {
                let sigmoid = 1 / (1 + exp(-g[index]))
                out[index] = g[index] * sigmoid * u[index]
            }
        }

        return Variable(result, inputs: [gate, up]) { output in
            let upstream = output.gradient!.floats
            let gateGradient = gate.requiresGradient ? gate.gradientStorage() : nil
            let upGradient = up.requiresGradient ? up.gradientStorage() : nil
            pool.parallelFor(count) { chunk in
                for index in chunk {
                    let sigmoid = 1 / (1 + exp(-g[index]))
                    let silu = g[index] * sigmoid
                    // silu'(g) = σ(g) · (1 + g · (1 − σ(g)))
                    gateGradient?[index] +=
                        upstream[index] * u[index] * sigmoid * (1 + g[index] * (1 - sigmoid))
                    upGradient?[index] += upstream[index] * silu
                }
            }
        }
    }

    /// `[...] -> [...]`: GELU (Hendrycks and Gimpel, 2016) in its exact form,
    /// `x · Φ(x) = x/2 · (1 + erf(x/√2))`, as torch.nn.functional.gelu computes by default.
    public static func gelu(_ x: Variable) -> Variable {
        let count = x.elementCount
        let result = Tensor(uninitialized: x.shape)
        let input = x.value.floats
        let out = result.floats
        let inverseSqrt2: Float = 0.707_106_781_186_547_5
        pool.parallelFor(count) { chunk in
            for index in chunk {
                out[index] = 0.5 * input[index] * (1 + erf(input[index] * inverseSqrt2))
            }
        }

        return Variable(result, inputs: [x]) { output in
            let upstream = output.gradient!.floats
            let target = x.gradientStorage()
            // d/dx [x Φ(x)] = Φ(x) + x φ(x)
            let inverseSqrt2Pi: Float = 0.398_942_280_401_432_7
            pool.parallelFor(count) { chunk in
                for index in chunk {
                    let value = input[index]
                    let cdf = 0.5 * (1 + erf(value * inverseSqrt2))
                    let pdf = inverseSqrt2Pi * exp(-0.5 * value * value)
                    target[index] += upstream[index] * (cdf + value * pdf)
                }
            }
        }
    }

    /// `[...] -> [...]`: inverted dropout (Srivastava et al., 2014): each element is zeroed
    /// with `probability` and the survivors scaled by 1/(1 − probability).
    ///
    /// The mask is drawn from `seed`, not from a shared generator, so a checkpointed block
    /// that recomputes its forward draws the same mask again.
    public static func dropout(_ x: Variable, probability: Float, seed: UInt64) -> Variable {
        precondition(probability >= 0 && probability < 1, "dropout: probability in [0, 1)")
        guard probability > 0 else { return x }
        let count = x.elementCount
        let keep = 1 - probability
        let mask = Tensor(uninitialized: x.shape)
        var random = TrainingRandom(seed: seed)
        for index in 0..<count {
            mask.floats[index] = random.nextUnitFloat() < probability ? 0 : 1 / keep
        }
        let result = Tensor(uninitialized: x.shape)
        for index in 0..<count { result.floats[index] = x.value.floats[index] * mask.floats[index] }

        return Variable(result, inputs: [x]) { output in
            let upstream = output.gradient!.floats
            let target = x.gradientStorage()
            for index in 0..<count { target[index] += upstream[index] * mask.floats[index] }
        }
    }
}
