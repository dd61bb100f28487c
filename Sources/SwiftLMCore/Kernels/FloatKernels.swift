import Foundation
import SwiftLMKernelsAVX512

#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

/// Element-wise and row-wise float kernels of a transformer forward pass.
///
/// Each reproduces the float arithmetic of llama.cpp's CPU backend (ggml-cpu built for AVX-512,
/// with GCC fusing `a * b + c` into FMA) operation for operation, because SwiftLM's logits are
/// checked against llama.cpp's bit for bit: which lane sums which terms, the tree that adds the
/// lanes, which multiply-adds are fused, and the exponential. `ReferenceFloatKernels` holds plain
/// scalar twins that the tests hold these to exactly. docs/ARCHITECTURE.md lists the ggml
/// function each one mirrors.
public enum FloatKernels {
    // MARK: - Normalization and position

    /// RMSNorm of one row, `[count] -> [count]`: `x / sqrt(mean(x²) + eps) * weight`.
    /// ggml's `rms_norm` sums the squares in Double, one after another; the weight is a separate
    /// `mul` op, so the two products round separately.
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

    /// Rotary position embedding of one head, `[headDim] -> [headDim]` in place, as ggml's
    /// `ggml_compute_forward_rope_flt`: the angle of pair p is position * base^(-2p/dims), built
    /// by one multiplication per pair (`ggml_rope_cache_init`), and GCC fuses the rotation into
    /// `x0 cos - x1 sin = fma(x0, cos, -(x1 sin))`, `x0 sin + x1 cos = fma(x0, sin, x1 cos)`.
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
        let thetaScale = powf(base, -2 / Float(dims))
        var theta = Float(position)
        let half = dims / 2

