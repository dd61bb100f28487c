extension FastDot {
    /// Q4_1 × Q8_1 for four weight rows and every activation row, two activation rows at a
    /// time (`TileKernel`), in plain SIMD (AVX2 on x86-64): where no VNNI tile runs, the
    /// batched products of prefill and of a serving step use it.
    ///
    /// Row by row, each dot product unpacks its weight block's nibbles and splits its
    /// activation block into even and odd bytes, about half of its instructions. Here a block
    /// of four weight rows is unpacked once for two activation rows, and each activation block
    /// split once for four weight rows, and the eight pairs make eight independent chains.
    /// Each pair still takes `q4_1`'s integer sums and its float operations in its order, so
    /// every result has `q4_1`'s bits (a test holds them together).
    static let tileQ4_1: TileKernel = {
        weights, weightRowBytes, activations, activationRowBytes, rowCount, count, output,
        outputStride in
        var row = 0
        while row < rowCount {
            // An odd last row runs beside itself; only its first copy is written.
            let second = min(row + 1, rowCount - 1)
            q4_1Tile(
                weights, weightRowBytes, activations + row * activationRowBytes,
                activations + second * activationRowBytes, count: count,
                output + row * outputStride, second > row ? output + second * outputStride : nil)
            row += 2
        }
    }

    /// Four weight rows × two activation rows `a0`, `a1`, into `y0[0..<4]` and `y1[0..<4]`.
    @inline(__always)
    private static func q4_1Tile(
        _ weights: UnsafeRawPointer, _ weightRowBytes: Int, _ a0: UnsafeRawPointer,
        _ a1: UnsafeRawPointer, count: Int, _ y0: UnsafeMutablePointer<Float>,
        _ y1: UnsafeMutablePointer<Float>?
    ) {
        let half = HalfPrecision.table
        // Pair (weight row i, activation row r) accumulates in `l{i}{r}` and in lane 2i + r
        // of `offsets`. Named variables, not arrays, so that they stay in registers.
        var l00 = SIMD8<Float>()
        var l01 = SIMD8<Float>()
        var l10 = SIMD8<Float>()
        var l11 = SIMD8<Float>()
        var l20 = SIMD8<Float>()
        var l21 = SIMD8<Float>()
        var l30 = SIMD8<Float>()
        var l31 = SIMD8<Float>()
        var offsets = SIMD8<Float>()

        for block in 0..<(count / 32) {
            let wb = weights + block * BlockLayout.Q4_1.bytes
            let ab0 = a0 + block * BlockLayout.Q8_1.bytes
            let ab1 = a1 + block * BlockLayout.Q8_1.bytes
            let x0 = SIMDPairs.blockWords(ab0, at: BlockLayout.Q8_1.qs)
            let x1 = SIMDPairs.blockWords(ab1, at: BlockLayout.Q8_1.qs)
            let x0Even = (x0 &<< 8) &>> 8
            let x0Odd = x0 &>> 8
            let x1Even = (x1 &<< 8) &>> 8
            let x1Odd = x1 &>> 8
            let da0 = half[Int(ab0.loadUInt16(at: BlockLayout.Q8_1.d))]
            let da1 = half[Int(ab1.loadUInt16(at: BlockLayout.Q8_1.d))]
            let sa0 = half[Int(ab0.loadUInt16(at: BlockLayout.Q8_1.s))]
            let sa1 = half[Int(ab1.loadUInt16(at: BlockLayout.Q8_1.s))]

            // One weight row against both activation rows; returns its block's `m`.
            @inline(__always)
            func row(
                _ i: Int, _ lane0: inout SIMD8<Float>, _ lane1: inout SIMD8<Float>
            ) -> Float {
                let w = wb + i * weightRowBytes
                let nibbles = SIMDPairs.nibbleWords(w, at: BlockLayout.Q4_1.qs)
                let even = nibbles & 0x00FF
                let odd = nibbles &>> 8
                let dw = half[Int(w.loadUInt16(at: BlockLayout.Q4_1.d))]
                let sums0 =
                    SIMDPairs.multiplyAdd(even, x0Even) &+ SIMDPairs.multiplyAdd(odd, x0Odd)
                let sums1 =
                    SIMDPairs.multiplyAdd(even, x1Even) &+ SIMDPairs.multiplyAdd(odd, x1Odd)
                lane0 = lane0.addingProduct(SIMD8(repeating: dw * da0), SIMDPairs.floats(sums0))
                lane1 = lane1.addingProduct(SIMD8(repeating: dw * da1), SIMDPairs.floats(sums1))
                return half[Int(w.loadUInt16(at: BlockLayout.Q4_1.m))]
            }
            let m0 = row(0, &l00, &l01)
            let m1 = row(1, &l10, &l11)
            let m2 = row(2, &l20, &l21)
            let m3 = row(3, &l30, &l31)

            // q4_1's `offsets.addingProduct(mw, sa)`, for the eight pairs at once.
            let mw = SIMD8(m0, m0, m1, m1, m2, m2, m3, m3)
            let sa = SIMD8(sa0, sa1, sa0, sa1, sa0, sa1, sa0, sa1)
            offsets = offsets.addingProduct(mw, sa)
        }

        let sums0 = SIMD4(
            VectorMath.sum(l00), VectorMath.sum(l10), VectorMath.sum(l20), VectorMath.sum(l30))
        let sums1 = SIMD4(
            VectorMath.sum(l01), VectorMath.sum(l11), VectorMath.sum(l21), VectorMath.sum(l31))
        for i in 0..<4 {
            y0[i] = sums0[i] + offsets[2 * i]
            y1?[i] = sums1[i] + offsets[2 * i + 1]
        }
    }
}

