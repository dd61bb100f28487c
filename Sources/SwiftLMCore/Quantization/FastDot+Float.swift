#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

/// Fast dot kernels for the unquantized types, whose activations have the weights' own type.
/// They multiply and add in binary32 across 16 lanes (ggml's AVX kernels in ggml-cpu/vec.cpp do
/// the same with FMA; the x86-64 baseline has none, and Swift never fuses on its own).
extension FastDot {
    static func f32(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        var sum0 = SIMD8<Float>()
        var sum1 = SIMD8<Float>()
        var i = 0

        while i + 16 <= count {
            let w0 = weights.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            let w1 = weights.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self)
            let a0 = activations.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            let a1 = activations.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self)
            sum0 += w0 * a0
            sum1 += w1 * a1
            i += 16
        }

        var tail: Float = 0
        while i < count {
            let w = weights.load(fromByteOffset: 4 * i, as: Float.self)
            tail += w * activations.load(fromByteOffset: 4 * i, as: Float.self)
            i += 1
        }
        return (sum0 + sum1).sum() + tail
    }

    static func f16(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        var sum0 = SIMD4<Float>()
        var sum1 = SIMD4<Float>()
        var i = 0

        // 8 halves load as 4 words of 32 bits; even and odd halves convert separately.
        while i + 8 <= count {
            let w = weights.loadUnaligned(fromByteOffset: 2 * i, as: SIMD4<UInt32>.self)
            let a = activations.loadUnaligned(fromByteOffset: 2 * i, as: SIMD4<UInt32>.self)
            sum0 += floats(fromHalves: w & 0xFFFF) * floats(fromHalves: a & 0xFFFF)
            sum1 += floats(fromHalves: w &>> 16) * floats(fromHalves: a &>> 16)
            i += 8
        }

        var tail: Float = 0
        while i < count {
            tail += weights.loadHalf(at: 2 * i) * activations.loadHalf(at: 2 * i)
            i += 1
        }
        return (sum0 + sum1).sum() + tail
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
