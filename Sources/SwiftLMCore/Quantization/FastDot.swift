/// Fast dot kernels, one per weight type, with the signature of `DotKernel`. Integer block sums
/// are exact and equal to `ReferenceDot`'s; the scaled block sums are added in four float lanes
/// (and, for the float types, in binary32 rather than binary64), so results differ from the
/// reference by rounding only.
///
/// They are built for the x86-64 baseline (SSE2), which is what `swift build` targets unless told
/// otherwise, from the `SIMDPairs` primitives; ggml's AVX2 kernels in
/// ggml-cpu/arch/x86/quants.c are the model for the block arithmetic. Block scales are read
/// through `HalfPrecision.table`.
enum FastDot {
    // MARK: - Q8_0 x Q8_0

    /// 32 weights q in -128...127 against 32 activations: 4 lanes of partial sums.
    @inline(__always)
    static func q8_0Sums(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer) -> SIMD4<Int32> {
        let (w0, w1) = SIMDPairs.signedBytes(w, at: BlockLayout.Q8_0.qs)
        let (w2, w3) = SIMDPairs.signedBytes(w, at: BlockLayout.Q8_0.qs + 16)
        let (a0, a1) = SIMDPairs.signedBytes(a, at: BlockLayout.Q8_0.qs)
        let (a2, a3) = SIMDPairs.signedBytes(a, at: BlockLayout.Q8_0.qs + 16)
        return SIMDPairs.multiplyAdd(w0, a0) &+ SIMDPairs.multiplyAdd(w1, a1)
            &+ SIMDPairs.multiplyAdd(w2, a2) &+ SIMDPairs.multiplyAdd(w3, a3)
    }

    static func q8_0(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        assert(count % 32 == 0)
        let half = HalfPrecision.table
        var accumulator = SIMD4<Float>()
        var w = weights
        var a = activations

        for _ in 0..<(count / 32) {
            let sums = q8_0Sums(w, a)
            let scale = half[Int(w.loadUInt16(at: 0))] * half[Int(a.loadUInt16(at: 0))]
            SIMDPairs.accumulate(sums, scaledBy: scale, into: &accumulator)
            w += BlockLayout.Q8_0.bytes
            a += BlockLayout.Q8_0.bytes
        }
        return accumulator.sum()
    }

    // MARK: - Q4_0 x Q8_0

    /// 32 weights q - 8 (q a nibble) against 32 activations: 4 lanes of partial sums. Byte j of
    /// the weights holds elements j and j + 16, so its even-byte nibbles pair with the even
    /// activations of each half and its odd-byte nibbles with the odd ones.
    @inline(__always)
    static func q4_0Sums(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer) -> SIMD4<Int32> {
        let q = SIMDPairs.words(w, at: BlockLayout.Q4_0.qs)
        let (a0, a1) = SIMDPairs.signedBytes(a, at: BlockLayout.Q8_0.qs)
        let (a2, a3) = SIMDPairs.signedBytes(a, at: BlockLayout.Q8_0.qs + 16)
        let eight = SIMD8<Int16>(repeating: 8)
        return SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 0) &- eight, a0)
            &+ SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 2) &- eight, a1)
            &+ SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 1) &- eight, a2)
            &+ SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 3) &- eight, a3)
    }

    static func q4_0(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        assert(count % 32 == 0)
        let half = HalfPrecision.table
        var accumulator = SIMD4<Float>()
        var w = weights
        var a = activations

        for _ in 0..<(count / 32) {
            let sums = q4_0Sums(w, a)
            let scale = half[Int(w.loadUInt16(at: 0))] * half[Int(a.loadUInt16(at: 0))]
            SIMDPairs.accumulate(sums, scaledBy: scale, into: &accumulator)
            w += BlockLayout.Q4_0.bytes
            a += BlockLayout.Q8_0.bytes
        }
        return accumulator.sum()
    }

    // MARK: - Q4_1 x Q8_1

    /// 32 weights q (a nibble, 0...15) against 32 activations, paired as in `q4_0Sums`.
    @inline(__always)
    static func q4_1Sums(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer) -> SIMD4<Int32> {
        let q = SIMDPairs.words(w, at: BlockLayout.Q4_1.qs)
        let (a0, a1) = SIMDPairs.signedBytes(a, at: BlockLayout.Q8_1.qs)
        let (a2, a3) = SIMDPairs.signedBytes(a, at: BlockLayout.Q8_1.qs + 16)
        return SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 0), a0)
            &+ SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 2), a1)
            &+ SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 1), a2)
            &+ SIMDPairs.multiplyAdd(SIMDPairs.nibble(q, 3), a3)
    }

    /// sum over blocks of dw * da * sum(qw * qa) + mw * sa, with the offsets summed apart as in
    /// ggml's AVX2 `ggml_vec_dot_q4_1_q8_1`.
    static func q4_1(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        assert(count % 32 == 0)
        let half = HalfPrecision.table
        var accumulator = SIMD4<Float>()
        var offsets: Float = 0
        var w = weights
        var a = activations

        for _ in 0..<(count / 32) {
            let sums = q4_1Sums(w, a)
            let dw = half[Int(w.loadUInt16(at: BlockLayout.Q4_1.d))]
            let mw = half[Int(w.loadUInt16(at: BlockLayout.Q4_1.m))]
            let da = half[Int(a.loadUInt16(at: BlockLayout.Q8_1.d))]
            let sa = half[Int(a.loadUInt16(at: BlockLayout.Q8_1.s))]
            SIMDPairs.accumulate(sums, scaledBy: dw * da, into: &accumulator)
            offsets += mw * sa
            w += BlockLayout.Q4_1.bytes
            a += BlockLayout.Q8_1.bytes
        }
        return accumulator.sum() + offsets
    }
}
