/// Fast dot kernels for the K-quants against Q8_K activations. Per super-block of 256 the
/// sub-block scales multiply the weights in 16 bits (`pmullw`; products stay under 2^13), so one
/// `multiplyAdd` per 16 elements yields the scaled integer sum, kept exact in 4 lanes of 32 bits
/// and converted to float once per super-block.
extension FastDot {
    // MARK: - Q4_K x Q8_K

    static func q4_K(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        assert(count % 256 == 0)
        let half = HalfPrecision.table
        var accumulator = SIMD4<Float>()
        var minTerms: Float = 0
        var w = weights
        var a = activations

        for _ in 0..<(count / 256) {
            let packed = KQuantScales(w + BlockLayout.Q4_K.scales)
            var sums = SIMD4<Int32>()

            // Sub-blocks 2p and 2p + 1 share the 32 bytes of qs at 32p: low and high nibbles.
            for pair in 0..<4 {
                let low = SIMD8<Int16>(repeating: Int16(packed.scales[2 * pair]))
                let high = SIMD8<Int16>(repeating: Int16(packed.scales[2 * pair + 1]))
                let qa = a + BlockLayout.Q8_K.qs + 64 * pair

                for part in 0..<2 {
                    let q = SIMDPairs.words(w, at: BlockLayout.Q4_K.qs + 32 * pair + 16 * part)
                    let (a0, a1) = SIMDPairs.signedBytes(qa, at: 16 * part)
                    let (a2, a3) = SIMDPairs.signedBytes(qa, at: 32 + 16 * part)
                    sums &+= SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 0) &* low, a0)
                    sums &+= SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 2) &* low, a1)
                    sums &+= SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 1) &* high, a2)
                    sums &+= SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 3) &* high, a3)
                }
            }

            let da = ReferenceDot.loadQ8KScale(a)
            let d = half[Int(w.loadUInt16(at: BlockLayout.Q4_K.d))] * da
            let dmin = half[Int(w.loadUInt16(at: BlockLayout.Q4_K.dmin))] * da
            SIMDPairs.accumulate(sums, scaledBy: d, into: &accumulator)
            minTerms += dmin * Float(KQuantLaneSums.minsTotal(packed, activations: a))
            w += BlockLayout.Q4_K.bytes
            a += BlockLayout.Q8_K.bytes
        }
        return accumulator.sum() - minTerms
    }

    // MARK: - Q5_K x Q8_K

    static func q5_K(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        assert(count % 256 == 0)
        let half = HalfPrecision.table
        var accumulator = SIMD4<Float>()
        var minTerms: Float = 0
        var w = weights
        var a = activations

        for _ in 0..<(count / 256) {
            let packed = KQuantScales(w + BlockLayout.Q5_K.scales)
            var sums = SIMD4<Int32>()

            for pair in 0..<4 {
                let low = SIMD8<Int16>(repeating: Int16(packed.scales[2 * pair]))
                let high = SIMD8<Int16>(repeating: Int16(packed.scales[2 * pair + 1]))
                let qa = a + BlockLayout.Q8_K.qs + 64 * pair

                for part in 0..<2 {
                    let q = SIMDPairs.words(w, at: BlockLayout.Q5_K.qs + 32 * pair + 16 * part)
                    let h = SIMDPairs.words(w, at: BlockLayout.Q5_K.qh + 16 * part)
                    let (a0, a1) = SIMDPairs.signedBytes(qa, at: 16 * part)
                    let (a2, a3) = SIMDPairs.signedBytes(qa, at: 32 + 16 * part)

                    // The fifth bit of each sub-block is bit 2p (2p + 1) of the even byte of
                    // each qh word, and bit 8 + 2p (8 + 2p + 1) for the odd byte.
                    let bit = Int16(2 * pair)
                    let q0 = SIMDPairs.nibble(q, 0) | (((h &>> bit) & 1) &<< 4)
                    let q1 = SIMDPairs.nibble(q, 2) | (((h &>> (bit + 8)) & 1) &<< 4)
                    let q2 = SIMDPairs.nibble(q, 1) | (((h &>> (bit + 1)) & 1) &<< 4)
                    let q3 = SIMDPairs.nibble(q, 3) | (((h &>> (bit + 9)) & 1) &<< 4)
                    sums &+= SIMDPairs.multiplyAdd(q0 &* low, a0)
                    sums &+= SIMDPairs.multiplyAdd(q1 &* low, a1)
                    sums &+= SIMDPairs.multiplyAdd(q2 &* high, a2)
                    sums &+= SIMDPairs.multiplyAdd(q3 &* high, a3)
                }
            }

            let da = ReferenceDot.loadQ8KScale(a)
            let d = half[Int(w.loadUInt16(at: BlockLayout.Q5_K.d))] * da
            let dmin = half[Int(w.loadUInt16(at: BlockLayout.Q5_K.dmin))] * da
            SIMDPairs.accumulate(sums, scaledBy: d, into: &accumulator)
            minTerms += dmin * Float(KQuantLaneSums.minsTotal(packed, activations: a))
            w += BlockLayout.Q5_K.bytes
            a += BlockLayout.Q8_K.bytes
        }
        return accumulator.sum() - minTerms
    }

    // MARK: - Q6_K x Q8_K

    /// Weights are sc * (q - 32) with q in 0...63. The kernel multiplies sc * q and subtracts
    /// 32 * sum(sc * bsum) once per super-block, as ggml's AVX2 kernel does: Q8_K's per-16 sums
    /// line up with Q6_K's sub-blocks of 16.
    static func q6_K(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        assert(count % 256 == 0)
        let half = HalfPrecision.table
        var accumulator = SIMD4<Float>()
        var w = weights
        var a = activations

        for _ in 0..<(count / 256) {
            var sums = SIMD4<Int32>()
            for part in 0..<2 {
                sums &+= q6_KHalfSums(w, a, part: part)
            }

            let d = half[Int(w.loadUInt16(at: BlockLayout.Q6_K.d))] * ReferenceDot.loadQ8KScale(a)
            let offset = SIMD4<Int32>(32 * q6_KScaledActivationSum(w, a), 0, 0, 0)
            SIMDPairs.accumulate(sums &- offset, scaledBy: d, into: &accumulator)
            w += BlockLayout.Q6_K.bytes
            a += BlockLayout.Q8_K.bytes
        }
        return accumulator.sum()
    }

    /// sum of sc * q * a over one 128-element half of a Q6_K super-block, q unsigned 0...63.
    @inline(__always)
    static func q6_KHalfSums(
        _ w: UnsafeRawPointer, _ a: UnsafeRawPointer, part: Int
    ) -> SIMD4<Int32> {
        let ql = BlockLayout.Q6_K.ql + 64 * part
        let qh = BlockLayout.Q6_K.qh + 32 * part
        let qa = a + BlockLayout.Q8_K.qs + 128 * part
        var sums = SIMD4<Int32>()

        @inline(__always) func scale(_ group: Int) -> SIMD8<Int16> {
            let offset = BlockLayout.Q6_K.scales + 8 * part + group
            return SIMD8<Int16>(repeating: Int16(w.load(fromByteOffset: offset, as: Int8.self)))
        }

        // Elements l, l + 32, l + 64, l + 96 of the half for l in 16c..<16c + 16: low and high
        // nibbles of ql[l] and ql[l + 32], and bit pairs 0-1, 2-3, 4-5, 6-7 of qh[l].
        for chunk in 0..<2 {
            let low0 = SIMDPairs.words(w, at: ql + 16 * chunk)
            let low1 = SIMDPairs.words(w, at: ql + 32 + 16 * chunk)
            let h = SIMDPairs.words(w, at: qh + 16 * chunk)

            @inline(__always) func highBits(_ shift: Int16) -> SIMD8<Int16> {
                ((h &>> shift) & 3) &<< 4
            }

            @inline(__always) func add(_ even: SIMD8<Int16>, _ odd: SIMD8<Int16>, group: Int) {
                let sc = scale(group + chunk)
                let (a0, a1) = SIMDPairs.signedBytes(qa, at: 16 * group + 16 * chunk)
                sums &+= SIMDPairs.multiplyAdd(even &* sc, a0)
                sums &+= SIMDPairs.multiplyAdd(odd &* sc, a1)
            }

            add(
                SIMDPairs.nibble(low0, 0) | highBits(0), SIMDPairs.nibble(low0, 2) | highBits(8),
                group: 0)
            add(
                SIMDPairs.nibble(low1, 0) | highBits(2), SIMDPairs.nibble(low1, 2) | highBits(10),
                group: 2)
            add(
                SIMDPairs.nibble(low0, 1) | highBits(4), SIMDPairs.nibble(low0, 3) | highBits(12),
                group: 4)
            add(
                SIMDPairs.nibble(low1, 1) | highBits(6), SIMDPairs.nibble(low1, 3) | highBits(14),
                group: 6)
        }
        return sums
    }

    /// sum over the 16 sub-blocks of scales[j] * bsums[j].
    @inline(__always)
    static func q6_KScaledActivationSum(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer) -> Int32 {
        var total: Int32 = 0
        for j in 0..<16 {
            let scale = Int32(w.load(fromByteOffset: BlockLayout.Q6_K.scales + j, as: Int8.self))
            let bsum = Int16(
                littleEndian: a.loadUnaligned(
                    fromByteOffset: BlockLayout.Q8_K.bsums + 2 * j, as: Int16.self))
            total &+= scale &* Int32(bsum)
        }
        return total
    }
}
