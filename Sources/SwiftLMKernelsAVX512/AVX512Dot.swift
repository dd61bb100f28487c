#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

/// Kernels for CPUs with AVX-512 and its VNNI extension (Intel from Cascade Lake, AMD from Zen
/// 4): dot products on `vpdpbusd` (four unsigned-by-signed byte products summed into each 32-bit
/// lane, one instruction), and the softmax and SwiGLU rows with ggml's AVX-512 exponential
/// (AVX512Float.swift).
///
/// This module alone is compiled for such a CPU (Package.swift), so nothing here may run before
/// `isSupported` has said yes: SwiftLMCore asks it once and hands these kernels out only then.
/// It depends on nothing, so that no code of the rest of the package is compiled with AVX-512;
/// the block layouts it reads are restated below, and the tests hold every kernel here to its
/// twin in SwiftLMCore's `FastDot` bit for bit.
///
/// The arithmetic is `FastDot`'s, which is llama.cpp's: per 32-element block, eight exact integer
/// sums of four consecutive products; each of eight float lanes accumulates
/// `fma(dw * da, sum, lane)`; the lanes are added by halving. `vpdpbusd` yields the same eight
/// integer sums as `FastDot`'s shifts and `pmaddwd`s (all are exact), two blocks per
/// instruction, and the float steps keep their order, so the results are the same bits.
public enum AVX512Kernels {
    /// Whether this CPU runs the kernels: AVX-512 F, BW, DQ, VL and VNNI, read from the flags that
    /// the kernel reports in /proc/cpuinfo (Linux). False elsewhere, where the portable kernels
    /// run instead, and where the environment sets `SWIFTLM_NO_AVX512` (to compare the two).
    public static let isSupported: Bool = {
        #if arch(x86_64) && os(Linux)
            if getenv("SWIFTLM_NO_AVX512") != nil { return false }
            guard let file = fopen("/proc/cpuinfo", "r") else { return false }
            defer { fclose(file) }
            var line: UnsafeMutablePointer<CChar>? = nil
            var capacity = 0
            defer { free(line) }
            while getline(&line, &capacity, file) > 0 {
                let text = String(cString: line!)
                guard text.hasPrefix("flags") else { continue }
                let flags = Set(text.split(separator: " ").map { $0.trimmingSuffixNewline() })
                let needed: [Substring] = [
                    "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "f16c", "fma",
                ]
                return needed.allSatisfy { flags.contains($0) }
            }
            return false
        #else
            return false
        #endif
    }()

    #if arch(x86_64)
        // Q4_1: f16 scale d, f16 minimum m, 16 bytes of nibbles (elements 0-15 low, 16-31
        // high); 20 bytes. Q8_1: f16 scale d, f16 s = d * sum(q), 32 signed bytes; 36 bytes.
        static let q4_1Bytes = 20
        static let q8_1Bytes = 36
        static let quantsOffset = 4

        /// `FastDot.q4_1`: `[count]` Q4_1 weights · `[count]` Q8_1 activations.
        public static func dotQ4_1(
            _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
        ) -> Float {
            let blocks = count / 32
            var lanes = SIMD8<Float>()
            var offsets: Float = 0
            var w = weights
            var a = activations
            var block = 0

            while block + 2 <= blocks {
                let sums = blockSums(
                    nibbles(w), nibbles(w + q4_1Bytes), quants(a), quants(a + q8_1Bytes))
                accumulate(sums.lowHalf, w, a, &lanes, &offsets)
                accumulate(sums.highHalf, w + q4_1Bytes, a + q8_1Bytes, &lanes, &offsets)
                w += 2 * q4_1Bytes
                a += 2 * q8_1Bytes
                block += 2
            }
            if block < blocks {
                let sums = blockSums(nibbles(w), SIMD32(), quants(a), SIMD32())
                accumulate(sums.lowHalf, w, a, &lanes, &offsets)
            }
            return sum(lanes) + offsets
        }

