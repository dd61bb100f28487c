/// The element types of GGML tensors, numbered as in the GGUF specification (`ggml_type`).
///
/// Quantized types store elements in fixed-size blocks: `blockSize` elements packed into
/// `blockBytes` bytes. A row of a quantized matrix is a whole number of blocks.
public enum ElementType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q8_1 = 9
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case q8_K = 15
    case iq2_XXS = 16
    case iq2_XS = 17
    case iq3_XXS = 18
    case iq1_S = 19
    case iq4_NL = 20
    case iq3_S = 21
    case iq2_S = 22
    case iq4_XS = 23
    case i8 = 24
    case i16 = 25
    case i32 = 26
    case i64 = 27
    case f64 = 28
    case iq1_M = 29
    case bf16 = 30

    /// Elements per block (1 for plain types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_NL: return 32
        default: return 256  // the K-quants and the i-quants use super-blocks of 256
        }
    }

    /// Bytes per block, from the block layouts in ggml's `ggml-common.h`.
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q4_0: return 2 + 16
        case .q4_1: return 2 + 2 + 16
        case .q5_0: return 2 + 4 + 16
        case .q5_1: return 2 + 2 + 4 + 16
        case .q8_0: return 2 + 32
        case .q8_1: return 2 + 2 + 32
        case .q2_K: return 16 + 64 + 2 + 2
        case .q3_K: return 32 + 64 + 12 + 2
        case .q4_K: return 2 + 2 + 12 + 128
        case .q5_K: return 2 + 2 + 12 + 32 + 128
        case .q6_K: return 128 + 64 + 16 + 2
        case .q8_K: return 4 + 256 + 32
        case .iq2_XXS: return 2 + 64
        case .iq2_XS: return 2 + 64 + 8
        case .iq3_XXS: return 2 + 96
        case .iq1_S: return 2 + 32 + 16
        case .iq4_NL: return 2 + 16
        case .iq3_S: return 2 + 64 + 8 + 32 + 4
        case .iq2_S: return 2 + 64 + 16
        case .iq4_XS: return 2 + 2 + 4 + 128
        case .iq1_M: return 32 + 16 + 8
        }
    }

    /// Whether SwiftLM can compute with tensors of this type. The others can be read from a
    /// file and listed, but a model that needs them is rejected with an "unsupported" error.
    public var isSupported: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q5_K, .q6_K: return true
        default: return false
        }
    }

    /// The name ggml and llama.cpp print, e.g. `Q4_K`.
    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .f64: return "F64"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        case .iq2_XXS: return "IQ2_XXS"
        case .iq2_XS: return "IQ2_XS"
        case .iq3_XXS: return "IQ3_XXS"
        case .iq1_S: return "IQ1_S"
        case .iq4_NL: return "IQ4_NL"
        case .iq3_S: return "IQ3_S"
        case .iq2_S: return "IQ2_S"
        case .iq4_XS: return "IQ4_XS"
        case .iq1_M: return "IQ1_M"
        }
    }

    /// Bytes taken by `count` elements, or nil when `count` is not a whole number of blocks or
    /// the size overflows. Callers that read sizes from files rely on both checks.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (bytes, overflow) = (count / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }
}
