#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

/// The integer building blocks of the fast dot kernels.
///
/// A dot product does not care in which order it pairs elements, only that both operands pair
/// them alike. So instead of widening 16 bytes into 16 ordered `Int16` lanes (Swift's SIMD
/// conversion initializers are out-of-line calls that convert lane by lane), the kernels load the
/// bytes as 8 `Int16` lanes and split them with shifts into the even-indexed bytes and the
/// odd-indexed bytes, 8 lanes each: three shifts per 16 bytes, all native SSE2 / NEON operations.
///
/// The one operation Swift's SIMD types cannot express well is x86's `pmaddwd` (multiply 16-bit
/// lanes, add adjacent products into 32-bit lanes), on which every integer dot kernel of ggml's
/// x86 backend rests. `multiplyAdd` uses it through `_Builtin_intrinsics.intel`: it is SSE2,
/// part of the x86-64 baseline, so no compiler flags are needed. Measured on the Q8_0 and Q4_1
/// kernels it is twice as fast as the best plain-SIMD spelling, which LLVM lowers to `pmullw` and
/// `pmulhw` plus shuffles.
enum SIMDPairs {
    /// Lane i of the result is a[2i] * b[2i] + a[2i + 1] * b[2i + 1], exact in 32 bits. Overflows
    /// only when all four inputs are -32768, which no kernel here produces.
    @inline(__always)
    static func multiplyAdd(_ a: SIMD8<Int16>, _ b: SIMD8<Int16>) -> SIMD4<Int32> {
        #if arch(x86_64)
            let product = _mm_madd_epi16(
                unsafeBitCast(a, to: __m128i.self), unsafeBitCast(b, to: __m128i.self))
            return unsafeBitCast(product, to: SIMD4<Int32>.self)
        #else
            let a32 = unsafeBitCast(a, to: SIMD4<Int32>.self)
            let b32 = unsafeBitCast(b, to: SIMD4<Int32>.self)
            let even = ((a32 &<< 16) &>> 16) &* ((b32 &<< 16) &>> 16)
            return even &+ (a32 &>> 16) &* (b32 &>> 16)
        #endif
    }

    /// 16 signed bytes at `pointer + offset`, split into the even-indexed and the odd-indexed
    /// ones, each sign-extended into 8 `Int16` lanes.
    @inline(__always)
    static func signedBytes(
        _ pointer: UnsafeRawPointer, at offset: Int
    ) -> (even: SIMD8<Int16>, odd: SIMD8<Int16>) {
        let words = pointer.loadUnaligned(fromByteOffset: offset, as: SIMD8<Int16>.self)
        return ((words &<< 8) &>> 8, words &>> 8)
    }

    /// 16 bytes at `pointer + offset` as 8 `Int16` lanes, each holding an even-indexed byte in its
    /// low half and the next odd-indexed byte in its high half (on a little-endian CPU, which is
    /// all Swift targets).
    @inline(__always)
    static func words(_ pointer: UnsafeRawPointer, at offset: Int) -> SIMD8<Int16> {
        pointer.loadUnaligned(fromByteOffset: offset, as: SIMD8<Int16>.self)
    }

    /// Nibble `index` (0 = bits 0-3 of the even byte, 1 = bits 4-7 of the even byte, 2 and 3 the
    /// same in the odd byte) of each lane of `words`, as a number 0...15.
    @inline(__always)
    static func nibble(_ words: SIMD8<Int16>, _ index: Int16) -> SIMD8<Int16> {
        (words &>> (4 * index)) & 0x0F
    }

    /// Adds the four lanes of `sums` to `accumulator` as floats, scaled by `scale`.
    @inline(__always)
    static func accumulate(
        _ sums: SIMD4<Int32>, scaledBy scale: Float, into accumulator: inout SIMD4<Float>
    ) {
        accumulator += SIMD4<Float>(sums) * scale
    }
}