        /// Four output features at once: `output[r * outputStride + i]` = weight row i ·
        /// activation row r, for i in 0..<4 and r in 0..<rowCount, each the same bits as
        /// `dotQ4_1` of the two rows.
        ///
        /// One dot product is a chain of dependent multiply-adds, one per block, so alone it
        /// runs at the latency of a multiply-add; a tile of four weight rows (times four
        /// activation rows in prefill and batched steps, two or one for the last rows) runs
        /// up to sixteen independent chains, and reads each block of nibbles and of activations
        /// once for all of them.
        public static func productQ4_1(
            weights: UnsafeRawPointer, weightRowBytes: Int, activations: UnsafeRawPointer,
            activationRowBytes: Int, rowCount: Int, count: Int,
            output: UnsafeMutablePointer<Float>, outputStride: Int
        ) {
            var row = 0
            while row + 4 <= rowCount {
                tile4x4(
                    weights, weightRowBytes, activations + row * activationRowBytes,
                    activationRowBytes, count, output + row * outputStride, outputStride)
                row += 4
            }
            if row + 2 <= rowCount {
                tile4x2(
                    weights, weightRowBytes, activations + row * activationRowBytes,
                    activationRowBytes, count, output + row * outputStride, outputStride)
                row += 2
            }
            if row < rowCount {
                tile4x1(
                    weights, weightRowBytes, activations + row * activationRowBytes, count,
                    output + row * outputStride)
            }
        }

        /// Four weight rows times four activation rows, the batched product's main tile.
        ///
        /// The float steps dominate a tile: per block and pair of rows, `step` takes a scalar
        /// product, a broadcast, a conversion and a multiply-add on eight lanes, and a scalar
        /// multiply-add for the minimum. Here the eight lanes of one weight row against two
        /// activation rows share one 512-bit register (lanes 0-7 the first activation row's,
        /// 8-15 the second's), and the sixteen minimum terms share one more (lane 4r + i:
        /// activation row r, weight row i), so each step is a whole-register operation. Every
        /// lane still takes `step`'s operations in its order, so the bits are `dotQ4_1`'s.
        @inline(__always)
        static func tile4x4(
            _ weights: UnsafeRawPointer, _ weightRowBytes: Int, _ activations: UnsafeRawPointer,
            _ activationRowBytes: Int, _ count: Int, _ output: UnsafeMutablePointer<Float>,
            _ outputStride: Int
        ) {
            // `l{i}{r}{r + 1}`: weight row i against activation rows r and r + 1.
            var (l001, l101, l201, l301) = (
                _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()
            )
            var (l023, l123, l223, l323) = (
                _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()
            )
            var offsets = _mm512_setzero_ps()
            var w = weights
            var a = activations
            for _ in 0..<(count / 32) {
                let a1 = a + activationRowBytes
                let a2 = a1 + activationRowBytes
                let a3 = a2 + activationRowBytes
                let q01 = unsafeBitCast(
                    SIMD64(lowHalf: quants(a), highHalf: quants(a1)), to: __m512i.self)
                let q23 = unsafeBitCast(
                    SIMD64(lowHalf: quants(a2), highHalf: quants(a3)), to: __m512i.self)
                let (da0, sa0) = halves(a)
                let (da1, sa1) = halves(a1)
                let (da2, sa2) = halves(a2)
                let (da3, sa3) = halves(a3)
                let da01 = lanes(da0, da1)
                let da23 = lanes(da2, da3)
                let sa = SIMD16<Float>(
                    lowHalf: SIMD8(lowHalf: SIMD4(repeating: sa0), highHalf: SIMD4(repeating: sa1)),
                    highHalf: SIMD8(lowHalf: SIMD4(repeating: sa2), highHalf: SIMD4(repeating: sa3))
                )

                let w1 = w + weightRowBytes
                let w2 = w1 + weightRowBytes
                let w3 = w2 + weightRowBytes
                let m0 = rowStep(w, q01, q23, da01, da23, &l001, &l023)
                let m1 = rowStep(w1, q01, q23, da01, da23, &l101, &l123)
                let m2 = rowStep(w2, q01, q23, da01, da23, &l201, &l223)
                let m3 = rowStep(w3, q01, q23, da01, da23, &l301, &l323)
                let m = SIMD4(m0, m1, m2, m3)
                let mLanes = SIMD16(
                    lowHalf: SIMD8(lowHalf: m, highHalf: m),
                    highHalf: SIMD8(lowHalf: m, highHalf: m))
                offsets = _mm512_fmadd_ps(mLanes, sa, offsets)
                w += q4_1Bytes
                a += q8_1Bytes
            }

            let o = offsets
            // Weight row i against activation rows r (lanes 0-7) and r + 1 (lanes 8-15).
            func store(_ pair: __m512, _ i: Int, _ r: Int) {
                output[r * outputStride + i] = sum(pair.lowHalf) + o[4 * r + i]
                output[(r + 1) * outputStride + i] = sum(pair.highHalf) + o[4 * (r + 1) + i]
            }
            store(l001, 0, 0)
            store(l101, 1, 0)
            store(l201, 2, 0)
            store(l301, 3, 0)
            store(l023, 0, 2)
            store(l123, 1, 2)
            store(l223, 2, 2)
            store(l323, 3, 2)
        }

