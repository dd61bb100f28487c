/// Scalar dot kernels, the yardstick for `FastDot`; nothing else should call them in a hot loop.
///
/// For F32, F16 and the 32-element block types they are plain scalar code with the float
/// arithmetic of llama.cpp's x86 kernels, lane by lane (`ggml_vec_dot_*` in
/// ggml-cpu/arch/x86/quants.c and ggml-cpu/vec.cpp, llamafile's `tinyBLAS` for batches), so fast
/// and reference kernels must agree exactly. For BF16 and the K-quants they follow ggml's
/// portable C step for step (`ggml_vec_dot_*_generic`), which the SIMD kernels match to rounding.
enum ReferenceDot {
    // MARK: - Plain types

    /// `ggml_vec_dot_f32`; see `ReferenceFloatKernels.dotF32`.
    static func f32(_ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int)
        -> Float
    {
        ReferenceFloatKernels.dotF32(
            weights.assumingMemoryBound(to: Float.self),
            activations.assumingMemoryBound(to: Float.self), count: count)
    }

    /// llamafile's `tinyBLAS` for F32; `ggml_vec_dot_f32` for rows not in whole vectors of 16.
    static func f32Batched(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        guard count % 16 == 0 else { return f32(weights, activations, count) }
        return ReferenceFloatKernels.dotLanes16(
            weights.assumingMemoryBound(to: Float.self),
            activations.assumingMemoryBound(to: Float.self), count: count)
    }

    /// `ggml_vec_dot_f16`; see `ReferenceFloatKernels.dotF16`.
    static func f16(_ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int)
        -> Float
    {
        let (w, a) = (widened(weights, count), widened(activations, count))
        return ReferenceFloatKernels.dotF16(w, a, count: count)
    }

    /// llamafile's `tinyBLAS` for F16; `ggml_vec_dot_f16` for rows not in whole vectors of 16.
    static func f16Batched(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        guard count % 16 == 0 else { return f16(weights, activations, count) }
        let (w, a) = (widened(weights, count), widened(activations, count))
        return ReferenceFloatKernels.dotLanes16(w, a, count: count)
    }

    /// `count` binary16 numbers as floats.
    private static func widened(_ halves: UnsafeRawPointer, _ count: Int) -> [Float] {
        (0..<count).map { halves.loadHalf(at: 2 * $0) }
    }

    /// `ggml_vec_dot_bf16_generic`: products in binary32, summed in binary64.
    static func bf16(_ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int)
        -> Float
    {
        var sum: Double = 0
        for i in 0..<count {
            let w = HalfPrecision.float(fromBFloat: weights.loadUInt16(at: 2 * i))
            let a = HalfPrecision.float(fromBFloat: activations.loadUInt16(at: 2 * i))
            sum += Double(w * a)
        }
        return Float(sum)
    }

    // MARK: - 32-element blocks

    /// `ggml_vec_dot_q8_0_q8_0` (AVX2): lane k of 8 takes the integer sum of elements 4k..<4k + 4
    /// of each block, scaled by dw * da with one FMA; the lanes are added by the halving tree.
    static func q8_0(_ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int)
        -> Float
    {
        var lanes = [Float](repeating: 0, count: 8)
        for block in 0..<(count / 32) {
            let w = weights + block * BlockLayout.Q8_0.bytes
            let a = activations + block * BlockLayout.Q8_0.bytes
            let scale = w.loadHalf(at: BlockLayout.Q8_0.d) * a.loadHalf(at: BlockLayout.Q8_0.d)
            accumulate(
                scale, into: &lanes, weight: { q8(w, BlockLayout.Q8_0.qs, $0) },
                activation: { q8(a, BlockLayout.Q8_0.qs, $0) })
        }
        return ReferenceFloatKernels.halvingSum(lanes)
    }

    /// `ggml_vec_dot_q4_0_q8_0` (AVX2): as `q8_0`, with weights q - 8.
    static func q4_0(_ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int)
        -> Float
    {
        var lanes = [Float](repeating: 0, count: 8)
        for block in 0..<(count / 32) {
            let w = weights + block * BlockLayout.Q4_0.bytes
            let a = activations + block * BlockLayout.Q8_0.bytes
            let scale = w.loadHalf(at: BlockLayout.Q4_0.d) * a.loadHalf(at: BlockLayout.Q8_0.d)
            accumulate(
                scale, into: &lanes, weight: { nibble(w, BlockLayout.Q4_0.qs, $0) - 8 },
                activation: { q8(a, BlockLayout.Q8_0.qs, $0) })
        }
        return ReferenceFloatKernels.halvingSum(lanes)
    }

