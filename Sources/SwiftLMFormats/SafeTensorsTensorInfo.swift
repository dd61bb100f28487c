/// Where one tensor lives in a safetensors file and how it is laid out.
public struct SafeTensorsTensorInfo: Sendable, Equatable {
    /// The tensor's name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public let name: String

    /// The element type of the data.
    public let dtype: SafeTensorsDType

    /// The dimensions, outermost first as in PyTorch and `Tensor`; `[]` is a scalar, and a
    /// dimension of 0 makes an empty tensor.
    public let shape: [Int]

    /// The bytes of the data, counted from the start of the file's data section.
    public let dataOffsets: Range<Int>

    /// The size of the data in bytes.
    public var byteCount: Int { dataOffsets.count }

    /// The number of elements, the product of `shape`. The reader has checked it fits.
    public var elementCount: Int { shape.reduce(1, *) }
}
