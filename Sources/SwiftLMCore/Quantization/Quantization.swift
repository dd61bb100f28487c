/// The dot product of one weight row with one activation row, both in their block formats:
/// `weightRow` holds `count` elements of the weight type and `activations` the same count of that
/// type's activation type (`Quantization.activationType(for:)`). `count` must be a whole number
/// of blocks of both; kernels check nothing in release builds.
/// Four output features of a product at once: `output[r * outputStride + i]` = weight row i ·
/// activation row r for i in 0..<4 and r in 0..<rowCount, the weight rows `weightRowBytes`
/// apart and the activation rows `activationRowBytes` apart, `count` elements each. Every
/// result is the bits of the type's `DotKernel` on the same two rows.
public typealias TileKernel =
    @Sendable (
        _ weights: UnsafeRawPointer, _ weightRowBytes: Int, _ activations: UnsafeRawPointer,
        _ activationRowBytes: Int, _ rowCount: Int, _ count: Int,
        _ output: UnsafeMutablePointer<Float>, _ outputStride: Int
    ) -> Void

/// The dot products of one activation row with the weight rows `rows` (`weightRowBytes`
/// apart): `output[r]` for r in `rows`, each the bits of the type's `DotKernel`. One call per
/// piece of a decode step's product.
public typealias RowsKernel =
    @Sendable (
        _ weights: UnsafeRawPointer, _ weightRowBytes: Int, _ activations: UnsafeRawPointer,
        _ count: Int, _ output: UnsafeMutablePointer<Float>, _ rows: Range<Int>
    ) -> Void

public typealias DotKernel =
    @Sendable (_ weightRow: UnsafeRawPointer, _ activations: UnsafeRawPointer, _ count: Int) ->
    Float

/// Quantized block formats and the dot products on them, computed the way llama.cpp's CPU
/// backend computes them so that SwiftLM's numbers match its numbers.
///
/// A matrix-vector product in ggml does not dequantize its weights. It first quantizes the
/// activation row to the weight type's "vec_dot_type" (`activationType(for:)`), then takes an
/// integer dot product per block and scales it by the blocks' scales (`type_traits_cpu` in
/// ggml-cpu.c, kernels in ggml-cpu/quants.c). Choose the kernel once per weight matrix:
///
///     let activationType = Quantization.activationType(for: weights.type)
///     let dot = Quantization.dotKernel(for: weights.type)
///     Quantization.quantizeActivations(x, count: hidden, as: activationType, into: buffer)
///     for row in 0..<rows { y[row] = dot(weights.row(row), buffer, hidden) }
///
/// Dot products exist for the weight types of `ElementType.isSupported` (F32, F16, BF16, Q8_0,
/// Q4_0, Q4_1, Q4_K, Q5_K, Q6_K). Callers check that when a model loads and reject other types
/// there with an "unsupported" error; passing another type here is a programming error and stops
/// the process with a message naming it, in release builds too. `canDequantize` and `canQuantize`
/// tell which types the row conversions take. Counts that are not whole blocks are caught by
/// preconditions in debug builds only: SwiftLMCore's release builds use -Ounchecked.
public enum Quantization {
    /// The type ggml quantizes activations to before a dot product with `weightType` weights
    /// (`vec_dot_type` in ggml-cpu.c's `type_traits_cpu`).
    ///
    /// - Precondition: `weightType.isSupported`.
    public static func activationType(for weightType: ElementType) -> ElementType {
        switch weightType {
        case .f32, .f16, .bf16: return weightType
        case .q8_0, .q4_0: return .q8_0
        case .q4_1: return .q8_1
        case .q4_K, .q5_K, .q6_K: return .q8_K
        default: unsupported("dot product", weightType)
        }
    }

    /// The fastest dot kernel for `weightType` weights against activations of
    /// `activationType(for: weightType)`, as llama.cpp's CPU backend runs it for a product with
    /// `rowCount` activation rows. The count matters for F32 and F16 only: ggml hands products of
    /// two rows or more to llamafile's `tinyBLAS`, whose sums run in another order than the
    /// `ggml_vec_dot_*` kernels it uses for one row.
    ///
    /// For F32, F16, Q8_0, Q4_0 and Q4_1 the result is bit for bit llama.cpp's (on x86, built
    /// for AVX-512) and equal to `referenceDotKernel(for:rowCount:)`'s. For BF16 and the K-quants
    /// the float sums run in a different order from the reference, so the two agree to rounding
    /// (the tests name the tolerance per type).
    ///
    /// - Precondition: `weightType.isSupported`.
    /// The rows kernel for `weightType` where this CPU has one (Q4_1 and Q8_0 on AVX-512 VNNI),
    /// else nil: products then call the dot kernel once per row.
    public static func rowsKernel(for weightType: ElementType) -> RowsKernel? {
        switch weightType {
        case .q4_1: return FastDot.avx512RowsQ4_1
        case .q8_0: return FastDot.avx512RowsQ8_0
        default: return nil
        }
    }

