/// Conversions between `Float` and the two 16-bit float formats GGUF files hold: IEEE binary16
/// (`F16` tensors and the scales of every quantized block) and bfloat16 (`BF16` tensors).
///
/// Widening is exact, so any correct conversion gives ggml's numbers. Narrowing rounds to
/// nearest, ties to even, as ggml does (`ggml_compute_fp32_to_fp16` and F16C's `vcvtps2ph` for
/// binary16, `ggml_compute_fp32_to_bf16` in `ggml-impl.h` for bfloat16).
enum HalfPrecision {
    /// 2^112: the distance between binary16's exponent bias (15) and binary32's (127).
    private static let exponentRebias = Float(bitPattern: 0x7780_0000)

    /// The value of the binary16 number with bits `bits`; exact for every input.
    ///
    /// The 15 magnitude bits shifted into a binary32 are the same number scaled by 2^-112, for
    /// normal and subnormal halves alike, so one exact multiply rescales both. Infinities and NaNs
    /// (exponent 31) get binary32's all-ones exponent instead, keeping the NaN payload.
    @inline(__always)
    static func float(fromHalf bits: UInt16) -> Float {
        let wide = UInt32(bits)
        let magnitude = (wide & 0x7FFF) << 13
        let sign = (wide & 0x8000) << 16

        if magnitude >= 0x0F80_0000 {
            return Float(bitPattern: sign | magnitude | 0x7F80_0000)
        }
        let value = Float(bitPattern: magnitude) * exponentRebias
        return Float(bitPattern: sign | value.bitPattern)
    }

    /// The binary16 bits nearest to `value`, ties to even; overflow gives infinity.
    @inline(__always)
    static func half(from value: Float) -> UInt16 {
        Float16(value).bitPattern
    }

    /// The value of the bfloat16 number with bits `bits`: the top half of a binary32.
    @inline(__always)
    static func float(fromBFloat bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// The bfloat16 bits nearest to `value`, ties to even, as `ggml_compute_fp32_to_bf16`:
    /// NaNs are kept and made quiet rather than rounded (rounding could carry them into infinity).
    @inline(__always)
    static func bfloat(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 {
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        let roundingBias = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    /// Every binary16 value as a `Float`, indexed by its bits (256 KiB, built on first use).
    ///
    /// The fast dot kernels read their block scales here: one load beats the dozen integer
    /// operations of `float(fromHalf:)` and needs no conversion instruction. ggml's x86 block
    /// kernels read theirs the same way (`ggml_table_f32_f16` in ggml-cpu.c).
    /// Scales of one tensor share a few exponents, so few of the table's cache lines stay hot.
    /// Written once inside Swift's thread-safe lazy initialization and only read after, so
    /// sharing the pointer across threads is safe.
    nonisolated(unsafe) static let table: UnsafePointer<Float> = {
        let table = UnsafeMutablePointer<Float>.allocate(capacity: 1 << 16)
        for bits in 0..<(1 << 16) {
            table[bits] = float(fromHalf: UInt16(bits))
        }
        return UnsafePointer(table)
    }()
}

extension UnsafeRawPointer {
    /// The binary16 number stored little-endian `offset` bytes past `self`, as a `Float`.
    @inline(__always)
    func loadHalf(at offset: Int) -> Float {
        HalfPrecision.float(fromHalf: loadUInt16(at: offset))
    }

    /// The 16-bit word stored little-endian `offset` bytes past `self` (GGUF is little-endian).
    @inline(__always)
    func loadUInt16(at offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
}