extension FastDot {
    /// Q8_0 × Q8_0 for four weight rows and every activation row, two at a time, as
    /// `tileQ4_1`: each weight block is split into even and odd bytes once for two activation
    /// rows and each activation block once for four weight rows. Every result has `q8_0`'s bits.
    static let tileQ8_0: TileKernel = {
        weights, weightRowBytes, activations, activationRowBytes, rowCount, count, output,
        outputStride in
        var row = 0
        while row < rowCount {
            let second = min(row + 1, rowCount - 1)
            q8_0Tile(
                weights, weightRowBytes, activations + row * activationRowBytes,
                activations + second * activationRowBytes, count: count,
                output + row * outputStride, second > row ? output + second * outputStride : nil)
            row += 2
        }
    }

    /// Four weight rows × two activation rows `a0`, `a1`, into `y0[0..<4]` and `y1[0..<4]`.
    @inline(__always)
    private static func q8_0Tile(
        _ weights: UnsafeRawPointer, _ weightRowBytes: Int, _ a0: UnsafeRawPointer,
        _ a1: UnsafeRawPointer, count: Int, _ y0: UnsafeMutablePointer<Float>,
        _ y1: UnsafeMutablePointer<Float>?
    ) {
        let half = HalfPrecision.table
        var l00 = SIMD8<Float>()
        var l01 = SIMD8<Float>()
        var l10 = SIMD8<Float>()
        var l11 = SIMD8<Float>()
        var l20 = SIMD8<Float>()
        var l21 = SIMD8<Float>()
        var l30 = SIMD8<Float>()
        var l31 = SIMD8<Float>()

        for block in 0..<(count / 32) {
            let wb = weights + block * BlockLayout.Q8_0.bytes
            let ab0 = a0 + block * BlockLayout.Q8_0.bytes
            let ab1 = a1 + block * BlockLayout.Q8_0.bytes
            let x0 = SIMDPairs.blockWords(ab0, at: BlockLayout.Q8_0.qs)
            let x1 = SIMDPairs.blockWords(ab1, at: BlockLayout.Q8_0.qs)
            let x0Even = (x0 &<< 8) &>> 8
            let x0Odd = x0 &>> 8
            let x1Even = (x1 &<< 8) &>> 8
            let x1Odd = x1 &>> 8
            let da0 = half[Int(ab0.loadUInt16(at: 0))]
            let da1 = half[Int(ab1.loadUInt16(at: 0))]

            @inline(__always)
            func row(_ i: Int, _ lane0: inout SIMD8<Float>, _ lane1: inout SIMD8<Float>) {
                let w = wb + i * weightRowBytes
                let words = SIMDPairs.blockWords(w, at: BlockLayout.Q8_0.qs)
                let even = (words &<< 8) &>> 8
                let odd = words &>> 8
                let dw = half[Int(w.loadUInt16(at: 0))]
                let sums0 =
                    SIMDPairs.multiplyAdd(even, x0Even) &+ SIMDPairs.multiplyAdd(odd, x0Odd)
                let sums1 =
                    SIMDPairs.multiplyAdd(even, x1Even) &+ SIMDPairs.multiplyAdd(odd, x1Odd)
                lane0 = lane0.addingProduct(SIMD8(repeating: dw * da0), SIMDPairs.floats(sums0))
                lane1 = lane1.addingProduct(SIMD8(repeating: dw * da1), SIMDPairs.floats(sums1))
            }
            row(0, &l00, &l01)
            row(1, &l10, &l11)
            row(2, &l20, &l21)
            row(3, &l30, &l31)
        }

        y0[0] = VectorMath.sum(l00)
        y0[1] = VectorMath.sum(l10)
        y0[2] = VectorMath.sum(l20)
        y0[3] = VectorMath.sum(l30)
        if let y1 {
            y1[0] = VectorMath.sum(l01)
            y1[1] = VectorMath.sum(l11)
            y1[2] = VectorMath.sum(l21)
            y1[3] = VectorMath.sum(l31)
        }
    }
}
