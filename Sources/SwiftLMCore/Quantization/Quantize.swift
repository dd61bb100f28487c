/// Quantization of float rows to blocks, one function per type and variant. Each reads
/// `blockCount * blockSize` floats and writes `blockCount` blocks.
///
/// Two variants exist for Q8_0 and Q8_1 because ggml has two: the reference quantizers
/// (`quantize_row_*_ref` in ggml-quants.c) that write model files, and the x86 activation
/// quantizers (`quantize_row_q8_0`/`_q8_1` in ggml-cpu/arch/x86/quants.c) that llama.cpp runs
/// before every dot product. See `Quantization.quantizeActivations`.
enum Quantize {
    /// Rounds to the nearest integer, ties to even, by adding 1.5 * 2^23 so that the integer lands
    /// in the low mantissa bits: ggml's `nearest_int`. Valid for |x| <= 2^22 - 1; it never traps,
    /// whatever the input.
    @inline(__always)
    static func nearestInt(_ x: Float) -> Int32 {
        let biased = x + 12_582_912
        return Int32(bitPattern: biased.bitPattern & 0x007F_FFFF) - 0x0040_0000
    }

    /// Rounds to the nearest integer, ties away from zero: C's `roundf`, which the reference
    /// quantizers use. Spelled out because `Float.rounded()` calls libm, which SwiftLMCore does not
    /// link. Truncation and the remainder `x - trunc(x)` are both exact. Requires |x| < 2^31.
    @inline(__always)
    static func roundHalfAwayFromZero(_ x: Float) -> Int32 {
        let truncated = Int32(x)
        let remainder = x - Float(truncated)
        if remainder >= 0.5 { return truncated + 1 }
        if remainder <= -0.5 { return truncated - 1 }
        return truncated
    }

    /// The largest magnitude in `count` floats, as the `MAX(amax, fabsf(v))` loops of ggml.
    @inline(__always)
    static func absoluteMax(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var amax: Float = 0
        for j in 0..<count {
            amax = Swift.max(amax, abs(x[j]))
        }
        return amax
    }

    // MARK: - Plain types

