import Foundation

/// Keys and values of many sequences in fixed-size blocks, as a serving engine keeps them
/// (Kwon et al., "Efficient Memory Management for Large Language Model Serving with
/// PagedAttention", 2023).
///
/// A sequence owns a block table: its position `p` lives in block `table[p / blockSize]` at
/// offset `p % blockSize`. Memory is taken one block at a time as a sequence grows, so nothing
/// is reserved for the longest possible answer. Blocks are reference-counted: sequences whose
/// prompts begin with the same tokens share those blocks (prefix caching). A full block of
/// prompt tokens is registered under its tokens and its parent block's identity, so a later
/// sequence finds it by walking its own prompt block by block; a block that nobody references
/// any more keeps its contents and stays findable until its memory is needed (least recently
/// used first). A sequence that must write into a shared block copies it first
/// (`makeWritable`).
///
/// Not thread-safe: one engine thread owns it.
public final class PagedKVCache: @unchecked Sendable {
    public let blockSize: Int
    public let blockCount: Int
    /// The storage: one slot per position of every block, slot = block * blockSize + offset.
    public let storage: KVCache

    /// References to each block: sequences whose tables hold it.
    public private(set) var referenceCounts: [Int]
    /// Blocks that hold nothing anyone can find.
    private var freeBlocks: [Int]
    /// Unreferenced blocks that still hold a registered prefix, with the tick of their last use.
    private var cachedBlocks: [Int: UInt64] = [:]
    /// Registered blocks by content, and each block's registration (its key and identity).
    private var prefixIndex: [PrefixKey: Int] = [:]
    private var registrations: [Registration?]
    private var nextIdentity: UInt64 = 1
    private var tick: UInt64 = 0

    /// Blocks found by `lookupPrefix` instead of being computed again, since the start.
    public private(set) var prefixHitBlocks = 0

    /// A full block's contents: the identity of the block before it (0 for the first) and its
    /// tokens. The parent's identity, not its index, so that a block evicted and filled anew
    /// never passes for the old one.
    private struct PrefixKey: Hashable {
        var parent: UInt64
        var tokens: [Int]
    }

    private struct Registration {
        var key: PrefixKey
        var identity: UInt64
    }

    /// - Parameter resident: write every block once now, so that the whole budget is resident
    ///   from the start (a server's memory then stays flat however its blocks are used)
    ///   rather than growing as blocks are first touched.
    public init(
        layerCount: Int, kvDim: Int, blockSize: Int, blockCount: Int, resident: Bool = false
    ) {
        precondition(blockSize > 0 && blockCount > 0, "a paged cache needs blocks")
        self.blockSize = blockSize
        self.blockCount = blockCount
        storage = KVCache(layerCount: layerCount, kvDim: kvDim, capacity: blockSize * blockCount)
        if resident {
            let elements = layerCount * blockSize * blockCount * kvDim
            storage.keys(layer: 0, position: 0).initialize(repeating: 0, count: elements)
            storage.values(layer: 0, position: 0).initialize(repeating: 0, count: elements)
        }
        referenceCounts = [Int](repeating: 0, count: blockCount)
        registrations = [Registration?](repeating: nil, count: blockCount)
        // Handed out from the end of the array: lowest block first.
        freeBlocks = Array((0..<blockCount).reversed())
    }

    /// Blocks referenced by some sequence.
    public var usedBlockCount: Int { blockCount - freeBlocks.count - cachedBlocks.count }
    /// Blocks that `allocate` can hand out: the free ones and the unreferenced cached ones.
    public var availableBlockCount: Int { freeBlocks.count + cachedBlocks.count }
    /// Unreferenced blocks kept for a later prompt that begins the same way.
    public var cachedBlockCount: Int { cachedBlocks.count }

    /// Bytes of keys and values that the blocks can hold.
    public var byteCount: Int { storage.byteCount }

    /// Blocks needed to hold `positions` positions.
    public func blocksNeeded(_ positions: Int) -> Int { (positions + blockSize - 1) / blockSize }

