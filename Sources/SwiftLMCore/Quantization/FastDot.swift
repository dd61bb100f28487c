import SwiftLMKernelsAVX512

/// Fast dot kernels, one per weight type, with the signature of `DotKernel`.
///
/// For the 32-element block types (Q8_0, Q4_0, Q4_1) they compute what llama.cpp's x86 kernels
/// compute, bit for bit (`ggml_vec_dot_*` in ggml-cpu/arch/x86/quants.c, AVX2 path; llamafile's
/// `tinyBLAS_Q0_AVX` does the same arithmetic for batches): per block, eight exact integer sums
/// of four consecutive products (`SIMDPairs.blockSums`); each lane accumulates
/// `fma(dw * da, sum, lane)`; the lanes are added by `VectorMath.sum`. The K-quant kernels keep
/// their own order (see FastDot+KQuants.swift) and agree with ggml to rounding only.
///
/// Block scales are read through `HalfPrecision.table`.
enum FastDot {
    // MARK: - Q8_0 x Q8_0

    /// `ggml_vec_dot_q8_0_q8_0`: sum over blocks of (dw * da) * (32 products) in eight lanes.
    static func q8_0(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        assert(count % 32 == 0)
        let half = HalfPrecision.table
        var lanes = SIMD8<Float>()
        var w = weights
        var a = activations

        for _ in 0..<(count / 32) {
            let sums = SIMDPairs.blockSums(
                SIMDPairs.blockWords(w, at: BlockLayout.Q8_0.qs),
                SIMDPairs.blockWords(a, at: BlockLayout.Q8_0.qs))
            let scale = half[Int(w.loadUInt16(at: 0))] * half[Int(a.loadUInt16(at: 0))]
            lanes = lanes.addingProduct(SIMD8(repeating: scale), SIMD8<Float>(sums))
            w += BlockLayout.Q8_0.bytes
            a += BlockLayout.Q8_0.bytes
        }
        return VectorMath.sum(lanes)
    }

    // MARK: - Q4_0 x Q8_0

    /// `ggml_vec_dot_q4_0_q8_0`: as `q8_0`, the nibbles less 8 in element order. (llama.cpp
    /// repacks Q4_0 matrices whose row count is a multiple of 8 for its AVX2 gemv kernels, whose
    /// order this does not follow.)
    static func q4_0(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        assert(count % 32 == 0)
        let half = HalfPrecision.table
        var lanes = SIMD8<Float>()
        var w = weights
        var a = activations

        for _ in 0..<(count / 32) {
            let sums = SIMDPairs.nibbleSums(
                SIMDPairs.nibbleWords(w, at: BlockLayout.Q4_0.qs),
                SIMDPairs.blockWords(a, at: BlockLayout.Q8_0.qs), bias: 8)
            let scale = half[Int(w.loadUInt16(at: 0))] * half[Int(a.loadUInt16(at: 0))]
            lanes = lanes.addingProduct(SIMD8(repeating: scale), SIMD8<Float>(sums))
            w += BlockLayout.Q4_0.bytes
            a += BlockLayout.Q8_0.bytes
        }
        return VectorMath.sum(lanes)
    }

    // MARK: - Q4_1 x Q8_1

    /// `ggml_vec_dot_q4_1_q8_1`: the lanes of `q8_0` for dw * da * sum(qw * qa), and the offsets
    /// mw * sa (sa = da * sum(qa), precomputed in the activation block) in one float that GCC
    /// updates by FMA, added last.
    static func q4_1(
        _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
    ) -> Float {
        assert(count % 32 == 0)
        let half = HalfPrecision.table
        var lanes = SIMD8<Float>()
        var offsets: Float = 0
        var w = weights
        var a = activations

        for _ in 0..<(count / 32) {
            let sums = SIMDPairs.nibbleSums(
                SIMDPairs.nibbleWords(w, at: BlockLayout.Q4_1.qs),
                SIMDPairs.blockWords(a, at: BlockLayout.Q8_1.qs), bias: 0)
            let dw = half[Int(w.loadUInt16(at: BlockLayout.Q4_1.d))]
            let mw = half[Int(w.loadUInt16(at: BlockLayout.Q4_1.m))]
            let da = half[Int(a.loadUInt16(at: BlockLayout.Q8_1.d))]
            let sa = half[Int(a.loadUInt16(at: BlockLayout.Q8_1.s))]
            offsets = offsets.addingProduct(mw, sa)
            lanes = lanes.addingProduct(SIMD8(repeating: dw * da), SIMD8<Float>(sums))
            w += BlockLayout.Q4_1.bytes
            a += BlockLayout.Q8_1.bytes
        }
        return VectorMath.sum(lanes) + offsets
    }

    // MARK: - AVX-512 VNNI

    // The kernels of SwiftLMKernelsAVX512 where the CPU runs them, nil elsewhere: each gives
    // the bits of the portable kernel of its type (`q4_1`, `q8_0`), one `vpdpbusd` for the
    // integer sums of two blocks. Dot kernels take one row; rows kernels a range of rows
    // against one activation row (decode); tile kernels four rows at a time (prefill).
    #if arch(x86_64)
        static let avx512Q4_1: DotKernel? = supported(AVX512Kernels.dotQ4_1)
        static let avx512Q8_0: DotKernel? = supported(AVX512Kernels.dotQ8_0)
        static let avx512RowsQ4_1: RowsKernel? = supported(AVX512Kernels.rowsQ4_1)
        static let avx512RowsQ8_0: RowsKernel? = supported(AVX512Kernels.rowsQ8_0)
        static let avx512TileQ4_1: TileKernel? = supported(AVX512Kernels.productQ4_1)
        static let avx512TileQ8_0: TileKernel? = supported(AVX512Kernels.productQ8_0)

        private static func supported<Kernel>(_ kernel: Kernel) -> Kernel? {
            AVX512Kernels.isSupported ? kernel : nil
        }
    #else
        static let avx512Q4_1: DotKernel? = nil
        static let avx512Q8_0: DotKernel? = nil
        static let avx512RowsQ4_1: RowsKernel? = nil
        static let avx512RowsQ8_0: RowsKernel? = nil
        static let avx512TileQ4_1: TileKernel? = nil
        static let avx512TileQ8_0: TileKernel? = nil
    #endif
}