    static func f16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
        for i in 0..<count {
            dst.storeBytes(
                of: HalfPrecision.half(from: src[i]).littleEndian, toByteOffset: 2 * i,
                as: UInt16.self)
        }
    }

    static func bf16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
        for i in 0..<count {
            dst.storeBytes(
                of: HalfPrecision.bfloat(from: src[i]).littleEndian, toByteOffset: 2 * i,
                as: UInt16.self)
        }
    }

    // MARK: - Reference quantizers (ggml-quants.c)

    /// `quantize_row_q8_0_ref`: d = amax / 127, q = roundf(x / d), ties away from zero.
    // [blockCount * 32] -> [blockCount * 34 bytes]
    static func q8_0(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * 32
            let y = dst + block * BlockLayout.Q8_0.bytes
            let d = absoluteMax(x, count: 32) / 127
            let id = d != 0 ? 1 / d : 0
            y.storeBytes(of: HalfPrecision.half(from: d).littleEndian, as: UInt16.self)

            for j in 0..<32 {
                let q = Int8(roundHalfAwayFromZero(x[j] * id))
                y.storeBytes(of: q, toByteOffset: BlockLayout.Q8_0.qs + j, as: Int8.self)
            }
        }
    }

    /// `quantize_row_q8_1_ref`: as `q8_0`, plus s = d * sum(q) rounded to binary16.
    // [blockCount * 32] -> [blockCount * 36 bytes]
    static func q8_1(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * 32
            let y = dst + block * BlockLayout.Q8_1.bytes
            let d = absoluteMax(x, count: 32) / 127
            let id = d != 0 ? 1 / d : 0

            var sum: Int32 = 0
            for j in 0..<32 {
                let q = Int8(roundHalfAwayFromZero(x[j] * id))
                y.storeBytes(of: q, toByteOffset: BlockLayout.Q8_1.qs + j, as: Int8.self)
                sum += Int32(q)
            }

            storeScales(y, d: d, sum: sum)
        }
    }

    /// `quantize_row_q4_0_ref`: d = -max / 8 where max is the element of largest magnitude (its
    /// sign kept, so that element maps to q = 0 exactly), q = min(15, trunc(x / d + 8.5)).
    // [blockCount * 32] -> [blockCount * 18 bytes]
    static func q4_0(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * 32
            let y = dst + block * BlockLayout.Q4_0.bytes

            var amax: Float = 0
            var max: Float = 0
            for j in 0..<32 where amax < abs(x[j]) {
                amax = abs(x[j])
                max = x[j]
            }

            let d = max / -8
            let id = d != 0 ? 1 / d : 0
            y.storeBytes(of: HalfPrecision.half(from: d).littleEndian, as: UInt16.self)

            for j in 0..<16 {
                let q0 = Swift.min(15, UInt8(x[j] * id + 8.5))
                let q1 = Swift.min(15, UInt8(x[j + 16] * id + 8.5))
                y.storeBytes(
                    of: q0 | (q1 << 4), toByteOffset: BlockLayout.Q4_0.qs + j, as: UInt8.self)
            }
        }
    }

    /// `quantize_row_q4_1_ref`: m = min, d = (max - min) / 15,
    /// q = min(15, trunc((x - m) / d + 0.5)).
    // [blockCount * 32] -> [blockCount * 20 bytes]
    static func q4_1(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * 32
            let y = dst + block * BlockLayout.Q4_1.bytes

            var min = Float.greatestFiniteMagnitude
            var max = -Float.greatestFiniteMagnitude
            for j in 0..<32 {
                if x[j] < min { min = x[j] }
                if x[j] > max { max = x[j] }
            }

            let d = (max - min) / 15
            let id = d != 0 ? 1 / d : 0
            y.storeBytes(of: HalfPrecision.half(from: d).littleEndian, as: UInt16.self)
            y.storeBytes(
                of: HalfPrecision.half(from: min).littleEndian, toByteOffset: BlockLayout.Q4_1.m,
                as: UInt16.self)

            for j in 0..<16 {
                let q0 = Swift.min(15, UInt8((x[j] - min) * id + 0.5))
                let q1 = Swift.min(15, UInt8((x[j + 16] - min) * id + 0.5))
                y.storeBytes(
                    of: q0 | (q1 << 4), toByteOffset: BlockLayout.Q4_1.qs + j, as: UInt8.self)
            }
        }
    }

    /// `quantize_row_q5_0_ref`: `q4_0` with 5 bits: d = -max / 16,
    /// q = min(31, trunc(x / d + 16.5)).
    // [blockCount * 32] -> [blockCount * 22 bytes]
    static func q5_0(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * 32
            let y = dst + block * BlockLayout.Q5_0.bytes

            var amax: Float = 0
            var max: Float = 0
            for j in 0..<32 where amax < abs(x[j]) {
                amax = abs(x[j])
                max = x[j]
            }

            let d = max / -16
            let id = d != 0 ? 1 / d : 0
            y.storeBytes(of: HalfPrecision.half(from: d).littleEndian, as: UInt16.self)

            var qh: UInt32 = 0
            for j in 0..<16 {
                let q0 = Swift.min(31, UInt8(x[j] * id + 16.5))
                let q1 = Swift.min(31, UInt8(x[j + 16] * id + 16.5))
                y.storeBytes(
                    of: (q0 & 0x0F) | (q1 << 4), toByteOffset: BlockLayout.Q5_0.qs + j,
                    as: UInt8.self)
                qh |= UInt32(q0 >> 4) << j | UInt32(q1 >> 4) << (j + 16)
            }
            y.storeBytes(of: qh.littleEndian, toByteOffset: BlockLayout.Q5_0.qh, as: UInt32.self)
        }
    }

    /// `quantize_row_q5_1_ref`: `q4_1` with 5 bits: d = (max - min) / 31.
    // [blockCount * 32] -> [blockCount * 24 bytes]
    static func q5_1(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * 32
            let y = dst + block * BlockLayout.Q5_1.bytes

            var min = Float.greatestFiniteMagnitude
            var max = -Float.greatestFiniteMagnitude
            for j in 0..<32 {
                if x[j] < min { min = x[j] }
                if x[j] > max { max = x[j] }
            }

            let d = (max - min) / 31
            let id = d != 0 ? 1 / d : 0
            y.storeBytes(of: HalfPrecision.half(from: d).littleEndian, as: UInt16.self)
            y.storeBytes(
                of: HalfPrecision.half(from: min).littleEndian, toByteOffset: BlockLayout.Q5_1.m,
                as: UInt16.self)

            // ggml does not cap q at 31 here: (x - min) / d <= 31 makes trunc(+ 0.5) <= 31.
            var qh: UInt32 = 0
            for j in 0..<16 {
                let q0 = UInt8((x[j] - min) * id + 0.5)
                let q1 = UInt8((x[j + 16] - min) * id + 0.5)
                y.storeBytes(
                    of: (q0 & 0x0F) | (q1 << 4), toByteOffset: BlockLayout.Q5_1.qs + j,
                    as: UInt8.self)
                qh |= UInt32((q0 >> 4) & 1) << j | UInt32((q1 >> 4) & 1) << (j + 16)
            }
            y.storeBytes(of: qh.littleEndian, toByteOffset: BlockLayout.Q5_1.qh, as: UInt32.self)
        }
    }

    /// `quantize_row_q8_K_ref`, the activation quantizer of the K-quants on every CPU:
    /// scale = -127 / max where max is the element of largest magnitude, q = nearest_int(x * scale)
    /// capped at 127, d = 1 / scale, and the sums of each 16 quants. An all-zero block gets d = 0
    /// and zero sums (ggml leaves its sums unwritten).
    // [blockCount * 256] -> [blockCount * 292 bytes]
    static func q8_K(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * 256
            let y = dst + block * BlockLayout.Q8_K.bytes

            var amax: Float = 0
            var max: Float = 0
            for j in 0..<256 where abs(x[j]) > amax {
                amax = abs(x[j])
                max = x[j]
            }

            guard amax != 0 else {
                y.initializeMemory(as: UInt8.self, repeating: 0, count: BlockLayout.Q8_K.bytes)
                continue
            }

            let scale = -127 / max
            for group in 0..<16 {
                var sum: Int32 = 0
                for j in (16 * group)..<(16 * group + 16) {
                    let q = Swift.min(127, nearestInt(scale * x[j]))
                    y.storeBytes(of: Int8(q), toByteOffset: BlockLayout.Q8_K.qs + j, as: Int8.self)
                    sum += q
                }
                y.storeBytes(
                    of: Int16(sum).littleEndian, toByteOffset: BlockLayout.Q8_K.bsums + 2 * group,
                    as: Int16.self)
            }
            y.storeBytes(of: (1 / scale).bitPattern.littleEndian, as: UInt32.self)
        }
    }

    // MARK: - Activation quantizers (ggml-cpu/arch/x86/quants.c)

    /// `quantize_row_q8_0` on x86: d = amax / 127 as in the reference, but q = x * (127 / amax)
    /// rounded ties-to-even (`_mm256_round_ps` with `_MM_ROUND_NEAREST`).
    // [blockCount * 32] -> [blockCount * 34 bytes]
    static func q8_0Activations(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blockCount: Int
    ) {
        for block in 0..<blockCount {
            let x = src + block * 32
            let y = dst + block * BlockLayout.Q8_0.bytes
            let amax = absoluteMax(x, count: 32)
            let id = amax != 0 ? 127 / amax : 0
            y.storeBytes(of: HalfPrecision.half(from: amax / 127).littleEndian, as: UInt16.self)

            for j in 0..<32 {
                let q = Int8(truncatingIfNeeded: nearestInt(x[j] * id))
                y.storeBytes(of: q, toByteOffset: BlockLayout.Q8_0.qs + j, as: Int8.self)
            }
        }
    }

    /// `quantize_row_q8_1` on x86: `q8_0Activations` plus s = d * sum(q) rounded to binary16.
    // [blockCount * 32] -> [blockCount * 36 bytes]
    static func q8_1Activations(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blockCount: Int
    ) {
        for block in 0..<blockCount {
            let x = src + block * 32
            let y = dst + block * BlockLayout.Q8_1.bytes
            let amax = absoluteMax(x, count: 32)
            let id = amax != 0 ? 127 / amax : 0

            var sum: Int32 = 0
            for j in 0..<32 {
                let q = Int8(truncatingIfNeeded: nearestInt(x[j] * id))
                y.storeBytes(of: q, toByteOffset: BlockLayout.Q8_1.qs + j, as: Int8.self)
                sum += Int32(q)
            }

            storeScales(y, d: amax / 127, sum: sum)
        }
    }

    /// Writes the `d` and `s` fields of a Q8_1 block; s = d * sum in binary32, then rounded.
    @inline(__always)
    private static func storeScales(_ y: UnsafeMutableRawPointer, d: Float, sum: Int32) {
        y.storeBytes(
            of: HalfPrecision.half(from: d).littleEndian, toByteOffset: BlockLayout.Q8_1.d,
            as: UInt16.self)
        y.storeBytes(
            of: HalfPrecision.half(from: Float(sum) * d).littleEndian,
            toByteOffset: BlockLayout.Q8_1.s, as: UInt16.self)
    }
}
