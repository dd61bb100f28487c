import Foundation

/// Element-wise and row-wise float kernels of a transformer forward pass.
///
/// Each follows the arithmetic of ggml's CPU backend where the order of operations changes the
/// result (sums of squares in Double, RoPE angles by repeated multiplication), because SwiftLM's
/// logits are checked against llama.cpp's.
public enum FloatKernels {
    /// RMSNorm of one row, `[count] -> [count]`: `x / sqrt(mean(x²) + eps) * weight`.
    /// The sum of squares is accumulated in Double as ggml's `rms_norm` does.
    @inlinable
    public static func rmsNorm(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, epsilon: Float,
        count: Int, into y: UnsafeMutablePointer<Float>
    ) {
        var sum: Double = 0
        for i in 0..<count { sum += Double(x[i] * x[i]) }
        let mean = Float(sum / Double(count))
        let scale = 1 / (mean + epsilon).squareRoot()

        for i in 0..<count { y[i] = (x[i] * scale) * weight[i] }
    }

    /// Rotary position embedding of one head, `[headDim] -> [headDim]` in place.
    ///
    /// - Parameters:
    ///   - interleaved: true for ggml's "normal" mode (rotate adjacent pairs `(2i, 2i+1)`, the
    ///     layout of Llama GGUF files, whose converter permutes q and k); false for the
    ///     half-split "NeoX" layout (rotate `(i, i + dims/2)`).
    ///   - dims: leading elements rotated (`rope.dimension_count`); the rest pass through.
    @inlinable
    public static func rope(
        _ x: UnsafeMutablePointer<Float>, position: Int, dims: Int, base: Float,
        interleaved: Bool
    ) {
        // ggml multiplies the angle by base^(-2/dims) once per pair instead of calling pow.
        let thetaScale = powf(base, -2 / Float(dims))
        var theta = Float(position)
        let half = dims / 2

        for pair in 0..<half {
            let cosTheta = cosf(theta)
            let sinTheta = sinf(theta)
            let (i, j) = interleaved ? (2 * pair, 2 * pair + 1) : (pair, pair + half)
            let x0 = x[i]
            let x1 = x[j]
            x[i] = x0 * cosTheta - x1 * sinTheta
            x[j] = x0 * sinTheta + x1 * cosTheta
            theta *= thetaScale
        }
    }

    /// Softmax of one row in place, `[count] -> [count]`; the sum runs in Double like ggml's.
    @inlinable
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var maximum = -Float.infinity
        for i in 0..<count { maximum = max(maximum, x[i]) }

        var sum: Double = 0
        for i in 0..<count {
            let e = expf(x[i] - maximum)
            x[i] = e
            sum += Double(e)
        }

        let scale = Float(1 / sum)
        for i in 0..<count { x[i] *= scale }
    }

    /// SwiGLU, `[count], [count] -> [count]`: `silu(gate) * up`, written over `gate`.
    @inlinable
    public static func swiGLU(
        gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int
    ) {
        for i in 0..<count {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// `y += x`, `[count]`.
    @inlinable
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }

    /// Dot product of two float rows.
    @inlinable
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var sum = SIMD8<Float>()
        var i = 0
        while i + 8 <= count {
            let va = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
            let vb = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            sum.addProduct(va, vb)
            i += 8
        }
        var total = sum.sum()
        while i < count {
            total += a[i] * b[i]
            i += 1
        }
        return total
    }

    /// Rounds every element to the nearest Float16, as storing it in an F16 cache would.
    @inlinable
    public static func roundToHalf(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = Float(Float16(x[i])) }
    }
}