    /// The tile kernel for `weightType` where this CPU has one (Q4_1 and Q8_0 on AVX-512
    /// VNNI), else nil: products then call the dot kernel once per output element.
    public static func tileKernel(for weightType: ElementType) -> TileKernel? {
        switch weightType {
        case .q4_1: return FastDot.avx512TileQ4_1 ?? FastDot.tileQ4_1
        case .q8_0: return FastDot.avx512TileQ8_0 ?? FastDot.tileQ8_0
        default: return nil
        }
    }

    public static func dotKernel(for weightType: ElementType, rowCount: Int = 1) -> DotKernel {
        let batched = rowCount >= 2
        switch weightType {
        case .f32: return batched ? FastDot.f32Batched : FastDot.f32
        case .f16: return batched ? FastDot.f16Batched : FastDot.f16
        case .bf16: return FastDot.bf16
        case .q8_0: return FastDot.avx512Q8_0 ?? FastDot.q8_0
        case .q4_0: return FastDot.q4_0
        case .q4_1: return FastDot.avx512Q4_1 ?? FastDot.q4_1
        case .q4_K: return FastDot.q4_K
        case .q5_K: return FastDot.q5_K
        case .q6_K: return FastDot.q6_K
        default: unsupported("dot product", weightType)
        }
    }

    /// The plain scalar dot kernel for `weightType`, the yardstick of `dotKernel(for:rowCount:)`.
    /// For F32, F16 and the 32-element block types it spells out the lanes and fused
    /// multiply-adds of llama.cpp's x86 kernels; for BF16 and the K-quants it follows ggml's
    /// portable C (`ggml_vec_dot_*_generic` in ggml-cpu/quants.c) step for step.
    ///
    /// - Precondition: `weightType.isSupported`.
    public static func referenceDotKernel(
        for weightType: ElementType, rowCount: Int = 1
    ) -> DotKernel {
        let batched = rowCount >= 2
        switch weightType {
        case .f32: return batched ? ReferenceDot.f32Batched : ReferenceDot.f32
        case .f16: return batched ? ReferenceDot.f16Batched : ReferenceDot.f16
        case .bf16: return ReferenceDot.bf16
        case .q8_0: return ReferenceDot.q8_0
        case .q4_0: return ReferenceDot.q4_0
        case .q4_1: return ReferenceDot.q4_1
        case .q4_K: return ReferenceDot.q4_K
        case .q5_K: return ReferenceDot.q5_K
        case .q6_K: return ReferenceDot.q6_K
        default: unsupported("dot product", weightType)
        }
    }

    /// Quantizes a row of `count` activations to blocks of `type`, as llama.cpp's CPU backend does
    /// before a dot product (`from_float` of the type in `type_traits_cpu`, x86 build).
    ///
    /// For Q8_0 and Q8_1 that is the AVX path of ggml-cpu/arch/x86/quants.c, which differs from
    /// `quantizeRow` (ggml's `quantize_row_*_ref`) in two ways: it scales by 127 / amax rather than
    /// 1 / d, and it rounds ties to even rather than away from zero. On random floats the two
    /// disagree by one step in about 3 elements per million; on exact ties they always disagree.
    /// Q8_K, F16 and BF16 use the same code as `quantizeRow`. Tests hold all six to the bytes of
    /// llama.cpp's own `libggml-cpu`.
    ///
    /// - Precondition: `type` is an activation type (F32, F16, BF16, Q8_0, Q8_1, Q8_K) and `count`
    ///   a whole number of its blocks; `dst` has room for `type.byteCount(elements: count)` bytes.
    public static func quantizeActivations(
        _ x: UnsafePointer<Float>, count: Int, as type: ElementType,
        into dst: UnsafeMutableRawPointer
    ) {
        precondition(
            count >= 0 && count % type.blockSize == 0, "\(count) is not whole \(type) blocks")
        let blockCount = count / type.blockSize

        switch type {
        case .q8_0: Quantize.q8_0Activations(x, dst, blockCount: blockCount)
        case .q8_1: Quantize.q8_1Activations(x, dst, blockCount: blockCount)
        case .q8_K: Quantize.q8_K(x, dst, blockCount: blockCount)
        case .f32: dst.copyMemory(from: x, byteCount: count * 4)
        case .f16: Quantize.f16(x, dst, count: count)
        case .bf16: Quantize.bf16(x, dst, count: count)
        default: unsupported("activation quantization", type)
        }
    }

