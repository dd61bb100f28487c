import Synchronization

/// The memory behind a tensor: either owned (allocated here, freed on deinit) or borrowed from
/// an owner that keeps it alive, such as a memory-mapped model file.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    private let owner: AnyObject?

    /// Allocates `byteCount` zeroed bytes aligned for any SIMD load.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = .allocate(byteCount: max(byteCount, 1), alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        owner = nil
        TensorMemory.allocated(byteCount)
    }

    /// Allocates `byteCount` bytes aligned for any SIMD load, left uninitialized: for results
    /// that the caller overwrites completely, where zeroing first would cost a pass over memory.
    public init(uninitializedByteCount byteCount: Int) {
        self.byteCount = byteCount
        pointer = .allocate(byteCount: max(byteCount, 1), alignment: 64)
        owner = nil
        TensorMemory.allocated(byteCount)
    }

    /// Borrows `byteCount` bytes at `pointer`; `owner` is retained so the bytes stay valid.
    /// Borrowed memory may be read-only (a private file mapping): never write through it.
    public init(borrowing pointer: UnsafeRawPointer, byteCount: Int, owner: AnyObject) {
        self.pointer = UnsafeMutableRawPointer(mutating: pointer)
        self.byteCount = byteCount
        self.owner = owner
    }

    deinit {
        if owner == nil {
            pointer.deallocate()
            TensorMemory.freed(byteCount)
        }
    }
}

/// Bytes held by tensors that own their memory, now and at most: the exact figure behind a
/// claim such as "checkpointing keeps a third of the activations", which the process's resident
/// size blurs (the allocator keeps freed pages).
public enum TensorMemory {
    private static let live = Atomic<Int>(0)
    private static let peak = Atomic<Int>(0)

    /// Bytes owned by tensors alive now.
    public static var liveBytes: Int { live.load(ordering: .relaxed) }
    /// The most bytes owned by tensors at once since the start or the last `resetPeak`.
    public static var peakBytes: Int { peak.load(ordering: .relaxed) }

    /// Starts a new peak from the current live bytes.
    public static func resetPeak() { peak.store(liveBytes, ordering: .relaxed) }

    static func allocated(_ bytes: Int) {
        let now = live.add(bytes, ordering: .relaxed).newValue
        _ = peak.max(now, ordering: .relaxed)
    }

    static func freed(_ bytes: Int) { live.subtract(bytes, ordering: .relaxed) }
}

/// SwiftLM's one tensor type: a row-major n-dimensional array of any `ElementType`.
///
/// Shapes are written outermost first, as in PyTorch: a weight matrix of a linear layer is
/// `[outFeatures, inFeatures]`, so each output feature is one contiguous row. GGUF lists
/// dimensions innermost first (`ne0`); the loader reverses them in one place.
///
/// Float tensors are what kernels compute on; quantized tensors are stored as ggml blocks and
/// used as weights (matrix products, embedding rows) without being expanded.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let type: ElementType
    public let storage: TensorStorage

    /// A zero-filled tensor.
    public init(zeros shape: [Int], type: ElementType = .f32) {
        let count = shape.reduce(1, *)
        precondition(type.byteCount(elements: count) != nil, "shape \(shape) does not fit \(type)")
        self.shape = shape
        self.type = type
        storage = TensorStorage(byteCount: type.byteCount(elements: count)!)
    }

    /// A float tensor whose elements are not initialized: only for results that the caller
    /// writes completely before anything reads them.
    public init(uninitialized shape: [Int]) {
        let count = shape.reduce(1, *)
        self.shape = shape
        type = .f32
        storage = TensorStorage(uninitializedByteCount: count * MemoryLayout<Float>.size)
    }

    /// A float tensor holding `values`.
    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) needs \(values.count)")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { source in
            floats.update(from: source.baseAddress!, count: values.count)
        }
    }

    /// A tensor over existing storage, e.g. a view into a memory-mapped file.
    public init(shape: [Int], type: ElementType, storage: TensorStorage) {
        precondition(
            type.byteCount(elements: shape.reduce(1, *)).map { $0 <= storage.byteCount } == true,
            "storage too small for \(shape) \(type)")
        self.shape = shape
        self.type = type
        self.storage = storage
    }

    public var elementCount: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    /// Elements in one row (the innermost dimension).
    public var rowLength: Int { shape.last ?? 1 }
    /// Rows: the product of all dimensions but the innermost.
    public var rowCount: Int { shape.dropLast().reduce(1, *) }
    /// Bytes of one row; quantized rows are whole blocks.
    public var rowBytes: Int { type.byteCount(elements: rowLength)! }

    public var raw: UnsafeMutableRawPointer { storage.pointer }

    /// The elements of a float tensor.
    public var floats: UnsafeMutablePointer<Float> {
        precondition(type == .f32, "floats of a \(type) tensor")
        return storage.pointer.assumingMemoryBound(to: Float.self)
    }

    /// The start of row `index` in bytes.
    public func row(_ index: Int) -> UnsafeMutableRawPointer {
        precondition(index >= 0 && index < rowCount, "row \(index) of \(rowCount)")
        return storage.pointer + index * rowBytes
    }

    /// A float copy of all elements (quantized types are dequantized).
    public func toArray() -> [Float] {
        var result = [Float](repeating: 0, count: elementCount)
        result.withUnsafeMutableBufferPointer { out in
            for index in 0..<rowCount {
                Quantization.dequantizeRow(
                    type, row(index), out.baseAddress! + index * rowLength, count: rowLength)
            }
        }
        return result
    }
}