        /// One weight row's block against activation rows 0-1 (`q01`, scales `da01`) and 2-3;
        /// returns the block's minimum.
        @inline(__always)
        static func rowStep(
            _ w: UnsafeRawPointer, _ q01: __m512i, _ q23: __m512i, _ da01: __m512,
            _ da23: __m512, _ l01: inout __m512, _ l23: inout __m512
        ) -> Float {
            let n = nibbles(w)
            let both = unsafeBitCast(SIMD64(lowHalf: n, highHalf: n), to: __m512i.self)
            let s01 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), both, q01)
            let s23 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), both, q23)
            let (dw, mw) = halves(w)
            let dwLanes = _mm512_set1_ps(dw)
            l01 = _mm512_fmadd_ps(_mm512_mul_ps(dwLanes, da01), _mm512_cvtepi32_ps(s01), l01)
            l23 = _mm512_fmadd_ps(_mm512_mul_ps(dwLanes, da23), _mm512_cvtepi32_ps(s23), l23)
            return mw
        }

        /// `x` in lanes 0-7, `y` in lanes 8-15.
        @inline(__always)
        static func lanes(_ x: Float, _ y: Float) -> __m512 {
            SIMD16<Float>(lowHalf: SIMD8(repeating: x), highHalf: SIMD8(repeating: y))
        }

        /// Four weight rows times one activation row.
        @inline(__always)
        static func tile4x1(
            _ weights: UnsafeRawPointer, _ weightRowBytes: Int, _ activations: UnsafeRawPointer,
            _ count: Int, _ output: UnsafeMutablePointer<Float>
        ) {
            var (l0, l1, l2, l3) = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
            var (o0, o1, o2, o3): (Float, Float, Float, Float) = (0, 0, 0, 0)
            var w = weights
            var a = activations
            for _ in 0..<(count / 32) {
                let q = quants(a)
                let (da, sa) = halves(a)
                let w1 = w + weightRowBytes
                let w2 = w1 + weightRowBytes
                let w3 = w2 + weightRowBytes
                let s01 = blockSums(nibbles(w), nibbles(w1), q, q)
                let s23 = blockSums(nibbles(w2), nibbles(w3), q, q)
                step(s01.lowHalf, w, da, sa, &l0, &o0)
                step(s01.highHalf, w1, da, sa, &l1, &o1)
                step(s23.lowHalf, w2, da, sa, &l2, &o2)
                step(s23.highHalf, w3, da, sa, &l3, &o3)
                w += q4_1Bytes
                a += q8_1Bytes
            }
            output[0] = sum(l0) + o0
            output[1] = sum(l1) + o1
            output[2] = sum(l2) + o2
            output[3] = sum(l3) + o3
        }

        /// Four weight rows times two activation rows.
        @inline(__always)
        static func tile4x2(
            _ weights: UnsafeRawPointer, _ weightRowBytes: Int, _ activations: UnsafeRawPointer,
            _ activationRowBytes: Int, _ count: Int, _ output: UnsafeMutablePointer<Float>,
            _ outputStride: Int
        ) {
            var (l00, l10, l20, l30) = (
                SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>()
            )
            var (l01, l11, l21, l31) = (
                SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>()
            )
            var (o00, o10, o20, o30): (Float, Float, Float, Float) = (0, 0, 0, 0)
            var (o01, o11, o21, o31): (Float, Float, Float, Float) = (0, 0, 0, 0)
            var w = weights
            var a = activations
            for _ in 0..<(count / 32) {
                let a1 = a + activationRowBytes
                let (q0, q1) = (quants(a), quants(a1))
                let (da0, sa0) = halves(a)
                let (da1, sa1) = halves(a1)
                let w1 = w + weightRowBytes
                let w2 = w1 + weightRowBytes
                let w3 = w2 + weightRowBytes
                let n0 = nibbles(w)
                let n1 = nibbles(w1)
                let n2 = nibbles(w2)
                let n3 = nibbles(w3)
                let s0 = blockSums(n0, n0, q0, q1)
                let s1 = blockSums(n1, n1, q0, q1)
                let s2 = blockSums(n2, n2, q0, q1)
                let s3 = blockSums(n3, n3, q0, q1)
                step(s0.lowHalf, w, da0, sa0, &l00, &o00)
                step(s0.highHalf, w, da1, sa1, &l01, &o01)
                step(s1.lowHalf, w1, da0, sa0, &l10, &o10)
                step(s1.highHalf, w1, da1, sa1, &l11, &o11)
                step(s2.lowHalf, w2, da0, sa0, &l20, &o20)
                step(s2.highHalf, w2, da1, sa1, &l21, &o21)
                step(s3.lowHalf, w3, da0, sa0, &l30, &o30)
                step(s3.highHalf, w3, da1, sa1, &l31, &o31)
                w += q4_1Bytes
                a += q8_1Bytes
            }
            output[0] = sum(l00) + o00
            output[1] = sum(l10) + o10
            output[2] = sum(l20) + o20
            output[3] = sum(l30) + o30
            let next = output + outputStride
            next[0] = sum(l01) + o01
            next[1] = sum(l11) + o11
            next[2] = sum(l21) + o21
            next[3] = sum(l31) + o31
        }

        /// `accumulate` with the activation block's scale and sum already read.
        @inline(__always)
        static func step(
            _ sums: SIMD8<Int32>, _ w: UnsafeRawPointer, _ da: Float, _ sa: Float,
            _ lanes: inout SIMD8<Float>, _ offsets: inout Float
        ) {
            let (dw, mw) = halves(w)
            offsets = offsets.addingProduct(mw, sa)
            lanes = lanes.addingProduct(SIMD8(repeating: dw * da), SIMD8<Float>(sums))
        }

        // Q8_0: f16 scale d, 32 signed bytes; 34 bytes, for weights and activations alike.
        static let q8_0Bytes = 34
        static let q8_0QuantsOffset = 2

        /// `FastDot.q8_0`: `[count]` Q8_0 weights · `[count]` Q8_0 activations, two blocks per
        /// `vpdpbusd`.
        public static func dotQ8_0(
            _ weights: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int
        ) -> Float {
            let blocks = count / 32
            var lanes = SIMD8<Float>()
            var w = weights
            var a = activations
            var block = 0
            while block + 2 <= blocks {
                let sums = signedSums(
                    q8Quants(w), q8Quants(w + q8_0Bytes), q8Quants(a), q8Quants(a + q8_0Bytes))
                q8Step(sums.lowHalf, w, a, &lanes)
                q8Step(sums.highHalf, w + q8_0Bytes, a + q8_0Bytes, &lanes)
                w += 2 * q8_0Bytes
                a += 2 * q8_0Bytes
                block += 2
            }
            if block < blocks {
                let sums = signedSums(q8Quants(w), SIMD32(), q8Quants(a), SIMD32())
                q8Step(sums.lowHalf, w, a, &lanes)
            }
            return sum(lanes)
        }

        /// `output[r] = dotQ4_1(row r, activations)` for the rows `rows` of a matrix whose rows
        /// are `weightRowBytes` apart: a decode step's product in one call per piece of work,
        /// the dot kernel inlined, where a call per row through a closure cost a tenth of the
        /// step.
        public static func rowsQ4_1(
            weights: UnsafeRawPointer, weightRowBytes: Int, activations: UnsafeRawPointer,
            count: Int, output: UnsafeMutablePointer<Float>, rows: Range<Int>
        ) {
            for row in rows {
                output[row] = dotQ4_1(weights + row * weightRowBytes, activations, count)
            }
        }

        /// `rowsQ4_1` for Q8_0.
        public static func rowsQ8_0(
            weights: UnsafeRawPointer, weightRowBytes: Int, activations: UnsafeRawPointer,
            count: Int, output: UnsafeMutablePointer<Float>, rows: Range<Int>
        ) {
            for row in rows {
                output[row] = dotQ8_0(weights + row * weightRowBytes, activations, count)
            }
        }

        /// `productQ4_1` for Q8_0 weights and activations: four output features at once, each
        /// the bits of `dotQ8_0`.
        ///
        /// Here the activations take the unsigned side of `vpdpbusd`: x + 128 (the sign bit
        /// flipped) times the signed weights gives x·w + 128·Σw, and the accumulator starts at
        /// −128·Σw, one more `vpdpbusd` per weight block shared by every activation row. Exact
        /// in 32 bits, so the sums are `signedSums`' and the results `dotQ8_0`'s bits.
        public static func productQ8_0(
            weights: UnsafeRawPointer, weightRowBytes: Int, activations: UnsafeRawPointer,
            activationRowBytes: Int, rowCount: Int, count: Int,
            output: UnsafeMutablePointer<Float>, outputStride: Int
        ) {
            var row = 0
            while row < rowCount {
                // Four activation rows at a time; past the last row the last one repeats, and
                // its copies are computed but not written.
                let a0 = activations + row * activationRowBytes
                let a1 = activations + min(row + 1, rowCount - 1) * activationRowBytes
                let a2 = activations + min(row + 2, rowCount - 1) * activationRowBytes
                let a3 = activations + min(row + 3, rowCount - 1) * activationRowBytes
                let rows = min(4, rowCount - row)
                // `wide` as a literal in each call, so each inlined copy has no branch on it.
                if rows > 2 {
                    q8Tile(
                        weights, weightRowBytes, a0, a1, a2, a3, count,
                        output + row * outputStride, outputStride, rows: rows, wide: true)
                } else {
                    q8Tile(
                        weights, weightRowBytes, a0, a1, a2, a3, count,
                        output + row * outputStride, outputStride, rows: rows, wide: false)
                }
                row += 4
            }
        }

        /// Four Q8_0 weight rows times four activation rows (two when not `wide`), the first
        /// `rows` of which are written. As in `tile4x4`, the eight chains of one weight row
        /// against two activation rows share one 512-bit register; each lane takes `q8Step`'s
        /// operations in its order.
        @inline(__always)
        static func q8Tile(
            _ weights: UnsafeRawPointer, _ weightRowBytes: Int, _ a0: UnsafeRawPointer,
            _ a1: UnsafeRawPointer, _ a2: UnsafeRawPointer, _ a3: UnsafeRawPointer,
            _ count: Int, _ output: UnsafeMutablePointer<Float>, _ outputStride: Int, rows: Int,
            wide: Bool
        ) {
            // `l{i}{r}{r + 1}`: weight row i against activation rows r and r + 1.
            var (l001, l101, l201, l301) = (
                _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()
            )
            var (l023, l123, l223, l323) = (
                _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()
            )
            let flip = _mm512_set1_epi8(-128)
            var w = weights
            var (x0, x1, x2, x3) = (a0, a1, a2, a3)
            for _ in 0..<(count / 32) {
                let unsigned01 = _mm512_xor_si512(
                    unsafeBitCast(
                        SIMD64(lowHalf: q8Quants(x0), highHalf: q8Quants(x1)), to: __m512i.self),
                    flip)
                let unsigned23 =
                    wide
                    ? _mm512_xor_si512(
                        unsafeBitCast(
                            SIMD64(lowHalf: q8Quants(x2), highHalf: q8Quants(x3)),
                            to: __m512i.self),
                        flip) : unsigned01
                let da01 = lanes(halves(x0).0, halves(x1).0)
                let da23 = wide ? lanes(halves(x2).0, halves(x3).0) : da01

                // One weight row's block against all four activation rows.
                func rowStep(_ block: UnsafeRawPointer, _ l01: inout __m512, _ l23: inout __m512) {
                    let q = q8Quants(block)
                    let both = unsafeBitCast(SIMD64(lowHalf: q, highHalf: q), to: __m512i.self)
                    let offset = _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, both)
                    let start = _mm512_sub_epi32(_mm512_setzero_si512(), offset)
                    let s01 = _mm512_dpbusd_epi32(start, unsigned01, both)
                    let dw = _mm512_set1_ps(halves(block).0)
                    l01 = _mm512_fmadd_ps(_mm512_mul_ps(dw, da01), _mm512_cvtepi32_ps(s01), l01)
                    if wide {
                        let s23 = _mm512_dpbusd_epi32(start, unsigned23, both)
                        l23 = _mm512_fmadd_ps(
                            _mm512_mul_ps(dw, da23), _mm512_cvtepi32_ps(s23), l23)
                    }
                }
                rowStep(w, &l001, &l023)
                rowStep(w + weightRowBytes, &l101, &l123)
                rowStep(w + 2 * weightRowBytes, &l201, &l223)
                rowStep(w + 3 * weightRowBytes, &l301, &l323)
                w += q8_0Bytes
                x0 += q8_0Bytes
                x1 += q8_0Bytes
                if wide {
                    x2 += q8_0Bytes
                    x3 += q8_0Bytes
                }
            }

            // Weight row i against activation rows r (lanes 0-7) and r + 1 (lanes 8-15).
            func store(_ pair: __m512, _ i: Int, _ r: Int) {
                if r < rows { output[r * outputStride + i] = sum(pair.lowHalf) }
                if r + 1 < rows { output[(r + 1) * outputStride + i] = sum(pair.highHalf) }
            }
            store(l001, 0, 0)
            store(l101, 1, 0)
            store(l201, 2, 0)
            store(l301, 3, 0)
            store(l023, 0, 2)
            store(l123, 1, 2)
            store(l223, 2, 2)
            store(l323, 3, 2)
        }

        /// The 32 signed bytes of a Q8_0 block.
        @inline(__always)
        static func q8Quants(_ block: UnsafeRawPointer) -> SIMD32<Int8> {
            block.loadUnaligned(fromByteOffset: q8_0QuantsOffset, as: SIMD32<Int8>.self)
        }

        /// `blockSums` for signed weights: `vpdpbusd` multiplies unsigned by signed bytes, so
        /// each weight gives its magnitude and moves its sign onto its activation (ggml's
        /// `_mm256_sign_epi8` trick, here with an AVX-512 byte mask). Exact: Q8_0 activations
        /// lie in -127...127, so no negation overflows.
        @inline(__always)
        static func signedSums(
            _ w0: SIMD32<Int8>, _ w1: SIMD32<Int8>, _ x0: SIMD32<Int8>, _ x1: SIMD32<Int8>
        ) -> SIMD16<Int32> {
            let w = unsafeBitCast(SIMD64(lowHalf: w0, highHalf: w1), to: __m512i.self)
            let x = unsafeBitCast(SIMD64(lowHalf: x0, highHalf: x1), to: __m512i.self)
            let negative = _mm512_movepi8_mask(w)
            let signed = _mm512_mask_sub_epi8(x, negative, _mm512_setzero_si512(), x)
            let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), signed)
            return unsafeBitCast(sums, to: SIMD16<Int32>.self)
        }

        /// One Q8_0 block's float step, in `FastDot.q8_0`'s order.
        @inline(__always)
        static func q8Step(
            _ sums: SIMD8<Int32>, _ w: UnsafeRawPointer, _ a: UnsafeRawPointer,
            _ lanes: inout SIMD8<Float>
        ) {
            let (dw, _) = halves(w)
            let (da, _) = halves(a)
            lanes = lanes.addingProduct(SIMD8(repeating: dw * da), SIMD8<Float>(sums))
        }

        /// The 32 nibbles of a Q4_1 block in element order, one per byte.
        @inline(__always)
        static func nibbles(_ block: UnsafeRawPointer) -> SIMD32<UInt8> {
            let bytes = block.loadUnaligned(fromByteOffset: quantsOffset, as: SIMD16<UInt8>.self)
            return SIMD32(lowHalf: bytes & 0x0F, highHalf: bytes &>> 4)
        }

        /// The 32 signed bytes of a Q8_1 activation block.
        @inline(__always)
        static func quants(_ block: UnsafeRawPointer) -> SIMD32<Int8> {
            block.loadUnaligned(fromByteOffset: quantsOffset, as: SIMD32<Int8>.self)
        }

        /// Lanes 0-7: the eight sums of four products of the first pair of blocks; lanes 8-15:
        /// the second pair's. One `vpdpbusd`.
        @inline(__always)
        static func blockSums(
            _ u0: SIMD32<UInt8>, _ u1: SIMD32<UInt8>, _ s0: SIMD32<Int8>, _ s1: SIMD32<Int8>
        ) -> SIMD16<Int32> {
            let u = SIMD64(lowHalf: u0, highHalf: u1)
            let s = SIMD64(lowHalf: s0, highHalf: s1)
            let sums = _mm512_dpbusd_epi32(
                _mm512_setzero_si512(), unsafeBitCast(u, to: __m512i.self),
                unsafeBitCast(s, to: __m512i.self))
            return unsafeBitCast(sums, to: SIMD16<Int32>.self)
        }

        /// One block's float step, in `FastDot.q4_1`'s order.
        @inline(__always)
        static func accumulate(
            _ sums: SIMD8<Int32>, _ w: UnsafeRawPointer, _ a: UnsafeRawPointer,
            _ lanes: inout SIMD8<Float>, _ offsets: inout Float
        ) {
            let (dw, mw) = halves(w)
            let (da, sa) = halves(a)
            offsets = offsets.addingProduct(mw, sa)
            lanes = lanes.addingProduct(SIMD8(repeating: dw * da), SIMD8<Float>(sums))
        }

        /// The two f16 at the start of a block (scale and minimum, or scale and sum), exactly
        /// as Floats. Loaded as one 32-bit word into a zeroed register (`vmovd`): a 16-bit
        /// insert into some register would make the conversion wait for whatever that register
        /// last held, which LLVM chose to be the lanes' accumulator, chaining every block's
        /// scale to the previous block's multiply-add (the kernel ran 1.5 times slower).
        @inline(__always)
        static func halves(_ block: UnsafeRawPointer) -> (Float, Float) {
            let word = Int32(bitPattern: block.loadUnaligned(as: UInt32.self))
            let floats = _mm_cvtph_ps(_mm_cvtsi32_si128(word))
            return (floats[0], floats[1])
        }

        /// `VectorMath.sum`: `(v0+v4 + v2+v6) + (v1+v5 + v3+v7)`.
        @inline(__always)
        static func sum(_ v: SIMD8<Float>) -> Float {
            let four = v.lowHalf + v.highHalf
            let two = four.lowHalf + four.highHalf
            return two[0] + two[1]
        }
    #endif
}

