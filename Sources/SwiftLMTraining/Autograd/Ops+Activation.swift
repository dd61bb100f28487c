import Foundation
import SwiftLMCore

extension Ops {
    /// `[tokens, intermediate]` twice -> `[tokens, intermediate]`: SwiGLU (Shazeer, 2020),
    /// `silu(gate) ⊙ up`, the gated feed-forward of Llama.
    ///
    /// The sigmoid takes 16 lanes at a time through `VectorMath.exp` (ggml's vectorized exp,
    /// within 1.5 ulp): a scalar `expf` per element was a tenth of a training step.
    public static func swiGLU(gate: Variable, up: Variable) -> Variable {
        precondition(gate.shape == up.shape, "swiGLU: shapes \(gate.shape) and \(up.shape)")
        let count = gate.elementCount
        let result = Tensor(uninitialized: gate.shape)
        let g = gate.value.floats
        let u = up.value.floats
        let out = result.floats
        forEachLanes16(count) { index in
            let gates = load(g, index, count)
            let sigmoid = 1 / (1 + VectorMath.exp(-gates))
            store(gates * sigmoid * load(u, index, count), out, index, count)
        }

        return Variable(result, inputs: [gate, up]) { output in
            let upstream = output.gradient!.floats
            let gateGradient = gate.requiresGradient ? gate.gradientStorage() : nil
            let upGradient = up.requiresGradient ? up.gradientStorage() : nil
            forEachLanes16(count) { index in
                let gates = load(g, index, count)
                let sigmoid = 1 / (1 + VectorMath.exp(-gates))
                let dy = load(upstream, index, count)
                // silu'(g) = σ(g) · (1 + g · (1 − σ(g)))
                if let gateGradient {
                    let derivative = sigmoid * (1 + gates * (1 - sigmoid))
                    let sum = load(gateGradient, index, count)
                        + dy * load(u, index, count) * derivative
                    store(sum, gateGradient, index, count)
                }
                if let upGradient {
                    let sum = load(upGradient, index, count) + dy * gates * sigmoid
                    store(sum, upGradient, index, count)
                }
            }
        }
    }

    /// Runs `body` for every 16-element group `index, index + 16, ...` of `0..<count` across
    /// the pool; the last group may be partial (see `load` and `store`).
    static func forEachLanes16(_ count: Int, _ body: (Int) -> Void) {
        let groups = (count + 15) / 16
        pool.parallelFor(groups) { chunk in
            for group in chunk { body(group * 16) }
        }
    }

    /// 16 floats from `pointer + index`, zeros past `count`.
    @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>, _ index: Int, _ count: Int)
        -> SIMD16<Float>
    {
        if index + 16 <= count {
            return UnsafeRawPointer(pointer + index).loadUnaligned(as: SIMD16<Float>.self)
        }
        var lanes = SIMD16<Float>(repeating: 0)
        for lane in 0..<(count - index) { lanes[lane] = pointer[index + lane] }
        return lanes
    }

    @inline(__always)
    static func load(_ pointer: UnsafeMutablePointer<Float>, _ index: Int, _ count: Int)
        -> SIMD16<Float>
    {
        load(UnsafePointer(pointer), index, count)
    }

    /// Stores the lanes of `value` that fall before `count`.
    @inline(__always)
    static func store(
        _ value: SIMD16<Float>, _ pointer: UnsafeMutablePointer<Float>, _ index: Int,
        _ count: Int
    ) {
        if index + 16 <= count {
            UnsafeMutableRawPointer(pointer + index).storeBytes(of: value, as: SIMD16<Float>.self)
            return
        }
        for lane in 0..<(count - index) { pointer[index + lane] = value[lane] }
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
