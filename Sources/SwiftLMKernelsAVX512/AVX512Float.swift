#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

// The float rows of the forward pass that spend their time in e^x: softmax (attention) and
// SwiGLU (feed-forward). SwiftLMCore's `VectorMath.exp` computes ggml's AVX-512 exponential
// bit for bit on any CPU, emulating `vscalefps`; on a Haswell target the emulation's masked
// integer lane updates compile to per-lane code through the stack, and a softmax over a long
// context spent a fifth of a decode step there. Here the instruction itself does the scaling.
// Tests hold each function to its portable twin in `FloatKernels` bit for bit.

extension AVX512Kernels {
    #if arch(x86_64)
        /// ggml's `ggml_v_expf` for `__m512`, instruction for instruction: n = round(x / ln 2)
        /// by the 1.5 · 2^23 shift, b = x − n ln 2 in two steps, a degree-5 polynomial in b,
        /// `vscalefps` by n, and 0 or +infinity where |n| > 192.
        @inline(__always)
        static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
            typealias V = SIMD16<Float>
            let shift = V(repeating: 0x1.8p23)
            let z = shift.addingProduct(x, V(repeating: 0x1.715476p+0))
            let n = z - shift
            let b = x.addingProduct(-n, V(repeating: 0x1.62e4p-1))
                .addingProduct(-n, V(repeating: 0x1.7f7d1cp-20))
            let u = b * b
            let high = V(repeating: 0x1.573e2ep-5).addingProduct(V(repeating: 0x1.0e4020p-7), b)
            let middle = V(repeating: 0x1.fffdb6p-2).addingProduct(
                V(repeating: 0x1.555e66p-3), b)
            let low = V(repeating: 1).addingProduct(V(repeating: 0x1.ffffecp-1), b)
            let j = low.addingProduct(middle.addingProduct(high, u), u)
            let result = _mm512_scalef_ps(j, n)

            let outside = (n .> 192) .| (n .< -192)
            guard any(outside) else { return result }
            let limit = V(repeating: 0).replacing(with: .infinity, where: n .> 0)
            return result.replacing(with: limit, where: outside)
        }

        /// `FloatKernels.softmax`: one row in place, as ggml's soft_max op computes a row.
        public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
            var maximum = -Float.infinity
            for i in 0..<count { maximum = max(maximum, x[i]) }

            var sum: Double = 0
            var i = 0
            while i + 16 <= count {
                let raw = UnsafeMutableRawPointer(x + i)
                let e = exp(raw.loadUnaligned(as: SIMD16<Float>.self) - SIMD16(repeating: maximum))
                raw.storeBytes(of: e, as: SIMD16<Float>.self)
                sum += Double(sum16(e))
                i += 16
            }
            while i < count {
                let e = expf(x[i] - maximum)
                x[i] = e
                sum += Double(e)
                i += 1
            }

            let scale = Float(1 / sum)
            for i in 0..<count { x[i] *= scale }
        }

        /// `FloatKernels.swiGLU`: `silu(gate) * up` over `gate`, sixteen lanes at a time, the
        /// rest with libm.
        public static func swiGLU(
            gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int
        ) {
            var i = 0
            while i + 16 <= count {
                let g = UnsafeMutableRawPointer(gate + i).loadUnaligned(as: SIMD16<Float>.self)
                let u = UnsafeRawPointer(up + i).loadUnaligned(as: SIMD16<Float>.self)
                let silu = g / (1 + exp(SIMD16(repeating: 0) - g))
                UnsafeMutableRawPointer(gate + i).storeBytes(of: silu * u, as: SIMD16<Float>.self)
                i += 16
            }
            while i < count {
                let g = gate[i]
                gate[i] = g / (1 + expf(-g)) * up[i]
                i += 1
            }
        }

        /// `VectorMath.sum` of sixteen lanes: halves added, then the eight-lane tree.
        @inline(__always)
        static func sum16(_ v: SIMD16<Float>) -> Float {
            sum(v.lowHalf + v.highHalf)
        }
    #endif
}
