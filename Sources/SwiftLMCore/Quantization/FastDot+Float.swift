#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

/// Fast dot kernels for the unquantized types, whose activations have the weights' own type.
///
/// F32 and F16 follow llama.cpp bit for bit, and it has two: `ggml_vec_dot_f32` / `_f16` for a
/// product with one activation row, llamafile's `tinyBLAS` (`llamafile_sgemm`) for two rows or
/// more, so each type has a plain and a `Batched` kernel (see `FloatKernels.dotF32`, `dotF16`
/// and `dotLanes16` for the order of operations). Products of two binary16 numbers are exact
/// in binary32, so for F16 fused and unfused multiply-adds agree. BF16 sums in two lanes of
/// binary32 and agrees with ggml (which uses AVX-512 BF16 instructions here) to rounding only.
extension FastDot {
    static func f32(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        FloatKernels.dotF32(
            weights.assumingMemoryBound(to: Float.self),
            activations.assumingMemoryBound(to: Float.self), count: count)
    }

    /// `tinyBLAS<16, __m512, __m512, float, float, float>`; `llamafile_sgemm` declines rows that
    /// are not whole vectors of 16, and ggml falls back to `ggml_vec_dot_f32`.
    static func f32Batched(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        guard count % 16 == 0 else { return f32(weights, activations, count) }
        return FloatKernels.dotLanes16(
            weights.assumingMemoryBound(to: Float.self),
            activations.assumingMemoryBound(to: Float.self), count: count)
    }

    /// `ggml_vec_dot_f16`: steps of 64 in four vectors of 16 lanes, leftovers in Double.
    static func f16(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        let stepped = count & ~63
        var sum0 = SIMD16<Float>()
        var sum1 = SIMD16<Float>()
        var sum2 = SIMD16<Float>()
        var sum3 = SIMD16<Float>()
        var i = 0
        while i < stepped {
            sum0 = sum0.addingProduct(halves(weights, i), halves(activations, i))
            sum1 = sum1.addingProduct(halves(weights, i + 16), halves(activations, i + 16))
            sum2 = sum2.addingProduct(halves(weights, i + 32), halves(activations, i + 32))
            sum3 = sum3.addingProduct(halves(weights, i + 48), halves(activations, i + 48))
            i += 64
        }

        var sum = Double(VectorMath.sum((sum0 + sum2) + (sum1 + sum3)))
        while i < count {
            sum += Double(weights.loadHalf(at: 2 * i) * activations.loadHalf(at: 2 * i))
            i += 1
        }
        return Float(sum)
    }

    /// `tinyBLAS<16, __m512, __m512, ggml_fp16_t, ggml_fp16_t, float>`, or `f16` for rows that
    /// are not whole vectors of 16.
    static func f16Batched(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        guard count % 16 == 0 else { return f16(weights, activations, count) }
        var sum = SIMD16<Float>()
        var i = 0
        while i < count {
            sum = sum.addingProduct(halves(weights, i), halves(activations, i))
            i += 16
        }
        return VectorMath.sum(sum)
    }

    /// The 16 binary16 numbers from element `index` of `pointer` on, as floats (exact).
    @inline(__always)
    static func halves(_ pointer: UnsafeRawPointer, _ index: Int) -> SIMD16<Float> {
        #if arch(x86_64)
            let low = pointer.loadUnaligned(fromByteOffset: 2 * index, as: __m128i.self)
            let high = pointer.loadUnaligned(fromByteOffset: 2 * index + 16, as: __m128i.self)
            return SIMD16(lowHalf: _mm256_cvtph_ps(low), highHalf: _mm256_cvtph_ps(high))
        #else
            func four(_ offset: Int) -> SIMD4<Float> {
                let bits = pointer.loadUnaligned(
                    fromByteOffset: 2 * (index + offset), as: SIMD4<UInt16>.self)
                return floats(fromHalves: SIMD4(truncatingIfNeeded: bits))
            }
            return SIMD16(
                lowHalf: SIMD8(lowHalf: four(0), highHalf: four(4)),
                highHalf: SIMD8(lowHalf: four(8), highHalf: four(12)))
        #endif
    }

    static func bf16(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        var sum0 = SIMD4<Float>()
        var sum1 = SIMD4<Float>()
        var i = 0

        // A bfloat16 is the top half of a binary32: shift the even halves up, mask the odd ones.
        while i + 8 <= count {
            let w = weights.loadUnaligned(fromByteOffset: 2 * i, as: SIMD4<UInt32>.self)
            let a = activations.loadUnaligned(fromByteOffset: 2 * i, as: SIMD4<UInt32>.self)
            sum0 += floats(bits: w &<< 16) * floats(bits: a &<< 16)
            sum1 += floats(bits: w & 0xFFFF_0000) * floats(bits: a & 0xFFFF_0000)
            i += 8
        }

        var tail: Float = 0
        while i < count {
            let w = HalfPrecision.float(fromBFloat: weights.loadUInt16(at: 2 * i))
            tail += w * HalfPrecision.float(fromBFloat: activations.loadUInt16(at: 2 * i))
            i += 1
        }
        return (sum0 + sum1).sum() + tail
    }

    @inline(__always)
    static func floats(bits: SIMD4<UInt32>) -> SIMD4<Float> {
        unsafeBitCast(bits, to: SIMD4<Float>.self)
    }

    /// Four binary16 numbers, one in the low 16 bits of each lane, as floats: the lane-wise form
    /// of `HalfPrecision.float(fromHalf:)`.
    ///
    /// On x86 it is written with SSE2 intrinsics: spelled with Swift's SIMD operators, LLVM
    /// scalarizes half of it (and the comparison `.>=` becomes a loop over lanes), which made the
    /// kernel slower than the scalar reference.
    @inline(__always)
    static func floats(fromHalves halves: SIMD4<UInt32>) -> SIMD4<Float> {
        #if arch(x86_64)
            let bits = unsafeBitCast(halves, to: __m128i.self)
            let magnitude = _mm_slli_epi32(_mm_and_si128(bits, _mm_set1_epi32(0x7FFF)), 13)
            let sign = _mm_slli_epi32(_mm_and_si128(bits, _mm_set1_epi32(0x8000)), 16)
            let scaled = _mm_mul_ps(_mm_castsi128_ps(magnitude), _mm_set1_ps(0x1p112))
            let special = _mm_cmpgt_epi32(magnitude, _mm_set1_epi32(0x0F7F_FFFF))
            let infinityOrNaN = _mm_or_si128(magnitude, _mm_set1_epi32(0x7F80_0000))
            let value = _mm_or_si128(
                _mm_andnot_si128(special, _mm_castps_si128(scaled)),
                _mm_and_si128(special, infinityOrNaN))
            return unsafeBitCast(_mm_or_si128(value, sign), to: SIMD4<Float>.self)
        #else
            let magnitude = (halves & 0x7FFF) &<< 13
            let sign = (halves & 0x8000) &<< 16
            let scaled = floats(bits: magnitude) * Float(bitPattern: 0x7780_0000)
            let special = 0 &- (((halves & 0x7C00) &+ 0x0400) &>> 15)
            let scaledBits = unsafeBitCast(scaled, to: SIMD4<UInt32>.self)
            let value = (scaledBits & ~special) | ((magnitude | 0x7F80_0000) & special)
            return floats(bits: value | sign)
        #endif
    }
}
