/// The keys and values of past positions, per layer, so that each new token attends to them
/// without recomputing them.
///
/// Layout per layer: `[slotCount, kvDim]` for keys and the same for values, in Float16: the
/// type of llama.cpp's default cache, so that attention sees the same numbers and reads half
/// the bytes that Float would take.
///
/// Which slot holds a position depends on the `Retention`: every position in its own slot
/// (`.all`), a ring for a sliding window plus fixed slots for the global positions
/// (`.window`), or nothing at all for attention that keeps its own state (`.countOnly`,
/// Performer).
public final class KVCache: @unchecked Sendable {
    /// Which positions the cache keeps.
    public enum Retention: Equatable, Sendable {
        /// Every position: what exact attention needs.
        case all
        /// The last `ringSize` positions in a ring, and `globalPositions` in slots of their own,
        /// for attention over a sliding `window`. A token sees the `window - 1` positions
        /// before it; a chunk of `n` tokens is cached before it attends, so the ring needs
        /// `window + n - 1` slots.
        case window(window: Int, ringSize: Int, globalPositions: [Int])
        /// No keys or values: only the position count.
        case countOnly
    }

    public let layerCount: Int
    public let kvDim: Int
    /// Positions the cache can address: the context length.
    public let capacity: Int
    public let retention: Retention
    /// Rows of keys (and of values) stored per layer.
    public let slotCount: Int
    /// Positions filled so far; the next token's position.
    public internal(set) var count = 0

    let keys: UnsafeMutablePointer<Float16>
    let values: UnsafeMutablePointer<Float16>
    /// The ring's length for `.window`; 0 otherwise.
    private let ringSize: Int
    /// The slot of each position below the largest global one of `.window`: its own slot for
    /// a global position, -1 for the others (an array, not a dictionary: it is read for every
    /// key of every head).
    private let globalSlots: [Int]

    public init(layerCount: Int, kvDim: Int, capacity: Int, retention: Retention = .all) {
        precondition(layerCount > 0 && kvDim > 0 && capacity > 0, "empty KV cache")
        self.layerCount = layerCount
        self.kvDim = kvDim
        self.capacity = capacity
        self.retention = retention
        switch retention {
        case .all:
            slotCount = capacity
            ringSize = 0
            globalSlots = []
        case .window(let window, let ring, let globalPositions):
            precondition(
                window > 0 && ring >= window, "KV cache ring of \(ring) slots, window \(window)")
            let globals = Array(Set(globalPositions)).sorted()
            slotCount = ring + globals.count
            ringSize = ring
            var slots = [Int](repeating: -1, count: (globals.last ?? -1) + 1)
            for (index, position) in globals.enumerated() { slots[position] = ring + index }
            globalSlots = slots
        case .countOnly:
            slotCount = 0
            ringSize = 0
            globalSlots = []
        }
        // Left unwritten: a slot is read only after its position was stored, and a context of
        // 8192 positions that holds a short chat then keeps only the pages it used resident.
        let elements = max(1, layerCount * slotCount * kvDim)
        keys = .allocate(capacity: elements)
        values = .allocate(capacity: elements)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Bytes of keys and values held: what the retention saves.
    public var byteCount: Int { 2 * layerCount * slotCount * kvDim * MemoryLayout<Float16>.size }

    /// The slot that holds `position`.
    @inline(__always)
    func slot(of position: Int) -> Int {
        if ringSize == 0 { return position }
        if position < globalSlots.count, globalSlots[position] >= 0 { return globalSlots[position] }
        return position % ringSize
    }

    /// Keys of `layer` at `position`: `[kvDim]`.
    @inline(__always)
    public func keys(layer: Int, position: Int) -> UnsafeMutablePointer<Float16> {
        let slot = slot(of: position)
        assert(slot < slotCount, "KV cache position \(position) past its \(slotCount) slots")
        return keys + (layer * slotCount + slot) * kvDim
    }

    /// Values of `layer` at `position`: `[kvDim]`.
    @inline(__always)
    public func values(layer: Int, position: Int) -> UnsafeMutablePointer<Float16> {
        let slot = slot(of: position)
        assert(slot < slotCount, "KV cache position \(position) past its \(slotCount) slots")
        return values + (layer * slotCount + slot) * kvDim
    }

    /// The longest prefix of at most `length` positions that `truncate(to:)` can keep with
    /// every key and value a later token needs. All of them for `.all`; for a ring, only while
    /// no position that the next token's window reaches has been overwritten; for `.countOnly`,
    /// nothing short of the whole sequence (the attention's own state cannot be rewound).
    public func reusablePrefix(_ length: Int) -> Int {
        let length = min(length, count)
        switch retention {
        case .all:
            return length
        case .window(let window, let ring, _):
            // Position p's slot was overwritten once p + ring was written, if p + ring < count.
            // The token at `length` reaches back to `length - window + 1`.
            let oldestNeeded = max(0, length - window + 1)
            return length == 0 || oldestNeeded + ring >= count ? length : 0
        case .countOnly:
            return length == count ? length : 0
        }
    }

    /// Forgets every position from `newCount` on, e.g. to reuse a shared prompt prefix.
    /// `newCount` must be `reusablePrefix(newCount)`.
    public func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "truncate to \(newCount) of \(count)")
        precondition(
            newCount == 0 || reusablePrefix(newCount) == newCount,
            "truncate to \(newCount) of \(count): the cache no longer holds what it needs")
        count = newCount
    }

    public func reset() { count = 0 }
}
