#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

/// The integer building blocks of the fast dot kernels.
///
/// A dot product does not care in which order it pairs elements, only that both operands pair
/// them alike. So instead of widening 16 bytes into 16 ordered `Int16` lanes (which Swift's SIMD
/// conversions do element by element), the kernels load the bytes as 8 `Int16` lanes and split
/// them with shifts into the even-indexed bytes and the odd-indexed bytes, 8 lanes each. Two
/// shifts per 16 bytes, all of them native SSE2 / NEON operations.
///
/// The one operation Swift's SIMD types cannot express well is x86's `pmaddwd` (multiply 16-bit
/// lanes, add adjacent products into 32-bit lanes), on which every integer dot kernel of ggml's
/// x86 backend rests. `multiplyAdd` uses it through `_Builtin_intrinsics.intel`: the 128-bit form
/// is SSE2, the 256-bit form AVX2, which the package's Haswell target provides. Measured on the
/// Q8_0 and Q4_1 kernels the 128-bit form was twice as fast as the best plain-SIMD spelling,
/// which LLVM lowers to `pmullw` and `pmulhw` plus shuffles.
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

    // MARK: - Whole 32-element blocks

    /// Lane k of the result is sum over i in 4k..<4k + 4 of a[i] * b[i], for the 32 signed bytes
    /// of a block that `a` and `b` hold in element order (`Int16` lane m holds elements 2m and
    /// 2m + 1): the eight integer sums on which ggml's x86 block kernels do their float
    /// arithmetic (`mul_sum_i8_pairs_float`, `_mm256_dpbusd_epi32` on this machine). Split into
    /// even and odd bytes, a pair-wise multiply-add gives elements 4k and 4k + 2 in lane k, and
    /// another 4k + 1 and 4k + 3. Exact for all bytes.
    @inline(__always)
    static func blockSums(_ a: SIMD16<Int16>, _ b: SIMD16<Int16>) -> SIMD8<Int32> {
        multiplyAdd((a &<< 8) &>> 8, (b &<< 8) &>> 8) &+ multiplyAdd(a &>> 8, b &>> 8)
    }

    /// Lane i of the result is a[2i] * b[2i] + a[2i + 1] * b[2i + 1]: `pmaddwd` on 256 bits.
    @inline(__always)
    static func multiplyAdd(_ a: SIMD16<Int16>, _ b: SIMD16<Int16>) -> SIMD8<Int32> {
        #if arch(x86_64)
            let product = _mm256_madd_epi16(
                unsafeBitCast(a, to: __m256i.self), unsafeBitCast(b, to: __m256i.self))
            return unsafeBitCast(product, to: SIMD8<Int32>.self)
        #else
            let low = multiplyAdd(a.lowHalf, b.lowHalf)
            let high = multiplyAdd(a.highHalf, b.highHalf)
            return SIMD8(lowHalf: low, highHalf: high)
        #endif
    }

    /// `SIMD8<Float>(sums)`, rounded to nearest as that conversion rounds, spelled as the one
    /// instruction it is: inside the tile kernels' nested functions the generic conversion
    /// was not specialized and cost a fifth of a serving step.
    @inline(__always)
    static func floats(_ sums: SIMD8<Int32>) -> SIMD8<Float> {
        #if arch(x86_64)
            _mm256_cvtepi32_ps(unsafeBitCast(sums, to: __m256i.self))
        #else
            SIMD8<Float>(sums)
        #endif
    }

    /// The 32 bytes at `pointer + offset` as 16 `Int16` lanes.
    @inline(__always)
    static func blockWords(_ pointer: UnsafeRawPointer, at offset: Int) -> SIMD16<Int16> {
        pointer.loadUnaligned(fromByteOffset: offset, as: SIMD16<Int16>.self)
    }

    /// The 32 nibbles of the 16 bytes at `pointer + offset` in element order, one per byte
    /// (ggml's `bytes_from_nibbles_32`): the low nibbles are elements 0...15, the high ones
    /// 16...31.
    @inline(__always)
    static func nibbleWords(_ pointer: UnsafeRawPointer, at offset: Int) -> SIMD16<Int16> {
        let bytes = pointer.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt8>.self)
        let elements = SIMD32(lowHalf: bytes & 0x0F, highHalf: bytes &>> 4)
        return unsafeBitCast(elements, to: SIMD16<Int16>.self)
    }

    /// `blockSums` for nibbles from `nibbleWords` less `bias` (8 for Q4_0, as ggml's
    /// `_mm256_sub_epi8`), against signed bytes. The bias is taken off in 16-bit lanes: Swift's
    /// wrapping subtraction on 32 bytes compiles to a loop over bytes.
    @inline(__always)
    static func nibbleSums(
        _ nibbles: SIMD16<Int16>, _ b: SIMD16<Int16>, bias: Int16
    ) -> SIMD8<Int32> {
        let even = (nibbles & 0x00FF) &- bias
        let odd = (nibbles &>> 8) &- bias
        return multiplyAdd(even, (b &<< 8) &>> 8) &+ multiplyAdd(odd, b &>> 8)
    }

    /// Adds the four lanes of `sums` to `accumulator` as floats, scaled by `scale`.
    @inline(__always)
    static func accumulate(
        _ sums: SIMD4<Int32>, scaledBy scale: Float, into accumulator: inout SIMD4<Float>
    ) {
        accumulator += SIMD4<Float>(sums) * scale
    }
}
