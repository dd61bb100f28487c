/// Reference dequantization, one function per type, following `dequantize_row_*` in ggml's
/// ggml-quants.c operation for operation so the floats come out bit-identical. Each takes a row of
/// `blockCount` blocks and writes `blockCount * blockSize` floats.
enum Dequantize {
    static func f16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            dst[i] = src.loadHalf(at: 2 * i)
        }
    }

    static func bf16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            dst[i] = HalfPrecision.float(fromBFloat: src.loadUInt16(at: 2 * i))
        }
    }

    // [blockCount * 34 bytes] -> [blockCount * 32]
    static func q8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        int8Blocks(
            src, dst, blockCount: blockCount, blockBytes: BlockLayout.Q8_0.bytes,
            scaleOffset: BlockLayout.Q8_0.d, valuesOffset: BlockLayout.Q8_0.qs)
    }

    /// ggml has no `dequantize_row_q8_1`; this is the obvious d * q, ignoring the `s` field.
    // [blockCount * 36 bytes] -> [blockCount * 32]
    static func q8_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        int8Blocks(
            src, dst, blockCount: blockCount, blockBytes: BlockLayout.Q8_1.bytes,
            scaleOffset: BlockLayout.Q8_1.d, valuesOffset: BlockLayout.Q8_1.qs)
    }

    /// Blocks of 32 signed bytes and one binary16 scale: element = q * d.
    @inline(__always)
    private static func int8Blocks(
        _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int,
        blockBytes: Int, scaleOffset: Int, valuesOffset: Int
    ) {
        for block in 0..<blockCount {
            let x = src + block * blockBytes
            let y = dst + block * 32
            let d = x.loadHalf(at: scaleOffset)

            for j in 0..<32 {
                y[j] = Float(x.load(fromByteOffset: valuesOffset + j, as: Int8.self)) * d
            }
        }
    }

    // [blockCount * 292 bytes] -> [blockCount * 256]
    static func q8_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * BlockLayout.Q8_K.bytes
            let y = dst + block * 256
            let d = Float(bitPattern: UInt32(littleEndian: x.loadUnaligned(as: UInt32.self)))

            for j in 0..<256 {
                y[j] = d * Float(x.load(fromByteOffset: BlockLayout.Q8_K.qs + j, as: Int8.self))
            }
        }
    }

    // [blockCount * 18 bytes] -> [blockCount * 32]
    static func q4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * BlockLayout.Q4_0.bytes
            let y = dst + block * 32
            let d = x.loadHalf(at: BlockLayout.Q4_0.d)

            for j in 0..<16 {
                let byte = x.load(fromByteOffset: BlockLayout.Q4_0.qs + j, as: UInt8.self)
                y[j] = Float(Int32(byte & 0x0F) - 8) * d
                y[j + 16] = Float(Int32(byte >> 4) - 8) * d
            }
        }
    }

    // [blockCount * 20 bytes] -> [blockCount * 32]
    static func q4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * BlockLayout.Q4_1.bytes
            let y = dst + block * 32
            let d = x.loadHalf(at: BlockLayout.Q4_1.d)
            let m = x.loadHalf(at: BlockLayout.Q4_1.m)

            for j in 0..<16 {
                let byte = x.load(fromByteOffset: BlockLayout.Q4_1.qs + j, as: UInt8.self)
                y[j] = Float(byte & 0x0F) * d + m
                y[j + 16] = Float(byte >> 4) * d + m
            }
        }
    }

    // [blockCount * 22 bytes] -> [blockCount * 32]
    static func q5_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * BlockLayout.Q5_0.bytes
            let y = dst + block * 32
            let d = x.loadHalf(at: BlockLayout.Q5_0.d)
            let qh = UInt32(
                littleEndian: x.loadUnaligned(fromByteOffset: BlockLayout.Q5_0.qh, as: UInt32.self))

            for j in 0..<16 {
                let byte = UInt32(x.load(fromByteOffset: BlockLayout.Q5_0.qs + j, as: UInt8.self))
                let q0 = (byte & 0x0F) | (((qh >> j) << 4) & 0x10)
                let q1 = (byte >> 4) | ((qh >> (j + 12)) & 0x10)
                y[j] = Float(Int32(q0) - 16) * d
                y[j + 16] = Float(Int32(q1) - 16) * d
            }
        }
    }

    // [blockCount * 24 bytes] -> [blockCount * 32]
    static func q5_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * BlockLayout.Q5_1.bytes
            let y = dst + block * 32
            let d = x.loadHalf(at: BlockLayout.Q5_1.d)
            let m = x.loadHalf(at: BlockLayout.Q5_1.m)
            let qh = UInt32(
                littleEndian: x.loadUnaligned(fromByteOffset: BlockLayout.Q5_1.qh, as: UInt32.self))

            for j in 0..<16 {
                let byte = UInt32(x.load(fromByteOffset: BlockLayout.Q5_1.qs + j, as: UInt8.self))
                let q0 = (byte & 0x0F) | (((qh >> j) << 4) & 0x10)
                let q1 = (byte >> 4) | ((qh >> (j + 12)) & 0x10)
                y[j] = Float(q0) * d + m
                y[j + 16] = Float(q1) * d + m
            }
        }
    }

    // [blockCount * 144 bytes] -> [blockCount * 256]
    static func q4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * BlockLayout.Q4_K.bytes
            let d = x.loadHalf(at: BlockLayout.Q4_K.d)
            let dmin = x.loadHalf(at: BlockLayout.Q4_K.dmin)
            let packed = KQuantScales(x + BlockLayout.Q4_K.scales)

            // Each 32 bytes of qs are two sub-blocks: low nibbles, then high nibbles.
            for pair in 0..<4 {
                let qs = x + BlockLayout.Q4_K.qs + 32 * pair
                let y = dst + block * 256 + 64 * pair
                let d1 = d * Float(packed.scales[2 * pair])
                let m1 = dmin * Float(packed.mins[2 * pair])
                let d2 = d * Float(packed.scales[2 * pair + 1])
                let m2 = dmin * Float(packed.mins[2 * pair + 1])

                for l in 0..<32 {
                    let byte = qs.load(fromByteOffset: l, as: UInt8.self)
                    y[l] = d1 * Float(byte & 0x0F) - m1
                    y[l + 32] = d2 * Float(byte >> 4) - m2
                }
            }
        }
    }

    // [blockCount * 176 bytes] -> [blockCount * 256]
    static func q5_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * BlockLayout.Q5_K.bytes
            let d = x.loadHalf(at: BlockLayout.Q5_K.d)
            let dmin = x.loadHalf(at: BlockLayout.Q5_K.dmin)
            let packed = KQuantScales(x + BlockLayout.Q5_K.scales)
            let qh = x + BlockLayout.Q5_K.qh

            for pair in 0..<4 {
                let qs = x + BlockLayout.Q5_K.qs + 32 * pair
                let y = dst + block * 256 + 64 * pair
                let d1 = d * Float(packed.scales[2 * pair])
                let m1 = dmin * Float(packed.mins[2 * pair])
                let d2 = d * Float(packed.scales[2 * pair + 1])
                let m2 = dmin * Float(packed.mins[2 * pair + 1])

                for l in 0..<32 {
                    let byte = qs.load(fromByteOffset: l, as: UInt8.self)
                    let high = qh.load(fromByteOffset: l, as: UInt8.self) >> (2 * pair)
                    let q1 = (byte & 0x0F) | ((high & 1) << 4)
                    let q2 = (byte >> 4) | ((high & 2) << 3)
                    y[l] = d1 * Float(q1) - m1
                    y[l + 32] = d2 * Float(q2) - m2
                }
            }
        }
    }

    // [blockCount * 210 bytes] -> [blockCount * 256]
    static func q6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blockCount: Int) {
        for block in 0..<blockCount {
            let x = src + block * BlockLayout.Q6_K.bytes
            let d = x.loadHalf(at: BlockLayout.Q6_K.d)

            for half in 0..<2 {
                let ql = x + BlockLayout.Q6_K.ql + 64 * half
                let qh = x + BlockLayout.Q6_K.qh + 32 * half
                let scales = x + BlockLayout.Q6_K.scales + 8 * half
                let y = dst + block * 256 + 128 * half

                @inline(__always) func scale(_ i: Int) -> Float {
                    Float(scales.load(fromByteOffset: i, as: Int8.self))
                }

                for l in 0..<32 {
                    let low0 = Int32(ql.load(fromByteOffset: l, as: UInt8.self))
                    let low1 = Int32(ql.load(fromByteOffset: l + 32, as: UInt8.self))
                    let high = Int32(qh.load(fromByteOffset: l, as: UInt8.self))
                    let q1 = ((low0 & 0xF) | ((high & 3) << 4)) - 32
                    let q2 = ((low1 & 0xF) | (((high >> 2) & 3) << 4)) - 32
                    let q3 = ((low0 >> 4) | (((high >> 4) & 3) << 4)) - 32
                    let q4 = ((low1 >> 4) | (((high >> 6) & 3) << 4)) - 32

                    // ggml computes d * sc * q left to right: (d * sc) * q.
                    let group = l / 16
                    y[l] = d * scale(group) * Float(q1)
                    y[l + 32] = d * scale(group + 2) * Float(q2)
                    y[l + 64] = d * scale(group + 4) * Float(q3)
                    y[l + 96] = d * scale(group + 6) * Float(q4)
                }
            }
        }
    }
}
