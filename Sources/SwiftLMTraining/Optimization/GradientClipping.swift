import SwiftLMCore

/// Clipping by the global gradient norm (Pascanu et al., "On the difficulty of training
/// recurrent neural networks", 2013), as `torch.nn.utils.clip_grad_norm_` does it, and the
/// check for gradients that are not finite.
public enum GradientClipping {
    /// Scales every gradient by `maxNorm / (norm + 1e-6)` when that factor is below 1, where
    /// `norm` is the L2 norm of all gradients together, and returns `norm` before clipping.
    /// Parameters without a gradient are skipped.
    ///
    /// When a gradient holds a NaN or an infinity the norm is not finite: gradients are left
    /// as they are (PyTorch would scale them by NaN) and the caller should skip the step.
    @discardableResult
    public static func clipGlobalNorm(_ parameters: [Variable], maxNorm: Float) -> Float {
        precondition(maxNorm > 0, "maxNorm must be positive, got \(maxNorm)")
        let norm = globalNorm(parameters)
        guard norm.isFinite else { return Float(norm) }

        // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1.
        let factor = Double(maxNorm) / (norm + 1e-6)
        if factor < 1 { scaleGradients(parameters, by: Float(factor)) }
        return Float(norm)
    }

    /// The L2 norm of all gradients together, summed in Double. Squares of Floats cannot
    /// overflow a Double sum, so the norm is finite exactly when every gradient element is.
    public static func globalNorm(_ parameters: [Variable]) -> Double {
        var sumOfSquares = 0.0
        for parameter in parameters {
            guard let gradient = parameter.gradient else { continue }
            sumOfSquares += self.sumOfSquares(gradient.floats, count: gradient.elementCount)
        }
        return sumOfSquares.squareRoot()
    }

    /// Whether any gradient holds a NaN or an infinity, after which the step must be skipped
    /// (check the loss with `Float.isFinite`). `clipGlobalNorm` already returns a non-finite
    /// norm in that case, so a trainer that clips needs no second pass.
    public static func hasNonFinite(_ parameters: [Variable]) -> Bool {
        !globalNorm(parameters).isFinite
    }

    /// Multiplies every gradient by `factor`.
    public static func scaleGradients(_ parameters: [Variable], by factor: Float) {
        for parameter in parameters {
            guard let gradient = parameter.gradient else { continue }
            let values = gradient.floats
            OptimizerSupport.forEachChunk(gradient.elementCount) { range in
                for i in range { values[i] *= factor }
            }
        }
    }

    /// Elements per partial sum. Blocks of a fixed size, summed in order, make the sum the
    /// same whatever the number of threads.
    private static let blockLength = 1 << 16

    /// Σ x², in Double, over blocks summed in parallel.
    private static func sumOfSquares(_ values: UnsafeMutablePointer<Float>, count: Int) -> Double {
        let blockCount = (count + blockLength - 1) / blockLength
        var partials = [Double](repeating: 0, count: blockCount)
        partials.withUnsafeMutableBufferPointer { partials in
            let partials = partials.baseAddress!
            let sumBlocks = { (blocks: Range<Int>) in
                for block in blocks {
                    var sum = 0.0
                    for i in block * blockLength..<min(count, (block + 1) * blockLength) {
                        let x = Double(values[i])
                        sum += x * x
                    }
                    partials[block] = sum
                }
            }
            if blockCount > 1 {
                Ops.pool.parallelFor(blockCount, sumBlocks)
            } else {
                sumBlocks(0..<blockCount)
            }
        }
        return partials.reduce(0, +)
    }
}
