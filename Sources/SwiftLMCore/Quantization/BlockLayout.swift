/// Byte offsets of the fields inside one block of each quantized type, transcribed from the
/// `block_*` structs in ggml's `ggml-common.h`. Multi-byte fields are little-endian; `ggml_half`
/// fields are binary16. Block sizes and byte counts live on `ElementType`; a test holds each
/// layout's `bytes` to `ElementType.blockBytes`.
enum BlockLayout {
    /// `block_q4_0`: x = d * (q - 8), q in 0...15. Byte j of `qs` holds element j in its low
    /// nibble and element j + 16 in its high nibble.
    enum Q4_0 {
        static let d = 0
        static let qs = 2
        static let bytes = 18
    }

    /// `block_q4_1`: x = d * q + m, q in 0...15, nibbles packed as in `Q4_0`.
    enum Q4_1 {
        static let d = 0
        static let m = 2
        static let qs = 4
        static let bytes = 20
    }

    /// `block_q5_0`: x = d * (q - 16), q in 0...31: low 4 bits packed as in `Q4_0`, and bit j
    /// of the little-endian word `qh` the fifth bit of element j.
    enum Q5_0 {
        static let d = 0
        static let qh = 2
        static let qs = 6
        static let bytes = 22
    }

    /// `block_q5_1`: x = d * q + m, q in 0...31, bits packed as in `Q5_0`.
    enum Q5_1 {
        static let d = 0
        static let m = 2
        static let qh = 4
        static let qs = 8
        static let bytes = 24
    }

    /// `block_q8_0`: x = d * q, q a signed byte.
    enum Q8_0 {
        static let d = 0
        static let qs = 2
        static let bytes = 34
    }

    /// `block_q8_1`: as `Q8_0` plus `s` = d * sum(q), which lets a `Q4_1` dot product apply its
    /// offset `m` once per block instead of once per element.
    enum Q8_1 {
        static let d = 0
        static let s = 2
        static let qs = 4
        static let bytes = 36
    }

    /// `block_q4_K`: 256 elements in 8 sub-blocks of 32, x = d * sc[j] * q - dmin * m[j] with
    /// 6-bit sc and m packed into 12 bytes (see `KQuantScales`). Each 32 bytes of `qs` hold two
    /// sub-blocks: the low nibbles the first, the high nibbles the second.
    enum Q4_K {
        static let d = 0
        static let dmin = 2
        static let scales = 4
        static let qs = 16
        static let bytes = 144
    }

    /// `block_q5_K`: `Q4_K` with a fifth bit per element. Bit 2p of `qh[l]` is the high bit of
    /// element l of sub-block 2p, bit 2p + 1 that of element l of sub-block 2p + 1.
    enum Q5_K {
        static let d = 0
        static let dmin = 2
        static let scales = 4
        static let qh = 16
        static let qs = 48
        static let bytes = 176
    }

    /// `block_q6_K`: 256 elements in 16 sub-blocks of 16, x = d * scales[j] * (q - 32), with the
    /// low 4 bits of q in `ql` and the high 2 in `qh`. Each 128-element half uses 64 bytes of `ql`
    /// and 32 of `qh`; element l < 32 of the half and its neighbours l + 32, l + 64, l + 96 take
    /// nibbles of `ql[l]`, `ql[l + 32]` and bit pairs 0, 2, 4, 6 of `qh[l]`.
    enum Q6_K {
        static let ql = 0
        static let qh = 128
        static let scales = 192
        static let d = 208
        static let bytes = 210
    }

    /// `block_q8_K`: the activation type of the K-quants. A binary32 scale d, 256 signed bytes,
    /// and the sum of each 16 of them as `Int16`, which the K-quant dot products use for `dmin`.
    enum Q8_K {
        static let d = 0
        static let qs = 4
        static let bsums = 260
        static let bytes = 292
    }
}

/// The 6-bit scales and minimums of the 8 sub-blocks of a `Q4_K` or `Q5_K` block, unpacked from
/// their 12 bytes as ggml's `get_scale_min_k4` does: bytes 0-3 hold the low 6 bits of scales 0-3,
/// bytes 4-7 those of mins 0-3, bytes 8-11 the low 4 bits of scales and mins 4-7, and the top
/// 2 bits of bytes 0-7 the high bits of scales and mins 4-7.
struct KQuantScales {
    /// The scale of each sub-block, 0...63.
    var scales: InlineArray<8, Int32>

    /// The minimum of each sub-block, 0...63.
    var mins: InlineArray<8, Int32>

    @inline(__always)
    init(_ packed: UnsafeRawPointer) {
        @inline(__always) func byte(_ i: Int) -> Int32 {
            Int32(packed.load(fromByteOffset: i, as: UInt8.self))
        }

        scales = InlineArray(repeating: 0)
        mins = InlineArray(repeating: 0)
        for j in 0..<4 {
            scales[j] = byte(j) & 63
            mins[j] = byte(j + 4) & 63
        }
        for j in 4..<8 {
            scales[j] = (byte(j + 4) & 0xF) | ((byte(j - 4) >> 6) << 4)
            mins[j] = (byte(j + 4) >> 4) | ((byte(j) >> 6) << 4)
        }
    }
}