    /// `ggml_vec_dot_q4_1_q8_1` (AVX2): the lanes of `q8_0` for dw * da * sum(qw * qa), plus the
    /// offsets mw * sa accumulated by FMA in one float (sa = da * sum(qa), stored in the block).
    static func q4_1(_ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int)
        -> Float
    {
        var lanes = [Float](repeating: 0, count: 8)
        var offsets: Float = 0
        for block in 0..<(count / 32) {
            let w = weights + block * BlockLayout.Q4_1.bytes
            let a = activations + block * BlockLayout.Q8_1.bytes
            let scale = w.loadHalf(at: BlockLayout.Q4_1.d) * a.loadHalf(at: BlockLayout.Q8_1.d)
            let m = w.loadHalf(at: BlockLayout.Q4_1.m)
            offsets = offsets.addingProduct(m, a.loadHalf(at: BlockLayout.Q8_1.s))
            accumulate(
                scale, into: &lanes, weight: { nibble(w, BlockLayout.Q4_1.qs, $0) },
                activation: { q8(a, BlockLayout.Q8_1.qs, $0) })
        }
        return ReferenceFloatKernels.halvingSum(lanes) + offsets
    }

    /// lanes[k] = fma(scale, sum of weight(i) * activation(i) for i in 4k..<4k + 4, lanes[k]).
    private static func accumulate(
        _ scale: Float, into lanes: inout [Float], weight: (Int) -> Int32,
        activation: (Int) -> Int32
    ) {
        for lane in 0..<8 {
            var sum: Int32 = 0
            for i in (4 * lane)..<(4 * lane + 4) { sum += weight(i) * activation(i) }
            lanes[lane] = lanes[lane].addingProduct(scale, Float(sum))
        }
    }

    /// Element `i` of the signed quants at `block + qs`.
    private static func q8(_ block: UnsafeRawPointer, _ qs: Int, _ i: Int) -> Int32 {
        Int32(block.load(fromByteOffset: qs + i, as: Int8.self))
    }

    /// Element `i` of 32 nibbles at `block + qs`: byte i % 16, low nibble for i < 16.
    private static func nibble(_ block: UnsafeRawPointer, _ qs: Int, _ i: Int) -> Int32 {
        let byte = block.load(fromByteOffset: qs + i % 16, as: UInt8.self)
        return Int32(i < 16 ? byte & 0x0F : byte >> 4)
    }

    // MARK: - K-quants against Q8_K

    /// `ggml_vec_dot_q4_K_q8_K_generic`.
    static func q4_K(_ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int)
        -> Float
    {
        var quants = InlineArray<256, Int8>(repeating: 0)
        var sums = KQuantLaneSums()
        var minSum: Float = 0

        for block in 0..<(count / 256) {
            let w = weights + block * BlockLayout.Q4_K.bytes
            let a = activations + block * BlockLayout.Q8_K.bytes
            let packed = KQuantScales(w + BlockLayout.Q4_K.scales)

            for j in 0..<128 {
                let byte = w.load(fromByteOffset: BlockLayout.Q4_K.qs + j, as: UInt8.self)
                let pair = j / 32
                let l = j % 32
                quants[64 * pair + l] = Int8(byte & 0x0F)
                quants[64 * pair + l + 32] = Int8(byte >> 4)
            }

            let minsTotal = KQuantLaneSums.minsTotal(packed, activations: a)
            let sumi = KQuantLaneSums.scaledSums(quants, activations: a, groupSize: 32) {
                packed.scales[$0]
            }

            let d = w.loadHalf(at: BlockLayout.Q4_K.d) * loadQ8KScale(a)
            sums.add(sumi, scaledBy: d)
            let dmin = w.loadHalf(at: BlockLayout.Q4_K.dmin) * loadQ8KScale(a)
            minSum -= dmin * Float(minsTotal)
        }
        return sums.total(startingFrom: minSum)
    }

    /// `ggml_vec_dot_q5_K_q8_K_generic`.
    static func q5_K(_ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int)
        -> Float
    {
        var quants = InlineArray<256, Int8>(repeating: 0)
        var sums = KQuantLaneSums()
        var minSum: Float = 0

        for block in 0..<(count / 256) {
            let w = weights + block * BlockLayout.Q5_K.bytes
            let a = activations + block * BlockLayout.Q8_K.bytes
            let packed = KQuantScales(w + BlockLayout.Q5_K.scales)

            for j in 0..<128 {
                let byte = w.load(fromByteOffset: BlockLayout.Q5_K.qs + j, as: UInt8.self)
                let pair = j / 32
                let l = j % 32
                let high = w.load(fromByteOffset: BlockLayout.Q5_K.qh + l, as: UInt8.self)
                let bit0 = (high >> (2 * pair)) & 1
                let bit1 = (high >> (2 * pair + 1)) & 1
                quants[64 * pair + l] = Int8((byte & 0x0F) | (bit0 << 4))
                quants[64 * pair + l + 32] = Int8((byte >> 4) | (bit1 << 4))
            }

            let minsTotal = KQuantLaneSums.minsTotal(packed, activations: a)
            let sumi = KQuantLaneSums.scaledSums(quants, activations: a, groupSize: 32) {
                packed.scales[$0]
            }

            let d = w.loadHalf(at: BlockLayout.Q5_K.d) * loadQ8KScale(a)
            sums.add(sumi, scaledBy: d)
            let dmin = w.loadHalf(at: BlockLayout.Q5_K.dmin) * loadQ8KScale(a)
            minSum -= dmin * Float(minsTotal)
        }
        return sums.total(startingFrom: minSum)
    }

