/// Lane-wise building blocks that reproduce the float arithmetic of llama.cpp's x86 CPU kernels
/// exactly: its horizontal sums and its vectorized exponential.
///
/// Float addition is not associative, so a sum of products depends on which lane accumulates
/// which term and on the tree that adds the lanes at the end. ggml's SIMD kernels fix both, and a
/// rounding flipped here is enough to quantize an activation one step differently downstream.
/// These functions follow the AVX-512 build of ggml-cpu (what `GGML_NATIVE` gives on this
/// project's machines) operation for operation; `ReferenceFloatKernels` has scalar twins.
public enum VectorMath {
    /// The sum of 8 lanes by halving: `(v0+v4 + v2+v6) + (v1+v5 + v3+v7)`, the tree of ggml's
    /// `hsum_float_8` (ggml-cpu/arch/x86/quants.c) and of llamafile's `hsum(__m256)`.
    @inlinable @inline(__always)
    public static func sum(_ v: SIMD8<Float>) -> Float {
        let four = v.lowHalf + v.highHalf
        let two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }

    /// The sum of 16 lanes by halving, the tree of GCC's `_mm512_reduce_add_ps`, which ends
    /// every AVX-512 kernel of ggml (`GGML_F32x16_REDUCE`, llamafile's `hsum(__m512)`).
    @inlinable @inline(__always)
    public static func sum(_ v: SIMD16<Float>) -> Float {
        sum(v.lowHalf + v.highHalf)
    }

    /// e^x per lane: ggml's `ggml_v_expf` for `__m512` (ggml-cpu/vec.h), adapted there from Arm's
    /// optimized routines. x = n ln 2 + b with n = round(x / ln 2), a degree-5 polynomial in b,
    /// then a scale by 2^n. Within 1.5 ulp of e^x; beyond |n| > 192 the result is 0 or infinity,
    /// so -infinity (a masked score) gives 0. Every multiply-add is fused, as in ggml.
    @inlinable @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        typealias V = SIMD16<Float>
        let (j, z, n) = reducedExp(x)
        let result = scaleByPowerOfTwo(j, z: z)

        // Far outside the range the polynomial and the scale overflow; ggml blends in 0 or +inf.
        let outside = (n .> 192) .| (n .< -192)
        guard any(outside) else { return result }
        let limit = V(repeating: 0).replacing(with: .infinity, where: n .> 0)
        return result.replacing(with: limit, where: outside)
    }

    /// silu(x) = x / (1 + e^-x) per lane, ggml's `ggml_v_silu` for `__m512`.
    @inlinable @inline(__always)
    public static func silu(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let expNegative = exp(SIMD16(repeating: 0) - x)
        return x / (1 + expNegative)
    }

    /// j * 2^n, rounded once, for the n = z - 1.5 * 2^23 of `exp`: `_mm512_scalef_ps(j, n)`.
    ///
    /// z holds n in its low mantissa bits (the trick of ggml's `nearest_int`), so the exponent
    /// needs no float-to-integer conversion. 2^n is built from exponent bits; outside binary32's
    /// normal exponents (-126...127) the scale is split in two, so that the first product stays
    /// exact and only the second rounds (to a subnormal, zero or infinity), as scalef rounds.
    /// Lanes with |n| > 192 come out meaningless; `exp` replaces them.
    @inlinable @inline(__always)
    static func scaleByPowerOfTwo(_ j: SIMD16<Float>, z: SIMD16<Float>) -> SIMD16<Float> {
        let zBits = unsafeBitCast(z, to: SIMD16<Int32>.self)
        let n = (zBits & 0x7F_FFFF) &- 0x40_0000
        var split = SIMD16<Int32>(repeating: 0)
        split.replace(with: 100, where: n .< -126)
        split.replace(with: -100, where: n .> 127)
        let first = unsafeBitCast((n &+ split &+ 127) &<< 23, to: SIMD16<Float>.self)
        let second = unsafeBitCast((127 &- split) &<< 23, to: SIMD16<Float>.self)
        return j * first * second
    }

    /// e^x per lane for x ≤ 0 (a little above 0 is fine too): within 1.5 ulp of e^x down to
    /// x = -87, and e^-87 ≈ 1.6e-38 below, nothing next to a softmax sum of at least 1.
    ///
    /// The range reduction and degree-5 polynomial of `VectorMath.exp` (ggml's `ggml_v_expf`,
    /// from Arm's optimized routines): x = n ln 2 + b, e^b by the polynomial, times 2^n made
    /// from exponent bits. `VectorMath.exp` also rounds results outside binary32's normal range
    /// exactly as AVX-512's `scalef` does, which it needs to match ggml bit for bit; the masked
    /// Int32 lane updates that this takes compiled to per-lane code through the stack, and
    /// were half the tiled attention's forward time when it called `VectorMath.exp`. Clamping
    /// x is enough here. Used by the tiled attention and the Performer feature map.
    @inlinable @inline(__always)
    public static func clampedExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        typealias V = SIMD16<Float>
        let x = x.replacing(with: V(repeating: -87), where: x .< -87)

        let (j, z, _) = reducedExp(x)

        // 2^n: n + 127 into the exponent field. The mantissa of z holds 2^22 + n; the bits above
        // it shift out of the word.
        let zBits = unsafeBitCast(z, to: SIMD16<Int32>.self)
        return j * unsafeBitCast((zBits &+ (127 &- 0x40_0000)) &<< 23, to: V.self)
    }

    /// The part of e^x that `exp` and `clampedExp` share (ggml's `ggml_v_expf`): x = n ln 2 + b
    /// with n = round(x / ln 2), and e^b by a degree-5 polynomial, `j`. `z` = 1.5 · 2^23 + n:
    /// adding the shift rounds x / ln 2 to the integer n, which lands in z's low mantissa bits.
    @inlinable @inline(__always)
    static func reducedExp(
        _ x: SIMD16<Float>
    ) -> (j: SIMD16<Float>, z: SIMD16<Float>, n: SIMD16<Float>) {
        typealias V = SIMD16<Float>
        let shift = V(repeating: 0x1.8p23)
        let z = shift.addingProduct(x, V(repeating: 0x1.715476p+0))
        let n = z - shift
        let b = x.addingProduct(-n, V(repeating: 0x1.62e4p-1))
            .addingProduct(-n, V(repeating: 0x1.7f7d1cp-20))
        let u = b * b
        let high = V(repeating: 0x1.573e2ep-5).addingProduct(V(repeating: 0x1.0e4020p-7), b)
        let middle = V(repeating: 0x1.fffdb6p-2).addingProduct(V(repeating: 0x1.555e66p-3), b)
        let low = V(repeating: 1).addingProduct(V(repeating: 0x1.ffffecp-1), b)
        return (low.addingProduct(middle.addingProduct(high, u), u), z, n)
    }
}
