import SwiftLMCore

extension Ops {
    /// `[rows, hidden]`, `[hidden]` -> `[rows, hidden]`: RMSNorm (Zhang and Sennrich, 2019),
    /// `y = x / sqrt(mean(x²) + epsilon) · weight`, as Llama and HF's LlamaRMSNorm compute it.
    public static func rmsNorm(_ x: Variable, weight: Variable, epsilon: Float) -> Variable {
        let hidden = x.shape.last!
        precondition(weight.shape == [hidden], "rmsNorm: weight \(weight.shape) for \(x.shape)")
        let rows = x.elementCount / hidden
        let result = Tensor(uninitialized: x.shape)
        // 1/rms of each row, kept for the backward.
        let inverseRMS = Tensor(uninitialized: [rows])
        let input = x.value.floats
        let scale = weight.value.floats
        pool.parallelFor(rows) { chunk in
            for row in chunk {
                let from = input + row * hidden
                let to = result.floats + row * hidden
                var sumOfSquares: Float = 0
                for index in 0..<hidden { sumOfSquares += from[index] * from[index] }
                let r = 1 / (sumOfSquares / Float(hidden) + epsilon).squareRoot()
                inverseRMS.floats[row] = r
                for index in 0..<hidden { to[index] = from[index] * r * scale[index] }
            }
        }

        return Variable(result, inputs: [x, weight]) { output in
            let upstream = output.gradient!.floats
            // dx = r · (dx̂ − x̂ · mean(dx̂ ⊙ x̂)) with x̂ = x · r and dx̂ = dy ⊙ weight.
            if x.requiresGradient {
                let target = x.gradientStorage()
                pool.parallelFor(rows) { chunk in
                    for row in chunk {
                        let from = input + row * hidden
                        let dy = upstream + row * hidden
                        let r = inverseRMS.floats[row]
                        var dot: Float = 0
                        for index in 0..<hidden { dot += dy[index] * scale[index] * from[index] }
                        let correction = dot * r * r / Float(hidden)
                        let to = target + row * hidden
                        for index in 0..<hidden {
                            to[index] += r * (dy[index] * scale[index] - from[index] * correction)
                        }
                    }
                }
            }
            // dweight = Σ_rows dy ⊙ x̂
            if weight.requiresGradient {
                let target = weight.gradientStorage()
                for row in 0..<rows {
                    let from = input + row * hidden
                    let dy = upstream + row * hidden
                    let r = inverseRMS.floats[row]
                    for index in 0..<hidden { target[index] += dy[index] * from[index] * r }
                }
            }
        }
    }

    /// `[rows, hidden]`, `[hidden]`, `[hidden]` -> `[rows, hidden]`: LayerNorm (Ba et al.,
    /// 2016), `y = (x − mean) / sqrt(var + epsilon) · weight + bias`, with the biased variance
    /// as torch.nn.LayerNorm uses.
    public static func layerNorm(
        _ x: Variable, weight: Variable, bias: Variable, epsilon: Float
    ) -> Variable {
        let hidden = x.shape.last!
        precondition(
            weight.shape == [hidden] && bias.shape == [hidden], "layerNorm: parameter shapes")
        let rows = x.elementCount / hidden
        let result = Tensor(uninitialized: x.shape)
        // x̂ and 1/σ of each row, kept for the backward.
        let normalized = Tensor(uninitialized: x.shape)
        let inverseDeviation = Tensor(uninitialized: [rows])
        let input = x.value.floats
        let scale = weight.value.floats
        let shift = bias.value.floats
        pool.parallelFor(rows) { chunk in
            for row in chunk {
                let from = input + row * hidden
                var mean: Float = 0
                for index in 0..<hidden { mean += from[index] }
                mean /= Float(hidden)
                var variance: Float = 0
                for index in 0..<hidden { variance += (from[index] - mean) * (from[index] - mean) }
                let r = 1 / (variance / Float(hidden) + epsilon).squareRoot()
                inverseDeviation.floats[row] = r
                let xHat = normalized.floats + row * hidden
                let to = result.floats + row * hidden
                for index in 0..<hidden {
                    xHat[index] = (from[index] - mean) * r
                    to[index] = xHat[index] * scale[index] + shift[index]
                }
            }
        }

        return Variable(result, inputs: [x, weight, bias]) { output in
            let upstream = output.gradient!.floats
            // dx = r · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)) with dx̂ = dy ⊙ weight.
            if x.requiresGradient {
                let target = x.gradientStorage()
                pool.parallelFor(rows) { chunk in
                    for row in chunk {
                        let dy = upstream + row * hidden
                        let xHat = normalized.floats + row * hidden
                        var sum: Float = 0
                        var dot: Float = 0
                        for index in 0..<hidden {
                            let g = dy[index] * scale[index]
                            sum += g
                            dot += g * xHat[index]
                        }
                        let meanG = sum / Float(hidden)
                        let meanDot = dot / Float(hidden)
                        let r = inverseDeviation.floats[row]
                        let to = target + row * hidden
                        for index in 0..<hidden {
                            let g = dy[index] * scale[index]
                            to[index] += r * (g - meanG - xHat[index] * meanDot)
                        }
                    }
                }
            }
            for row in 0..<rows {
                let dy = upstream + row * hidden
                let xHat = normalized.floats + row * hidden
                if weight.requiresGradient {
                    let target = weight.gradientStorage()
                    for index in 0..<hidden { target[index] += dy[index] * xHat[index] }
                }
                if bias.requiresGradient {
                    let target = bias.gradientStorage()
                    for index in 0..<hidden { target[index] += dy[index] }
                }
            }
        }
    }
}