    /// Converts `count` elements of `type` at `src` to floats at `dst`, bit-exact with ggml's
    /// `dequantize_row_*` (ggml-quants.c) and gguf-py's `gguf.quants.dequantize`.
    ///
    /// ggml's C may fuse `d * q + m` into one FMA when built for a CPU that has it; SwiftLM never
    /// fuses, which is what gguf-py computes and what an unfused build of ggml computes.
    ///
    /// - Precondition: `canDequantize(type)`, and `count` is a whole number of blocks of `type`.
    public static func dequantizeRow(
        _ type: ElementType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        precondition(
            count >= 0 && count % type.blockSize == 0, "\(count) is not whole \(type) blocks")
        let blockCount = count / type.blockSize

        switch type {
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .f16: Dequantize.f16(src, dst, count: count)
        case .bf16: Dequantize.bf16(src, dst, count: count)
        case .q8_0: Dequantize.q8_0(src, dst, blockCount: blockCount)
        case .q8_1: Dequantize.q8_1(src, dst, blockCount: blockCount)
        case .q8_K: Dequantize.q8_K(src, dst, blockCount: blockCount)
        case .q4_0: Dequantize.q4_0(src, dst, blockCount: blockCount)
        case .q4_1: Dequantize.q4_1(src, dst, blockCount: blockCount)
        case .q4_K: Dequantize.q4_K(src, dst, blockCount: blockCount)
        case .q5_K: Dequantize.q5_K(src, dst, blockCount: blockCount)
        case .q6_K: Dequantize.q6_K(src, dst, blockCount: blockCount)
        case .q5_0: Dequantize.q5_0(src, dst, blockCount: blockCount)
        case .q5_1: Dequantize.q5_1(src, dst, blockCount: blockCount)
        default: unsupported("dequantize", type)
        }
    }

    /// Quantizes `count` floats at `src` to blocks of `type` at `dst`, bit-exact with ggml's
    /// reference quantizers (`quantize_row_*_ref` in ggml-quants.c, which write model files) and,
    /// where it has them, gguf-py's `gguf.quants.quantize`. Inputs must be finite.
    ///
    /// - Precondition: `canQuantize(type)`, and `count` is a whole number of blocks of `type`.
    public static func quantizeRow(
        _ type: ElementType, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer,
        count: Int
    ) {
        precondition(
            count >= 0 && count % type.blockSize == 0, "\(count) is not whole \(type) blocks")
        let blockCount = count / type.blockSize

        switch type {
        case .f32: dst.copyMemory(from: src, byteCount: count * 4)
        case .f16: Quantize.f16(src, dst, count: count)
        case .bf16: Quantize.bf16(src, dst, count: count)
        case .q8_0: Quantize.q8_0(src, dst, blockCount: blockCount)
        case .q8_1: Quantize.q8_1(src, dst, blockCount: blockCount)
        case .q8_K: Quantize.q8_K(src, dst, blockCount: blockCount)
        case .q4_0: Quantize.q4_0(src, dst, blockCount: blockCount)
        case .q4_1: Quantize.q4_1(src, dst, blockCount: blockCount)
        case .q5_0: Quantize.q5_0(src, dst, blockCount: blockCount)
        case .q5_1: Quantize.q5_1(src, dst, blockCount: blockCount)
        default: unsupported("quantize", type)
        }
    }

    /// Whether `dequantizeRow` takes `type`: the supported weight types, the activation types, and
    /// Q5_0 and Q5_1 (readable, though SwiftLM has no dot product for them).
    public static func canDequantize(_ type: ElementType) -> Bool {
        switch type {
        case .f32, .f16, .bf16, .q8_0, .q8_1, .q8_K, .q4_0, .q4_1, .q5_0, .q5_1: return true
        case .q4_K, .q5_K, .q6_K: return true
        default: return false
        }
    }

    /// Whether `quantizeRow` takes `type`. The K-quant quantizers (ggml's `make_qkx2_quants` and
    /// kin, which search for scales) are not written, so Q4_K, Q5_K and Q6_K are read-only.
    public static func canQuantize(_ type: ElementType) -> Bool {
        switch type {
        case .f32, .f16, .bf16, .q8_0, .q8_1, .q8_K, .q4_0, .q4_1, .q5_0, .q5_1: return true
        default: return false
        }
    }

    /// Stops on a type an operation does not implement: callers are expected to have checked.
    /// `fatalError` rather than `preconditionFailure`, because SwiftLMCore builds with -Ounchecked
    /// in release, where a failed precondition is undefined behaviour instead of a stop (the
    /// check costs nothing here: it runs once per matrix or row, outside the kernels).
    private static func unsupported(_ operation: String, _ type: ElementType) -> Never {
        fatalError("unsupported: \(operation) of \(type) (raw type \(type.rawValue))")
    }
}