        for pair in 0..<half {
            let cosTheta = cosf(theta)
            let sinTheta = sinf(theta)
            let (i, j) = interleaved ? (2 * pair, 2 * pair + 1) : (pair, pair + half)
            let x0 = x[i]
            let x1 = x[j]
            x[i] = (-(x1 * sinTheta)).addingProduct(x0, cosTheta)
            x[j] = (x1 * cosTheta).addingProduct(x0, sinTheta)
            theta *= thetaScale
        }
    }

    /// Scaled rotary position embedding of one head, `[headDim] -> [headDim]` in place: ggml's
    /// `ggml_compute_forward_rope_flt` with its YaRN arguments, for linear, NTK-aware and YaRN
    /// scaling (`RoPEScaling`). The unscaled angle is built as by `rope(_:position:dims:base:
    /// interleaved:)`, `table.rotation` scales it, and the rotation is fused the same way.
    /// Unscaled models take the other overload, whose arithmetic this one does not touch.
    ///
    /// - Parameters:
    ///   - table: the scaling's per-pair numbers for `table.dims` rotated elements.
    ///   - interleaved: adjacent pairs `(2i, 2i+1)` or half-split `(i, i + dims/2)`.
    @inlinable
    public static func rope(
        _ x: UnsafeMutablePointer<Float>, position: Int, table: RoPETable, interleaved: Bool
    ) {
        var theta = Float(position)
        let half = table.dims / 2

        for pair in 0..<half {
            let (cosTheta, sinTheta) = table.rotation(theta: theta, pair: pair)
            let (i, j) = interleaved ? (2 * pair, 2 * pair + 1) : (pair, pair + half)
            let x0 = x[i]
            let x1 = x[j]
            x[i] = (-(x1 * sinTheta)).addingProduct(x0, cosTheta)
            x[j] = (x1 * cosTheta).addingProduct(x0, sinTheta)
            theta *= table.thetaScale
        }
    }

    // MARK: - Softmax and SwiGLU

    /// Softmax of one row in place, `[count] -> [count]`, as ggml's `soft_max` op computes a row:
    /// `ggml_vec_soft_max_f32` takes e^(x - max) sixteen lanes at a time with
    /// `VectorMath.exp`, adds each group of sixteen by the halving tree and that sum to a Double,
    /// and the last `count % 16` elements with libm's `expf`; then every element is scaled by
    /// `Float(1 / sum)`. Masked elements are -infinity and come out 0.
    ///
    /// On an AVX-512 CPU this runs `AVX512Kernels.softmax`, the same arithmetic with the
    /// scaling instruction itself (several times faster); `softmaxPortable` everywhere else.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        #if arch(x86_64)
            if AVX512Kernels.isSupported {
                AVX512Kernels.softmax(x, count: count)
                return
            }
        #endif
        softmaxPortable(x, count: count)
    }

    /// `softmax` on any CPU, with `VectorMath.exp`.
    @inlinable
    public static func softmaxPortable(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var maximum = -Float.infinity
        for i in 0..<count { maximum = max(maximum, x[i]) }

        var sum: Double = 0
        var i = 0
        while i + 16 <= count {
            let e = VectorMath.exp(load16(x + i) - SIMD16(repeating: maximum))
            store16(e, x + i)
            sum += Double(VectorMath.sum(e))
            i += 16
        }
        while i < count {
            let e = expf(x[i] - maximum)
            x[i] = e
            sum += Double(e)
            i += 1
        }

        let scale = Float(1 / sum)
        for i in 0..<count { x[i] *= scale }
    }

    /// SwiGLU of one row, `[count], [count] -> [count]`: `silu(gate) * up`, written over `gate`.
    /// ggml's `ggml_vec_swiglu_f32`: sixteen lanes at a time with `VectorMath.silu`, the last
    /// `count % 16` elements as `x / (1 + expf(-x)) * up`. Call it once per row, as ggml does:
    /// where the groups of sixteen start matters.
    ///
    /// On an AVX-512 CPU this runs `AVX512Kernels.swiGLU`, the same bits.
    public static func swiGLU(
        gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int
    ) {
        #if arch(x86_64)
            if AVX512Kernels.isSupported {
                AVX512Kernels.swiGLU(gate: gate, up: up, count: count)
                return
            }
        #endif
        swiGLUPortable(gate: gate, up: up, count: count)
    }

    /// `swiGLU` on any CPU, with `VectorMath.silu`.
    @inlinable
    public static func swiGLUPortable(
        gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int
    ) {
        var i = 0
        while i + 16 <= count {
            store16(VectorMath.silu(load16(gate + i)) * load16(up + i), gate + i)
            i += 16
        }
        while i < count {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
            i += 1
        }
    }

    /// `y += x`, `[count]`.
    @inlinable
    public static func add(
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int
    ) {
        for i in 0..<count { y[i] += x[i] }
    }

    // MARK: - Dot products

    /// Dot product in sixteen lanes, `count` a multiple of 16: lane r accumulates
    /// `a[16k + r] * b[16k + r]` by FMA in order of k, then the lanes are added by the halving
    /// tree. This is llamafile's `tinyBLAS` for `__m512` (ggml-cpu/llamafile/sgemm.cpp), which
    /// ggml runs for F32 and F16 matrix products of two or more rows.
    @inlinable
    public static func dotLanes16<Element: KernelElement>(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Element>, count: Int
    ) -> Float {
        assert(count % 16 == 0, "tinyBLAS takes whole vectors of 16")
        var sum = SIMD16<Float>()
        var i = 0
        while i < count {
            sum = sum.addingProduct(load16(a + i), Element.load16(b + i))
            i += 16
        }
        return VectorMath.sum(sum)
    }

    /// Dot product of binary32 rows as ggml's `ggml_vec_dot_f32` computes it (ggml-cpu/vec.cpp,
    /// AVX-512), which ggml runs for F32 matrix products of one row.
    ///
    /// Steps of 64 go to four accumulators of sixteen lanes (FMA), which are added pairwise
    /// (0+2, 1+3, then the two) and by the halving tree. GCC vectorizes the leftover loop
    /// `sum += x[i] * y[i]`: groups of 16, then of 8, add their rounded products one by one; the
    /// last seven or fewer are fused.
    @inlinable
    public static func dotF32<Element: KernelElement>(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Element>, count: Int
    ) -> Float {
        let stepped = count & ~63
        var sum = sumOfSteps64(a, b, count: stepped)

        var i = stepped
        while count - i >= 16 {
            for k in i..<(i + 16) { sum += a[k] * b[k].float }
            i += 16
        }
        if count - i >= 8 {
            for k in i..<(i + 8) { sum += a[k] * b[k].float }
            i += 8
        }
        while i < count {
            sum = sum.addingProduct(a[i], b[i].float)
            i += 1
        }
        return sum
    }

    /// Dot product of rows of binary16 values held as floats, as ggml's `ggml_vec_dot_f16`
    /// computes it: the steps of 64 as in `dotF32`, their sum widened to Double, and the leftover
    /// products (exact in binary32) added in Double one by one. Attention runs it for one token.
    @inlinable
    public static func dotF16<Element: KernelElement>(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Element>, count: Int
    ) -> Float {
        let stepped = count & ~63
        var sum = Double(sumOfSteps64(a, b, count: stepped))
        for i in stepped..<count { sum += Double(a[i] * b[i].float) }
        return Float(sum)
    }

    /// The SIMD part of `ggml_vec_dot_f32` and `_f16` (`GGML_F32_VEC_REDUCE`): four accumulators
    /// of sixteen lanes over `count`, a multiple of 64, reduced 0+2, 1+3, then by the halving tree.
    @inlinable @inline(__always)
    static func sumOfSteps64<Element: KernelElement>(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Element>, count: Int
    ) -> Float {
        guard count > 0 else { return 0 }
        return VectorMath.sum(lanesOfSteps64(a, b, count: count))
    }

    /// `sumOfSteps64` before its halving tree: the four accumulators added 0+2, 1+3, then the
    /// two.
    @inlinable @inline(__always)
    static func lanesOfSteps64<Element: KernelElement>(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Element>, count: Int
    ) -> SIMD16<Float> {
        var sum0 = SIMD16<Float>()
        var sum1 = SIMD16<Float>()
        var sum2 = SIMD16<Float>()
        var sum3 = SIMD16<Float>()
        var i = 0
        while i < count {
            sum0 = sum0.addingProduct(load16(a + i), Element.load16(b + i))
            sum1 = sum1.addingProduct(load16(a + i + 16), Element.load16(b + i + 16))
            sum2 = sum2.addingProduct(load16(a + i + 32), Element.load16(b + i + 32))
            sum3 = sum3.addingProduct(load16(a + i + 48), Element.load16(b + i + 48))
            i += 64
        }
        return (sum0 + sum2) + (sum1 + sum3)
    }

    /// `scores[p] = dotF16(query, key(p), count: count) * scale` for p in 0..<positions, the
    /// same bits, the attention scores of one token against its cache.
    ///
    /// One `dotF16` of a 64-wide head ends in a halving tree over sixteen lanes that is longer
    /// than its multiply-adds. Here sixteen positions' trees run side by side: each level adds
    /// the same pairs of lanes as `VectorMath.sum` does within a position, after moving the
    /// halves of two positions into one vector, so the last level holds the sixteen sums in
    /// order. `count` a multiple of 64 (a head of 64 or 128); otherwise one `dotF16` each.
    @inlinable
    public static func dotsF16<Element: KernelElement>(
        _ query: UnsafePointer<Float>, count: Int, positions: Int,
        key: (Int) -> UnsafePointer<Element>, scale: Float,
        into scores: UnsafeMutablePointer<Float>
    ) {
        var position = 0
        if count % 64 == 0 {
            // The vector whose halving tree is position p's dot product.
            @inline(__always)
            func lanes(_ p: Int) -> SIMD16<Float> {
                lanesOfSteps64(query, key(p), count: count)
            }
            // Level 1, lane i + lane i+8: two positions, eight partial sums each.
            @inline(__always)
            func eights(_ p: Int) -> SIMD16<Float> {
                let a = lanes(p)
                let b = lanes(p + 1)
                return SIMD16(lowHalf: a.lowHalf, highHalf: b.lowHalf)
                    + SIMD16(lowHalf: a.highHalf, highHalf: b.highHalf)
            }
            // Level 2, i + i+4 within each eight: four positions, four sums each.
            @inline(__always)
            func fours(_ x: SIMD16<Float>, _ y: SIMD16<Float>) -> SIMD16<Float> {
                let low = SIMD16(
                    lowHalf: SIMD8(lowHalf: x.lowHalf.lowHalf, highHalf: x.highHalf.lowHalf),
                    highHalf: SIMD8(lowHalf: y.lowHalf.lowHalf, highHalf: y.highHalf.lowHalf))
                let high = SIMD16(
                    lowHalf: SIMD8(lowHalf: x.lowHalf.highHalf, highHalf: x.highHalf.highHalf),
                    highHalf: SIMD8(lowHalf: y.lowHalf.highHalf, highHalf: y.highHalf.highHalf))
                return low + high
            }
            // Level 3, i + i+2 within each four: eight positions, two sums each.
            @inline(__always)
            func twos(_ x: SIMD16<Float>, _ y: SIMD16<Float>) -> SIMD16<Float> {
                func pick(_ v: SIMD16<Float>, high: Bool) -> SIMD8<Float> {
                    let q0 = v.lowHalf.lowHalf
                    let q1 = v.lowHalf.highHalf
                    let q2 = v.highHalf.lowHalf
                    let q3 = v.highHalf.highHalf
                    return high
                        ? SIMD8(
                            lowHalf: SIMD4(lowHalf: q0.highHalf, highHalf: q1.highHalf),
                            highHalf: SIMD4(lowHalf: q2.highHalf, highHalf: q3.highHalf))
                        : SIMD8(
                            lowHalf: SIMD4(lowHalf: q0.lowHalf, highHalf: q1.lowHalf),
                            highHalf: SIMD4(lowHalf: q2.lowHalf, highHalf: q3.lowHalf))
                }
                return SIMD16(lowHalf: pick(x, high: false), highHalf: pick(y, high: false))
                    + SIMD16(lowHalf: pick(x, high: true), highHalf: pick(y, high: true))
            }

            while position + 16 <= positions {
                let p = position
                let x0 = fours(eights(p), eights(p + 2))
                let x1 = fours(eights(p + 4), eights(p + 6))
                let x2 = fours(eights(p + 8), eights(p + 10))
                let x3 = fours(eights(p + 12), eights(p + 14))
                let y0 = twos(x0, x1)
                let y1 = twos(x2, x3)
                // Level 4, lane 0 + lane 1 of each position: the sixteen dot products.
                let sums =
                    SIMD16(lowHalf: y0.evenHalf, highHalf: y1.evenHalf)
                    + SIMD16(lowHalf: y0.oddHalf, highHalf: y1.oddHalf)
                store16(sums * scale, scores + p)
                position += 16
            }
        }
        while position < positions {
            scores[position] = dotF16(query, key(position), count: count) * scale
            position += 1
        }
    }

    // MARK: - Attention values

    /// `[count] weights, count rows of [width] -> [width]`: `output[i] = sum_p weights[p] *
    /// row(p)[i]`, each sum formed like `dotLanes16` over p (tinyBLAS, as ggml multiplies the
    /// attention weights by the transposed values for two or more tokens). Position p goes to
    /// lane p % 16; `count` need not be a multiple of 16, since llama.cpp's KV view is padded
    /// with masked positions whose weight is 0. Weights and rows must be binary16 values, whose
    /// products are exact, so that the unfused `acc + w * v` equals ggml's FMA.
    ///
    /// - Parameter lanes: scratch of `16 * width` floats.
    @inlinable
    public static func weightedSumLanes16<Element: KernelElement>(
        _ weights: UnsafePointer<Float>, count: Int, width: Int,
        row: (Int) -> UnsafePointer<Element>, lanes: UnsafeMutablePointer<Float>,
        into output: UnsafeMutablePointer<Float>
    ) {
        accumulate(weights, count: count, width: width, laneCount: 16, row: row, lanes: lanes)
        halvingTree(lanes, laneCount: 16, width: width, into: output)
    }

    /// `weightedSumLanes16` formed like `dotF16` over p instead (`ggml_vec_dot_f16`, as ggml
    /// multiplies for one token): position p goes to lane p % 64, the row padded with zero
    /// weights to a multiple of 64 as llama.cpp's KV view (a multiple of 256) is, so no position
    /// is a leftover.
    ///
    /// - Parameter lanes: scratch of `64 * width` floats.
    @inlinable
    public static func weightedSumLanes64<Element: KernelElement>(
        _ weights: UnsafePointer<Float>, count: Int, width: Int,
        row: (Int) -> UnsafePointer<Element>, lanes: UnsafeMutablePointer<Float>,
        into output: UnsafeMutablePointer<Float>
    ) {
        accumulate(weights, count: count, width: width, laneCount: 64, row: row, lanes: lanes)

        // Accumulators 0+2 and 1+3 (16 lanes each), then the two, then the tree of 16.
        for lane in 0..<32 {
            add(lanes + (lane + 32) * width, into: lanes + lane * width, count: width)
        }
        for lane in 0..<16 {
            add(lanes + (lane + 16) * width, into: lanes + lane * width, count: width)
        }
        halvingTree(lanes, laneCount: 16, width: width, into: output)
    }

    /// `lanes[p % laneCount][i] += weights[p] * row(p)[i]` for p in order, after zeroing.
    @inlinable @inline(__always)
    static func accumulate<Element: KernelElement>(
        _ weights: UnsafePointer<Float>, count: Int, width: Int, laneCount: Int,
        row: (Int) -> UnsafePointer<Element>, lanes: UnsafeMutablePointer<Float>
    ) {
        lanes.initialize(repeating: 0, count: laneCount * width)
        for position in 0..<count {
            let weight = weights[position]
            let values = row(position)
            let lane = lanes + (position % laneCount) * width
            var i = 0
            while i + 16 <= width {
                store16(
                    load16(lane + i) + SIMD16(repeating: weight) * Element.load16(values + i),
                    lane + i)
                i += 16
            }
            while i < width {
                lane[i] += weight * values[i].float
                i += 1
            }
        }
    }

    /// The halving tree of `VectorMath.sum` applied across `laneCount` rows of `width`:
    /// `output[i]` is the tree's sum of `lanes[0..<laneCount][i]`. Overwrites `lanes`.
    @inlinable @inline(__always)
    static func halvingTree(
        _ lanes: UnsafeMutablePointer<Float>, laneCount: Int, width: Int,
        into output: UnsafeMutablePointer<Float>
    ) {
        var half = laneCount / 2
        while half >= 1 {
            for lane in 0..<half {
                add(lanes + (lane + half) * width, into: lanes + lane * width, count: width)
            }
            half /= 2
        }
        output.update(from: lanes, count: width)
    }

    /// Rounds every element to the nearest Float16, as storing it in an F16 tensor would.
    @inlinable
    public static func roundToHalf(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = Float(Float16(x[i])) }
    }

    // MARK: - Loads and stores

    @inlinable @inline(__always)
    static func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inlinable @inline(__always)
    static func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }
}