    /// A block with one reference, or nil when every block is referenced. Takes a free block
    /// first, else evicts the least recently used cached one.
    public func allocate() -> Int? {
        let block: Int
        if let free = freeBlocks.popLast() {
            block = free
        } else if let (oldest, _) = cachedBlocks.min(by: { $0.value < $1.value }) {
            cachedBlocks[oldest] = nil
            unregister(oldest)
            block = oldest
        } else {
            return nil
        }
        assert(referenceCounts[block] == 0, "allocating block \(block) still referenced")
        referenceCounts[block] = 1
        return block
    }

    /// Adds a reference to `block`, e.g. for a second sequence that shares it.
    public func retain(_ block: Int) {
        assert(referenceCounts[block] > 0 || cachedBlocks[block] != nil, "retain of a free block")
        if referenceCounts[block] == 0 { cachedBlocks[block] = nil }
        referenceCounts[block] += 1
    }

    /// Drops a reference; a block nobody references is kept for prefix reuse when registered,
    /// else freed.
    public func release(_ block: Int) {
        assert(referenceCounts[block] > 0, "release of unreferenced block \(block)")
        referenceCounts[block] -= 1
        guard referenceCounts[block] == 0 else { return }
        if registrations[block] != nil {
            tick += 1
            cachedBlocks[block] = tick
        } else {
            freeBlocks.append(block)
        }
    }

    /// Releases every block of `table` and empties it.
    public func release(table: inout [Int]) {
        for block in table { release(block) }
        table.removeAll()
    }

    /// The registered blocks that hold the first whole blocks of `tokens`, at most `maxBlocks`
    /// of them, each retained for the caller.
    public func lookupPrefix(_ tokens: [Int], maxBlocks: Int) -> [Int] {
        var found: [Int] = []
        var parent: UInt64 = 0
        while found.count < maxBlocks, (found.count + 1) * blockSize <= tokens.count {
            let start = found.count * blockSize
            let key = PrefixKey(parent: parent, tokens: Array(tokens[start..<start + blockSize]))
            guard let block = prefixIndex[key] else { break }
            retain(block)
            found.append(block)
            parent = registrations[block]!.identity
        }
        prefixHitBlocks += found.count
        return found
    }

    /// Makes `table[index]`, a full block holding `tokens` (computed from the prompt alone,
    /// so that any sequence with the same prefix would compute the same keys and values),
    /// findable by `lookupPrefix`. The blocks before it must be registered already.
    public func register(table: [Int], index: Int, tokens: ArraySlice<Int>) {
        precondition(tokens.count == blockSize, "only full blocks are registered")
        let block = table[index]
        guard registrations[block] == nil else { return }
        let parent: UInt64
        if index == 0 {
            parent = 0
        } else if let registration = registrations[table[index - 1]] {
            parent = registration.identity
        } else {
            return
        }
        let key = PrefixKey(parent: parent, tokens: Array(tokens))
        // An identical block computed twice (two prompts admitted together): keep the first.
        guard prefixIndex[key] == nil else { return }
        prefixIndex[key] = block
        registrations[block] = Registration(key: key, identity: nextIdentity)
        nextIdentity += 1
    }

    /// Makes `table[index]` safe to write at offsets `filled...`: a block that other sequences
    /// share is copied (its first `filled` positions, every layer) into a new block that only
    /// this table holds. A registered block is never written again either: it is shared by
    /// whoever finds it later. Returns false when no block is available for the copy.
    public func makeWritable(table: inout [Int], index: Int, filled: Int) -> Bool {
        let block = table[index]
        guard referenceCounts[block] > 1 || registrations[block] != nil else { return true }
        guard let copy = allocate() else { return false }
        if filled > 0 {
            for layer in 0..<storage.layerCount {
                let from = block * blockSize
                let to = copy * blockSize
                storage.keys(layer: layer, position: to).update(
                    from: storage.keys(layer: layer, position: from),
                    count: filled * storage.kvDim)
                storage.values(layer: layer, position: to).update(
                    from: storage.values(layer: layer, position: from),
                    count: filled * storage.kvDim)
            }
        }
        release(block)
        table[index] = copy
        return true
    }

    /// The storage slot of `position` in a sequence with block table `table`.
    @inline(__always)
    public func slot(of position: Int, in table: UnsafePointer<Int>) -> Int {
        table[position / blockSize] * blockSize + position % blockSize
    }

    private func unregister(_ block: Int) {
        guard let registration = registrations[block] else { return }
        prefixIndex[registration.key] = nil
        registrations[block] = nil
    }
}
