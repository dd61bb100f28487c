import SwiftLMCore

/// Where one tensor lives in a GGUF file and how it is laid out.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    public let name: String

    /// The dimensions in ggml order: `shape[0]` (ne0) is the contiguous row length, so a
    /// `[576, 49152]` embedding holds 49152 rows of 576 elements.
    public let shape: [Int]

    /// The element type of the data.
    public let type: ElementType

    /// The byte offset of the data from the start of the file's data section.
    public let offset: Int

    /// The size of the data in bytes.
    public let byteCount: Int

    /// The number of elements, the product of `shape`. The reader has checked it fits.
    public var elementCount: Int {
        shape.reduce(1, *)
    }

    /// The number of elements in one row, `shape[0]`.
    public var rowLength: Int { shape[0] }

    /// The number of rows, the product of every dimension after the first.
    public var rowCount: Int { shape.dropFirst().reduce(1, *) }
}

/// Why a shape cannot describe a tensor of some type: the field at fault, its value and what
/// would be allowed. The reader and the writer word it as their own errors.
struct TensorShapeProblem: Error {
    let field: String
    let value: String
    let expected: String
}

extension GGUFTensorInfo {
    /// The most dimensions a ggml tensor has (`GGML_MAX_DIMS`).
    static let maxDimensionCount = 4

    /// The bytes a tensor of this shape and type takes, after checking what a hostile file
    /// could get wrong: the number of dimensions, dimensions below 1, an element count that
    /// overflows, and rows that are not a whole number of blocks.
    static func checkedByteCount(
        shape: [Int], type: ElementType
    ) -> Result<Int, TensorShapeProblem> {
        let shown = "[" + shape.map(String.init).joined(separator: ", ") + "]"
        guard (1...maxDimensionCount).contains(shape.count) else {
            return .failure(
                TensorShapeProblem(
                    field: "n_dims", value: "\(shape.count)", expected: "1...\(maxDimensionCount)"))
        }
        guard shape.allSatisfy({ $0 >= 1 }) else {
            return .failure(
                TensorShapeProblem(field: "dims", value: shown, expected: "every dimension >= 1"))
        }

        var elementCount = 1
        for dimension in shape {
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                return .failure(
                    TensorShapeProblem(
                        field: "dims", value: shown,
                        expected: "an element count below \(Int.max)"))
            }
            elementCount = product
        }

        // ggml quantizes each row on its own, so a row must be whole blocks, not just the
        // tensor as a whole (ggml's gguf.cpp checks ne0 the same way).
        guard shape[0] % type.blockSize == 0 else {
            return .failure(
                TensorShapeProblem(
                    field: "dims", value: shown,
                    expected: "a row length (dims[0]) that is a multiple of "
                        + "\(type.blockSize), the block size of \(messageName(of: type))"))
        }
        guard let bytes = type.byteCount(elements: elementCount) else {
            return .failure(
                TensorShapeProblem(
                    field: "dims", value: shown,
                    expected: "a size in bytes below \(Int.max) for \(messageName(of: type))"))
        }
        return .success(bytes)
    }
}

/// How messages name an element type: its ggml name and number, e.g. `Q4_1 (ggml type 3)`.
func messageName(of type: ElementType) -> String {
    "\(type) (ggml type \(type.rawValue))"
}