/// How the attention kernels read the rows they are given: Float, or Float16 as the KV cache
/// stores keys and values (half of Float's bytes, the values llama.cpp's F16 cache holds). A
/// binary16 widens to binary32 exactly, so a kernel gives the same bits on either.
public protocol KernelElement {
    /// Sixteen consecutive elements as floats.
    static func load16(_ p: UnsafePointer<Self>) -> SIMD16<Float>
    var float: Float { get }
}

extension Float: KernelElement {
    @inlinable @inline(__always)
    public static func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inlinable
    public var float: Float { self }
}

extension Float16: KernelElement {
    /// `vcvtph2ps` twice on x86 (F16C, part of the Haswell target): Swift's generic SIMD
    /// conversion compiled to a call per vector.
    @inlinable @inline(__always)
    public static func load16(_ p: UnsafePointer<Float16>) -> SIMD16<Float> {
        #if arch(x86_64)
            let raw = UnsafeRawPointer(p)
            let low = _mm256_cvtph_ps(raw.loadUnaligned(as: __m128i.self))
            let high = _mm256_cvtph_ps(raw.loadUnaligned(fromByteOffset: 16, as: __m128i.self))
            return SIMD16(lowHalf: low, highHalf: high)
        #else
            return SIMD16<Float>(UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float16>.self))
        #endif
    }

    @inlinable
    public var float: Float { Float(self) }
}