    /// `ggml_vec_dot_q6_K_q8_K_generic`.
    static func q6_K(_ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int)
        -> Float
    {
        var quants = InlineArray<256, Int8>(repeating: 0)
        var sums = KQuantLaneSums()

        for block in 0..<(count / 256) {
            let w = weights + block * BlockLayout.Q6_K.bytes
            let a = activations + block * BlockLayout.Q8_K.bytes

            for half in 0..<2 {
                let ql = w + BlockLayout.Q6_K.ql + 64 * half
                let qh = w + BlockLayout.Q6_K.qh + 32 * half
                for l in 0..<32 {
                    let low0 = ql.load(fromByteOffset: l, as: UInt8.self)
                    let low1 = ql.load(fromByteOffset: l + 32, as: UInt8.self)
                    let high = qh.load(fromByteOffset: l, as: UInt8.self)
                    let base = 128 * half + l
                    quants[base] = Int8((low0 & 0xF) | ((high & 3) << 4)) - 32
                    quants[base + 32] = Int8((low1 & 0xF) | (((high >> 2) & 3) << 4)) - 32
                    quants[base + 64] = Int8((low0 >> 4) | (((high >> 4) & 3) << 4)) - 32
                    quants[base + 96] = Int8((low1 >> 4) | (((high >> 6) & 3) << 4)) - 32
                }
            }

            let sumi = KQuantLaneSums.scaledSums(quants, activations: a, groupSize: 16) {
                Int32(w.load(fromByteOffset: BlockLayout.Q6_K.scales + $0, as: Int8.self))
            }

            let d = w.loadHalf(at: BlockLayout.Q6_K.d) * loadQ8KScale(a)
            sums.add(sumi, scaledBy: d)
        }
        return sums.total(startingFrom: 0)
    }

    /// The binary32 scale `d` of a Q8_K block.
    @inline(__always)
    static func loadQ8KScale(_ block: UnsafeRawPointer) -> Float {
        Float(bitPattern: UInt32(littleEndian: block.loadUnaligned(as: UInt32.self)))
    }
}

/// The eight per-lane sums of ggml's generic K-quant kernels (`aux32` and `sums`): element i of a
/// super-block always lands in lane i % 8, and lanes are added into one float only at the end.
struct KQuantLaneSums {
    var lanes = InlineArray<8, Float>(repeating: 0)

    /// sum over groups g of scale(g) * sum over the group of q * a, kept per lane: ggml multiplies
    /// q * a in 16 bits (`aux16`), then adds scale * that into 32-bit lanes (`aux32`).
    @inline(__always)
    static func scaledSums(
        _ quants: InlineArray<256, Int8>, activations: UnsafeRawPointer, groupSize: Int,
        scale: (Int) -> Int32
    ) -> InlineArray<8, Int32> {
        var lanes = InlineArray<8, Int32>(repeating: 0)
        for group in 0..<(256 / groupSize) {
            let groupScale = scale(group)
            for i in (group * groupSize)..<(group * groupSize + groupSize) {
                let qa = activations.load(fromByteOffset: BlockLayout.Q8_K.qs + i, as: Int8.self)
                let product = Int16(quants[i]) * Int16(qa)
                lanes[i % 8] += groupScale * Int32(product)
            }
        }
        return lanes
    }

    /// sum over sub-blocks j of min(j) * (bsums[2j] + bsums[2j + 1]): the dot product of the
    /// minimums with the activations, from the per-16 sums Q8_K carries for this purpose.
    @inline(__always)
    static func minsTotal(_ packed: KQuantScales, activations: UnsafeRawPointer) -> Int32 {
        var total: Int32 = 0
        for j in 0..<16 {
            let bsum = Int16(
                littleEndian: activations.loadUnaligned(
                    fromByteOffset: BlockLayout.Q8_K.bsums + 2 * j, as: Int16.self))
            total += Int32(bsum) * packed.mins[j / 2]
        }
        return total
    }

    /// sums[l] += d * aux32[l].
    @inline(__always)
    mutating func add(_ sumi: InlineArray<8, Int32>, scaledBy d: Float) {
        for l in 0..<8 {
            lanes[l] += d * Float(sumi[l])
        }
    }

    /// The final `for (l) sumf += sums[l]`, after the minimum terms already in `start`.
    @inline(__always)
    func total(startingFrom start: Float) -> Float {
        var total = start
        for l in 0..<8 {
            total += lanes[l]
        }
        return total
    }
}