extension Substring {
    fileprivate func trimmingSuffixNewline() -> Substring {
        last == "\n" ? dropLast() : self
    }
}

extension AVX512Kernels {
    #if arch(x86_64)
        /// `iterations` rounds of eight independent `vpdpbusd` on registers (64 byte products
        /// each): the CPU's int8 multiply-add rate, for `swiftlm bench --ceilings`. Returns a
        /// sum of the accumulators so that the work cannot be optimized away.
        public static func int8MultiplyAddLoop(iterations: Int) -> Int32 {
            let a = unsafeBitCast(SIMD64<UInt8>(repeating: 1), to: __m512i.self)
            let b = unsafeBitCast(SIMD64<Int8>(repeating: 1), to: __m512i.self)
            var (s0, s1, s2, s3) = (
                _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                _mm512_setzero_si512()
            )
            var (s4, s5, s6, s7) = (
                _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                _mm512_setzero_si512()
            )
            for _ in 0..<iterations {
                s0 = _mm512_dpbusd_epi32(s0, a, b)
                s1 = _mm512_dpbusd_epi32(s1, a, b)
                s2 = _mm512_dpbusd_epi32(s2, a, b)
                s3 = _mm512_dpbusd_epi32(s3, a, b)
                s4 = _mm512_dpbusd_epi32(s4, a, b)
                s5 = _mm512_dpbusd_epi32(s5, a, b)
                s6 = _mm512_dpbusd_epi32(s6, a, b)
                s7 = _mm512_dpbusd_epi32(s7, a, b)
            }
            let all = [s0, s1, s2, s3, s4, s5, s6, s7].map {
                unsafeBitCast($0, to: SIMD16<Int32>.self)
            }
            return all.reduce(SIMD16<Int32>()) { $0 &+ $1 }.wrappedSum()
        }
    #endif
}
