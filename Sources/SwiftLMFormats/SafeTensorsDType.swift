import SwiftLMCore

/// The element types a safetensors header can name, spelled as in the file.
///
/// The list and the sizes follow the reference library's `Dtype` (huggingface/safetensors,
/// `safetensors/src/tensor.rs`), checked against what its version 0.8.0 accepts. Every one can
/// be listed; `SafeTensorsFile.tensor(_:)` reads F32, F16 and BF16, and `floatTensor(_:)` also
/// F64.
public enum SafeTensorsDType: String, Sendable, CaseIterable, CustomStringConvertible {
    case bool = "BOOL"
    case f4 = "F4"
    case f6E2M3 = "F6_E2M3"
    case f6E3M2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case f8E8M0 = "F8_E8M0"
    case f8E4M3FNUZ = "F8_E4M3FNUZ"
    case f8E5M2FNUZ = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bits per element. F4 and F6 pack several elements into a byte, so sizes are counted in
    /// bits and a tensor must fill whole bytes.
    public var bitCount: Int {
        switch self {
        case .f4: return 4
        case .f6E2M3, .f6E3M2: return 6
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .c64, .f64, .i64, .u64: return 64
        }
    }

    /// The `ElementType` with the same layout, or nil when SwiftLM has none.
    public var elementType: ElementType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .f64: return .f64
        case .i8: return .i8
        case .i16: return .i16
        case .i32: return .i32
        case .i64: return .i64
        default: return nil
        }
    }

    /// The dtype of `type`, or nil for quantized types, which safetensors cannot hold.
    public init?(_ type: ElementType) {
        guard let match = Self.allCases.first(where: { $0.elementType == type }) else {
            return nil
        }
        self = match
    }

    public var description: String { rawValue }
}
