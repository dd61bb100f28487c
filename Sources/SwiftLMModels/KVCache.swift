/// The keys and values of past positions, per layer, so that each new token attends to them
/// without recomputing them.
///
/// Layout per layer: `[capacity, kvDim]` for keys and the same for values. Values are held as
/// Float but rounded to Float16 when stored, the precision of llama.cpp's default F16 cache,
/// so that attention sees the same numbers.
public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    public let kvDim: Int
    /// Positions the cache can hold.
    public let capacity: Int
    /// Positions filled so far; the next token's position.
    public internal(set) var count = 0

    let keys: UnsafeMutablePointer<Float>
    let values: UnsafeMutablePointer<Float>

    public init(layerCount: Int, kvDim: Int, capacity: Int) {
        precondition(layerCount > 0 && kvDim > 0 && capacity > 0, "empty KV cache")
        self.layerCount = layerCount
        self.kvDim = kvDim
        self.capacity = capacity
        let elements = layerCount * capacity * kvDim
        keys = .allocate(capacity: elements)
        values = .allocate(capacity: elements)
        keys.initialize(repeating: 0, count: elements)
        values.initialize(repeating: 0, count: elements)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Keys of `layer` at `position`: `[kvDim]`.
    @inline(__always)
    func keys(layer: Int, position: Int) -> UnsafeMutablePointer<Float> {
        assert(position < capacity, "KV cache position \(position) past capacity \(capacity)")
        return keys + (layer * capacity + position) * kvDim
    }

    /// Values of `layer` at `position`: `[kvDim]`.
    @inline(__always)
    func values(layer: Int, position: Int) -> UnsafeMutablePointer<Float> {
        assert(position < capacity, "KV cache position \(position) past capacity \(capacity)")
        return values + (layer * capacity + position) * kvDim
    }

    /// Forgets every position from `newCount` on, e.g. to reuse a shared prompt prefix.
    public func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "truncate to \(newCount) of \(count)")
        count = newCount
    }

    public func reset() { count = 0 }
}
