import Foundation

/// Plain scalar twins of `VectorMath` and `FloatKernels`: one element at a time, every lane an
/// explicit array slot, each step written as the ggml source states it. They define the
/// arithmetic the fast kernels must reproduce exactly; the tests hold the two together and hold
/// these to llama.cpp's own functions. Nothing else should call them in a hot loop.
enum ReferenceFloatKernels {
    // MARK: - Horizontal sums and the exponential

    /// The halving tree: while more than one value remains, value i += value i + count / 2.
    /// `count` must be a power of two.
    static func halvingSum(_ values: [Float]) -> Float {
        var values = values
        var half = values.count / 2
        while half >= 1 {
            for i in 0..<half { values[i] = values[i] + values[i + half] }
            half /= 2
        }
        return values[0]
    }

    /// e^x as ggml's `ggml_v_expf` for `__m512` computes one lane, each `_mm512_fmadd_ps` a
    /// fused `addingProduct`, `_mm512_fnmadd_ps(a, b, c)` the fused c - a * b. `scalef` is
    /// computed as j * 2^n exactly in Double, then rounded once.
    static func exp(_ x: Float) -> Float {
        let shift: Float = 0x1.8p23
        let z = shift.addingProduct(x, 0x1.715476p+0)
        let n = z - shift
        let b1 = x.addingProduct(-n, 0x1.62e4p-1)
        let b = b1.addingProduct(-n, 0x1.7f7d1cp-20)
        let u = b * b
        let c43 = Float(0x1.573e2ep-5).addingProduct(0x1.0e4020p-7, b)
        let c21 = Float(0x1.fffdb6p-2).addingProduct(0x1.555e66p-3, b)
        let c0 = Float(1).addingProduct(0x1.ffffecp-1, b)
        let j = c0.addingProduct(c21.addingProduct(c43, u), u)

        if n > 192 { return .infinity }
        if n < -192 { return 0 }
        return Float(Double(j) * Foundation.pow(2, Double(n)))
    }

    /// x / (1 + e^-x), `ggml_v_silu` one lane at a time.
    static func silu(_ x: Float) -> Float {
        x / (1 + exp(0 - x))
    }

    // MARK: - Row kernels

    /// `FloatKernels.softmax`: groups of 16 through `exp` and `halvingSum`, the rest through
    /// libm's `expf`, the total in Double, then a scale by `Float(1 / sum)`.
    static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var maximum = -Float.infinity
        for i in 0..<count { maximum = max(maximum, x[i]) }

        var sum: Double = 0
        let grouped = count - count % 16
        for start in stride(from: 0, to: grouped, by: 16) {
            var group = [Float](repeating: 0, count: 16)
            for lane in 0..<16 {
                group[lane] = exp(x[start + lane] - maximum)
                x[start + lane] = group[lane]
            }
            sum += Double(halvingSum(group))
        }
        for i in grouped..<count {
            x[i] = expf(x[i] - maximum)
            sum += Double(x[i])
        }

        let scale = Float(1 / sum)
        for i in 0..<count { x[i] = x[i] * scale }
    }

    /// `FloatKernels.swiGLU`: `silu` for groups of 16, `x / (1 + expf(-x))` for the rest.
    static func swiGLU(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        let grouped = count - count % 16
        for i in 0..<count {
            let g = gate[i]
            let silu = i < grouped ? silu(g) : g / (1 + expf(-g))
            gate[i] = silu * up[i]
        }
    }

    // MARK: - Dot products

    /// `FloatKernels.dotLanes16` (tinyBLAS): lane r accumulates the products of elements
    /// r, r + 16, r + 32, ... by FMA; then `halvingSum`.
    static func dotLanes16(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int)
        -> Float
    {
        var lanes = [Float](repeating: 0, count: 16)
        for i in 0..<count { lanes[i % 16] = lanes[i % 16].addingProduct(a[i], b[i]) }
        return halvingSum(lanes)
    }

    /// `FloatKernels.dotF32` (`ggml_vec_dot_f32`).
    static func dotF32(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        let stepped = count - count % 64
        var sum = steps64(a, b, count: stepped)

        // GCC's vectorized leftovers: groups of 16 (if at least 16 are left), one group of 8,
        // each product rounded and added in order; then single fused multiply-adds.
        var i = stepped
        while count - i >= 16 {
            for k in i..<(i + 16) { sum = sum + a[k] * b[k] }
            i += 16
        }
        if count - i >= 8 {
            for k in i..<(i + 8) { sum = sum + a[k] * b[k] }
            i += 8
        }
        for k in i..<count { sum = sum.addingProduct(a[k], b[k]) }
        return sum
    }

    /// `FloatKernels.dotF16` (`ggml_vec_dot_f16`) on binary16 values held as floats.
    static func dotF16(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        let stepped = count - count % 64
        var sum = Double(steps64(a, b, count: stepped))
        for k in stepped..<count { sum += Double(a[k] * b[k]) }
        return Float(sum)
    }

    /// Four accumulators of 16 lanes: element i goes to accumulator (i % 64) / 16, lane i % 16.
    /// They are added 0 + 2 and 1 + 3, then those two, then by `halvingSum`.
    static func steps64(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var accumulators = [[Float]](repeating: [Float](repeating: 0, count: 16), count: 4)
        for i in 0..<count {
            let (vector, lane) = ((i % 64) / 16, i % 16)
            accumulators[vector][lane] = accumulators[vector][lane].addingProduct(a[i], b[i])
        }

        var lanes = [Float](repeating: 0, count: 16)
        for lane in 0..<16 {
            let first = accumulators[0][lane] + accumulators[2][lane]
            let second = accumulators[1][lane] + accumulators[3][lane]
            lanes[lane] = first + second
        }
        return halvingSum(lanes)
    }

    /// `FloatKernels.weightedSumLanes16` and `weightedSumLanes64`, one output element at a time:
    /// the dot product of the weights with one column of the rows, padded with zeros to a
    /// multiple of `laneCount`, by `dotLanes16` (16) or `dotF16` (64).
    static func weightedSum(
        _ weights: UnsafePointer<Float>, count: Int, width: Int, laneCount: Int,
        row: (Int) -> UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>
    ) {
        let padded = (count + laneCount - 1) / laneCount * laneCount
        var w = [Float](repeating: 0, count: padded)
        for p in 0..<count { w[p] = weights[p] }
        for i in 0..<width {
            var column = [Float](repeating: 0, count: padded)
            for p in 0..<count { column[p] = row(p)[i] }
            output[i] =
                laneCount == 16
                ? dotLanes16(w, column, count: padded) : dotF16(w, column, count: padded)
        }
    }
}
