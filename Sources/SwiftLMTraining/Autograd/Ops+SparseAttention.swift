import Foundation
import SwiftLMCore

/// Which earlier positions each position attends to in `Ops.sparseCausalAttention`: a sliding
/// window, global positions, and random key blocks, the causal form of Longformer's attention
/// (Beltagy et al. 2020, section 3.1) with BigBird's random blocks (Zaheer et al. 2020,
/// section 2 and appendix D).
///
/// `allows(query:key:)` is the rule; the attention computes exactly that mask, visiting only
/// the blocks it touches.
public struct SparseAttentionPattern: Codable, Equatable, Sendable {
    /// Each position sees the `window` positions up to and including itself.
    public let window: Int
    /// Ascending positions that see every earlier position and that every later position sees
    /// (Longformer's global attention). Positions at or past a call's `seqLen` are ignored.
    public let globalPositions: [Int]
    /// Key blocks each query block also sees, drawn per query block from `seed` among the
    /// blocks wholly before its window that hold no global position (BigBird's random
    /// attention, which also leaves out the window and global blocks).
    public let randomBlocks: Int
    /// Positions per block: the unit of random attention and the attention's tile size.
    public let blockSize: Int
    public let seed: UInt64

    public init(
        window: Int, globalPositions: [Int] = [], randomBlocks: Int = 0, blockSize: Int = 64,
        seed: UInt64 = 0
    ) {
        self.window = window
        self.globalPositions = globalPositions
        self.randomBlocks = randomBlocks
        self.blockSize = blockSize
        self.seed = seed
        if let problem = problem { preconditionFailure("sparse attention pattern: \(problem)") }
    }

    /// Whether `query` attends to `key`: the causal rule that `Ops.sparseCausalAttention`
    /// computes, and the reference its tests hold it to.
    public func allows(query: Int, key: Int) -> Bool {
        guard key >= 0 && key <= query else { return false }
        if query - key < window || isGlobal(key) || isGlobal(query) { return true }
        return randomKeyBlocks(queryBlock: query / blockSize).contains(key / blockSize)
    }

    /// The key blocks that query block `queryBlock` (positions `queryBlock * blockSize` on)
    /// sees at random, ascending: `randomBlocks` of them, or every candidate if fewer.
    ///
    /// Candidates are the blocks wholly before the window of the block's first position and
    /// without a global position, so a random block adds keys that nothing else shows. The draw
    /// depends only on the seed and the block, not on `seqLen`: a prefix of a sequence gets the
    /// same pattern as the whole.
    public func randomKeyBlocks(queryBlock: Int) -> [Int] {
        let farBlocks = max(0, queryBlock * blockSize - window + 1) / blockSize
        var globalBlocks = globalPositions.map { $0 / blockSize }.filter { $0 < farBlocks }
        globalBlocks = Array(Set(globalBlocks)).sorted()
        let candidates = farBlocks - globalBlocks.count
        let count = min(randomBlocks, candidates)
        guard count > 0 else { return [] }

        // Floyd's algorithm (Bentley and Floyd 1987): `count` distinct indices out of
        // `candidates`, uniformly, in `count` draws.
        var draw = BlockDraw(seed: seed, queryBlock: queryBlock)
        var chosen = Set<Int>()
        for last in (candidates - count)..<candidates {
            let index = draw.next(below: last + 1)
            chosen.insert(chosen.contains(index) ? last : index)
        }

        // The index-th candidate: step over the global blocks at or before it.
        return chosen.sorted().map { index in
            var block = index
            for globalBlock in globalBlocks where globalBlock <= block { block += 1 }
            return block
        }
    }

    func isGlobal(_ position: Int) -> Bool {
        let index = Self.count(globalPositions, below: position)
        return index < globalPositions.count && globalPositions[index] == position
    }

    /// How many of the ascending `positions` are below `bound`, by bisection.
    static func count(_ positions: [Int], below bound: Int) -> Int {
        var (low, high) = (0, positions.count)
        while low < high {
            let middle = (low + high) / 2
            if positions[middle] < bound { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The first field out of range, with its value and the allowed range; nil when all are in
    /// range.
    var problem: String? {
        if window < 1 { return "window \(window) must be at least 1" }
        if blockSize < 1 { return "blockSize \(blockSize) must be at least 1" }
        if randomBlocks < 0 { return "randomBlocks \(randomBlocks) must be 0 or more" }
        if let first = globalPositions.first, first < 0 {
            return "globalPositions start at \(first), must be 0 or more"
        }
        for (earlier, later) in zip(globalPositions, globalPositions.dropFirst())
        where earlier >= later {
            return "globalPositions \(earlier), \(later) must be strictly ascending"
        }
        return nil
    }

    // MARK: - Codable

    enum CodingKeys: String, CodingKey {
        case window, globalPositions, randomBlocks, blockSize, seed
    }

    /// Decodes a pattern from a configuration file, where every field but `window` may be left
    /// out; throws `DecodingError.dataCorrupted` naming the field out of range.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        window = try container.decode(Int.self, forKey: .window)
        globalPositions =
            try container.decodeIfPresent([Int].self, forKey: .globalPositions) ?? []
        randomBlocks = try container.decodeIfPresent(Int.self, forKey: .randomBlocks) ?? 0
        blockSize = try container.decodeIfPresent(Int.self, forKey: .blockSize) ?? 64
        seed = try container.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        if let problem = problem {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription: "sparse attention pattern: \(problem)"))
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014) seeded by the pattern's seed and a query block: the
/// same pattern draws the same blocks on every platform and Swift version, which
/// `Int.random(in:using:)` does not promise.
private struct BlockDraw {
    var state: UInt64

    init(seed: UInt64, queryBlock: Int) {
        state = seed ^ (UInt64(queryBlock) &* 0xD1B5_4A32_D192_ED03)
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`, by the high word of a 64×64-bit product (Lemire 2019, without
    /// the rejection step: the bias is below 2^-40 for any block count).
    mutating func next(below bound: Int) -> Int {
        Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }
}

extension Ops {
    /// `[batchSize * seqLen, headCount * headDim]` queries and
    /// `[batchSize * seqLen, kvHeadCount * headDim]` keys and values
    /// `-> [batchSize * seqLen, headCount * headDim]`: causal grouped-query attention in which
    /// query `i` sees key `j` only where `pattern.allows(query: i, key: j)`.
    ///
    /// Block-sparse in the manner of BigBird (Zaheer et al. 2020, appendix D) on the tiles of
    /// `tiledCausalAttention` (FlashAttention-2, Dao 2023), with tiles of `pattern.blockSize`:
    /// each query tile visits only the key tiles of its window band and its random blocks, plus
    /// the global keys gathered into one compact tile, and masks within a tile to the rule.
    /// Work and memory grow linearly in `seqLen` for a fixed pattern; skipped tiles cost
    /// nothing. Global query rows see every earlier key, so they run apart, gathered into
    /// tiles of their own over all key tiles up to their position.
    ///
    /// The forward keeps the output and each row's log-sum-exp, as the tiled op does; the
    /// backward recomputes the probabilities of the visited tiles. A pattern whose window covers
    /// the sequence gives `causalAttention`'s result up to float rounding.
    public static func sparseCausalAttention(
        query: Variable, key: Variable, value: Variable, batchSize: Int, seqLen: Int,
        headCount: Int, kvHeadCount: Int, headDim: Int, pattern: SparseAttentionPattern
    ) -> Variable {
        let shape = AttentionShape(
            batchSize: batchSize, seqLen: seqLen, headCount: headCount,
            kvHeadCount: kvHeadCount, headDim: headDim)
        shape.validate(query: query, key: key, value: value)
        let tileSize = min(pattern.blockSize, seqLen)
        let sparse = SparseAttentionTiling(
            tiling: AttentionTiling(shape: shape, queryTileSize: tileSize, keyTileSize: tileSize),
            plan: SparseAttentionPlan(pattern: pattern, seqLen: seqLen))

        let logSumExp = Tensor(uninitialized: [batchSize, headCount, seqLen])
        // Zeroed: the forward adds into it from the first key tile on.
        let result = Tensor(zeros: [shape.tokens, shape.queryWidth])
        sparse.forward(
            query: query.value.floats, key: key.value.floats, value: value.value.floats,
            output: result.floats, logSumExp: logSumExp.floats)

        return Variable(result, inputs: [query, key, value]) { output in
            // Allocated here: `gradientStorage` is not safe to call from the pool's threads.
            let gradients = AttentionGradients(
                query: query.requiresGradient ? query.gradientStorage() : nil,
                key: key.requiresGradient ? key.gradientStorage() : nil,
                value: value.requiresGradient ? value.gradientStorage() : nil)
            sparse.backward(
                outputGradient: output.gradient!.floats, output: output.value.floats,
                query: query.value.floats, key: key.value.floats, value: value.value.floats,
                logSumExp: logSumExp.floats, gradients: gradients)
        }
    }
}

/// The tiles `Ops.sparseCausalAttention` visits for one pattern and `seqLen`, with tiles (and
/// blocks) of `pattern.blockSize` positions.
///
/// A query tile's ordinary rows see three kinds of keys, each from one place only:
/// - the window, `q - window < key <= q`: the band of key tiles from the one holding the first
///   row's earliest window key to the diagonal, masked to a run of columns per row;
/// - the random blocks, all before that band and free of global keys: whole tiles;
/// - the global keys before the window, `key <= q - window`: a leading run of the global keys,
///   gathered into compact tiles of their own.
/// Global query rows are hidden from all of these and run over every key tile up to their
/// position instead.
struct SparseAttentionPlan {
    let pattern: SparseAttentionPattern
    let seqLen: Int
    /// The global positions below `seqLen`, ascending.
    let globalPositions: [Int]
    /// `[seqLen]`: whether each position is global.
    let isGlobal: [Bool]
    /// Per query tile, the key tiles it visits, ascending: its random blocks, then its band.
    let keyTiles: [[Int]]
    /// Per query tile, the first key tile of its band; the tiles before it are random ones.
    let bandStarts: [Int]
    /// Per query tile, how many leading global keys any of its rows sees from before its window.
    let globalKeyCounts: [Int]

    var blockSize: Int { pattern.blockSize }
    var queryTileCount: Int { (seqLen + blockSize - 1) / blockSize }

    init(pattern: SparseAttentionPattern, seqLen: Int) {
        precondition(
            pattern.problem == nil, "sparse attention pattern: \(pattern.problem ?? "")")
        self.pattern = pattern
        self.seqLen = seqLen
        globalPositions = pattern.globalPositions.filter { $0 < seqLen }
        var isGlobal = [Bool](repeating: false, count: seqLen)
        for position in globalPositions { isGlobal[position] = true }
        self.isGlobal = isGlobal

        let blockSize = pattern.blockSize
        let tiles = (seqLen + blockSize - 1) / blockSize
        var keyTiles: [[Int]] = []
        var bandStarts: [Int] = []
        var globalKeyCounts: [Int] = []
        for queryTile in 0..<tiles {
            let q0 = queryTile * blockSize
            let lastRow = min(q0 + blockSize, seqLen) - 1
            let bandStart = max(0, q0 - pattern.window + 1) / blockSize
            keyTiles.append(
                pattern.randomKeyBlocks(queryBlock: queryTile) + Array(bandStart...queryTile))
            bandStarts.append(bandStart)
            globalKeyCounts.append(
                SparseAttentionPattern.count(globalPositions, below: lastRow - pattern.window + 1))
        }
        self.keyTiles = keyTiles
        self.bandStarts = bandStarts
        self.globalKeyCounts = globalKeyCounts
    }

    /// Key tiles of `tileSize` columns visited in all, per (batch, head): each query tile's
    /// band, random and gathered global tiles, and each gathered tile of global query rows
    /// against the key tiles up to its last row. The cost of a call is proportional to it.
    func visitedTileCount(tileSize: Int) -> Int {
        var count = 0
        for queryTile in 0..<queryTileCount {
            count += keyTiles[queryTile].count
            count += (globalKeyCounts[queryTile] + tileSize - 1) / tileSize
        }
        for r0 in stride(from: 0, to: globalPositions.count, by: tileSize) {
            let last = globalPositions[min(r0 + tileSize, globalPositions.count) - 1]
            count += last / blockSize + 1
        }
        return count
    }
}

/// A band or random tile of `SparseAttentionPlan`: query row `queryStart + row` sees the keys
/// of the tile within `window` of it and not after it, or nothing if it is a global row.
/// Random tiles take `window = Int.max`: all their keys are earlier than the query tile.
struct SparseTileMask: AttentionTileMask {
    let queryStart: Int
    let keyStart: Int
    let window: Int
    let isGlobal: [Bool]

    func visibleColumns(row: Int, columns: Int) -> Range<Int> {
        let position = queryStart + row
        guard !isGlobal[position] else { return 0..<0 }
        // Columns before `through` are not after the row; the last `window` of them are in it.
        // (`through - window` would overflow for `window = Int.max` and a tile past the row.)
        let through = position - keyStart + 1
        let start = min(through > window ? through - window : 0, columns)
        return start..<max(start, min(through, columns))
    }
}

/// A gathered tile of global keys, `chunkStart` on: an ordinary query row sees the global keys
/// at least `window` before it, a leading run of them.
struct GlobalKeyMask: AttentionTileMask {
    let queryStart: Int
    let chunkStart: Int
    let plan: SparseAttentionPlan

    func visibleColumns(row: Int, columns: Int) -> Range<Int> {
        let position = queryStart + row
        guard !plan.isGlobal[position] else { return 0..<0 }
        let seen = SparseAttentionPattern.count(
            plan.globalPositions, below: position - plan.pattern.window + 1)
        return 0..<min(max(seen - chunkStart, 0), columns)
    }
}

/// A gathered tile of global query rows, `rowStart` on in `positions`: each sees every key up
/// to its position.
struct GatheredCausalMask: AttentionTileMask {
    let positions: [Int]
    let rowStart: Int
    let keyStart: Int

    func visibleColumns(row: Int, columns: Int) -> Range<Int> {
        0..<min(max(positions[rowStart + row] - keyStart + 1, 0), columns)
    }
}

/// The loops of `Ops.sparseCausalAttention` for one call, on the tile steps of
/// `AttentionTiling` (Ops+TiledAttention.swift).
struct SparseAttentionTiling {
    let tiling: AttentionTiling
    let plan: SparseAttentionPlan

    var shape: AttentionShape { tiling.shape }
    var tileSize: Int { tiling.keyTileSize }
    var globalCount: Int { plan.globalPositions.count }

    /// Key tile `tile`'s rows of one (batch, kvHead) block, and where their gradients go.
    func keyRows(
        _ tile: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>, kvOffset: Int,
        gradients: AttentionGradients? = nil
    ) -> KeyRows {
        let k0 = tile * plan.blockSize
        let offset = kvOffset + k0 * shape.kvWidth
        return KeyRows(
            count: min(plan.blockSize, shape.seqLen - k0), stride: shape.kvWidth,
            keys: key + offset, values: value + offset,
            keyGradient: gradients?.key.map { $0 + offset },
            valueGradient: gradients?.value.map { $0 + offset })
    }

    /// The mask of key tile `tile` for query tile `queryTile`: a random tile or a band tile.
    func mask(queryTile: Int, keyTile: Int) -> SparseTileMask {
        SparseTileMask(
            queryStart: queryTile * plan.blockSize, keyStart: keyTile * plan.blockSize,
            window: keyTile < plan.bandStarts[queryTile] ? .max : plan.pattern.window,
            isGlobal: plan.isGlobal)
    }

    /// `[tokens, kvWidth]` -> `[batchSize, kvHeadCount, globalCount, headDim]`: the rows of the
    /// global positions of every (batch, kvHead) block, packed.
    func gatherGlobalKeys(_ source: UnsafePointer<Float>) -> Tensor {
        let gathered = Tensor(
            uninitialized: [shape.batchSize, shape.kvHeadCount, max(globalCount, 1), shape.headDim])
        for batch in 0..<shape.batchSize {
            for kvHead in 0..<shape.kvHeadCount {
                gather(
                    rows: 0..<globalCount,
                    from: source + shape.block(batch: batch, head: kvHead, width: shape.kvWidth),
                    stride: shape.kvWidth,
                    into: gathered.floats + globalKeyOffset(batch: batch, kvHead: kvHead))
            }
        }
        return gathered
    }

    func globalKeyOffset(batch: Int, kvHead: Int) -> Int {
        (batch * shape.kvHeadCount + kvHead) * globalCount * shape.headDim
    }

    /// Copies the `[headDim]` rows at global positions `rows` of a block into packed rows.
    func gather(
        rows: Range<Int>, from block: UnsafePointer<Float>, stride: Int,
        into packed: UnsafeMutablePointer<Float>
    ) {
        for (index, globalIndex) in rows.enumerated() {
            (packed + index * shape.headDim).update(
                from: block + plan.globalPositions[globalIndex] * stride, count: shape.headDim)
        }
    }

    /// Adds packed `[headDim]` rows into a block's rows at global positions `rows`.
    func scatterAdd(
        rows: Range<Int>, from packed: UnsafePointer<Float>,
        into block: UnsafeMutablePointer<Float>, stride: Int
    ) {
        for (index, globalIndex) in rows.enumerated() {
            let target = block + plan.globalPositions[globalIndex] * stride
            for column in 0..<shape.headDim {
                target[column] += packed[index * shape.headDim + column]
            }
        }
    }

    // MARK: - Forward

    /// `[tokens, queryWidth]`, `[tokens, kvWidth]` ×2 -> `[tokens, queryWidth]` output (zeroed
    /// by the caller) and `[batchSize, headCount, seqLen]` log-sum-exp.
    ///
    /// Two parallel passes: every (batch, head, query tile) for the ordinary rows, then every
    /// (batch, head) for its global rows, which the first pass leaves at zero.
    func forward(
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>
    ) {
        let globalKeys = gatherGlobalKeys(key)
        let globalValues = gatherGlobalKeys(value)
        let scratchFloats = tiling.forwardScratchFloats
        let scratch = Tensor(uninitialized: [Ops.pool.threadCount, scratchFloats])
        let tilesPerSequence = shape.headCount * plan.queryTileCount

        shape.forEach(shape.batchSize * tilesPerSequence) { items, thread in
            let tileScratch = tiling.forwardScratch(scratch.floats + thread * scratchFloats)
            for item in items {
                forwardQueryTile(
                    batch: item / tilesPerSequence,
                    head: item % tilesPerSequence / plan.queryTileCount,
                    queryTile: item % plan.queryTileCount, query: query, key: key, value: value,
                    globalKeys: globalKeys.floats, globalValues: globalValues.floats,
                    output: output, logSumExp: logSumExp, scratch: tileScratch)
            }
        }

        if globalCount > 0 {
            forwardGlobalRows(
                query: query, key: key, value: value, output: output, logSumExp: logSumExp)
        }
    }

    /// One query tile of (batch, head): its random and band tiles, then its gathered global
    /// key tiles, in one online softmax. Its global rows see nothing here and stay zero.
    private func forwardQueryTile(
        batch: Int, head: Int, queryTile: Int, query: UnsafePointer<Float>,
        key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        globalKeys: UnsafePointer<Float>, globalValues: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>,
        scratch: ForwardScratch
    ) {
        let kvHead = head / shape.groupSize
        let q0 = queryTile * plan.blockSize
        let queryOffset =
            shape.block(batch: batch, head: head, width: shape.queryWidth)
            + q0 * shape.queryWidth
        let rows = ForwardRows(
            count: min(plan.blockSize, shape.seqLen - q0), stride: shape.queryWidth,
            queries: query + queryOffset, output: output + queryOffset)
        let kvOffset = shape.block(batch: batch, head: kvHead, width: shape.kvWidth)
        let globalOffset = globalKeyOffset(batch: batch, kvHead: kvHead)
        tiling.startRows(rows.count, scratch: scratch)

        for keyTile in plan.keyTiles[queryTile] {
            tiling.forwardStep(
                rows, keyRows(keyTile, key: key, value: value, kvOffset: kvOffset),
                mask: mask(queryTile: queryTile, keyTile: keyTile), scratch: scratch)
        }
        for c0 in stride(from: 0, to: plan.globalKeyCounts[queryTile], by: tileSize) {
            let packed = globalOffset + c0 * shape.headDim
            let tile = KeyRows(
                count: min(tileSize, plan.globalKeyCounts[queryTile] - c0),
                stride: shape.headDim, keys: globalKeys + packed, values: globalValues + packed)
            tiling.forwardStep(
                rows, tile, mask: GlobalKeyMask(queryStart: q0, chunkStart: c0, plan: plan),
                scratch: scratch)
        }

        tiling.finishRows(
            rows, logSumExp: logSumExp + (batch * shape.headCount + head) * shape.seqLen + q0,
            scratch: scratch)
    }

    /// The global query rows of every (batch, head), gathered `tileSize` at a time, against
    /// every key tile up to the last of them; outputs and log-sum-exps scattered back.
    private func forwardGlobalRows(
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>
    ) {
        let packedFloats = tileSize * shape.headDim
        let scratchFloats = tiling.forwardScratchFloats + 2 * packedFloats + tileSize
        let scratch = Tensor(uninitialized: [Ops.pool.threadCount, scratchFloats])

        shape.forEach(shape.batchSize * shape.headCount) { items, thread in
            let base = scratch.floats + thread * scratchFloats
            let tileScratch = tiling.forwardScratch(base)
            let packedQueries = base + tiling.forwardScratchFloats
            let packedOutput = packedQueries + packedFloats
            let packedLogSumExp = packedOutput + packedFloats
            for item in items {
                let (batch, head) = (item / shape.headCount, item % shape.headCount)
                let queryBlock = shape.block(batch: batch, head: head, width: shape.queryWidth)
                let kvOffset = shape.block(
                    batch: batch, head: head / shape.groupSize, width: shape.kvWidth)
                let headRows = logSumExp + item * shape.seqLen

                for r0 in stride(from: 0, to: globalCount, by: tileSize) {
                    let globalRows = r0..<min(r0 + tileSize, globalCount)
                    gather(
                        rows: globalRows, from: query + queryBlock, stride: shape.queryWidth,
                        into: packedQueries)
                    packedOutput.update(repeating: 0, count: globalRows.count * shape.headDim)
                    let rows = ForwardRows(
                        count: globalRows.count, stride: shape.headDim, queries: packedQueries,
                        output: packedOutput)
                    tiling.startRows(rows.count, scratch: tileScratch)

                    let lastTile = plan.globalPositions[globalRows.upperBound - 1] / plan.blockSize
                    for keyTile in 0...lastTile {
                        let mask = GatheredCausalMask(
                            positions: plan.globalPositions, rowStart: r0,
                            keyStart: keyTile * plan.blockSize)
                        tiling.forwardStep(
                            rows, keyRows(keyTile, key: key, value: value, kvOffset: kvOffset),
                            mask: mask, scratch: tileScratch)
                    }
                    tiling.finishRows(rows, logSumExp: packedLogSumExp, scratch: tileScratch)

                    for (index, globalIndex) in globalRows.enumerated() {
                        let position = plan.globalPositions[globalIndex]
                        (output + queryBlock + position * shape.queryWidth).update(
                            from: packedOutput + index * shape.headDim, count: shape.headDim)
                        headRows[position] = packedLogSumExp[index]
                    }
                }
            }
        }
    }

    // MARK: - Backward

    /// Adds the gradients of the query, key and value, given the output and its gradient.
    ///
    /// Split by (batch, kvHead) as in the tiled op, so every gradient row has one writer. Within
    /// a group the query tiles are the outer loop: a query tile's band overlaps the next one's,
    /// so the band's keys and their gradient rows stay in cache. The global keys' gradients add
    /// up in packed rows, scattered into dK and dV once per group.
    func backward(
        outputGradient: UnsafePointer<Float>, output: UnsafePointer<Float>,
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        logSumExp: UnsafePointer<Float>, gradients: AttentionGradients
    ) {
        let globalKeys = gatherGlobalKeys(key)
        let globalValues = gatherGlobalKeys(value)
        let globalGradients = Tensor(zeros: [2, globalKeys.elementCount])
        let tileFloats = 2 * tiling.tileFloats
        let scratch = Tensor(uninitialized: [Ops.pool.threadCount, tileFloats])
        let rowDots = Tensor(uninitialized: [shape.batchSize, shape.headCount, shape.seqLen])

        shape.forEach(shape.batchSize * shape.kvHeadCount) { items, thread in
            let tileScratch = tiling.backwardScratch(scratch.floats + thread * tileFloats)
            for item in items {
                let (batch, kvHead) = (item / shape.kvHeadCount, item % shape.kvHeadCount)
                let heads = (kvHead * shape.groupSize)..<((kvHead + 1) * shape.groupSize)
                for head in heads {
                    tiling.computeRowDots(
                        batch: batch, head: head, outputGradient: outputGradient,
                        output: output, rowDots: rowDots.floats)
                }

                let packed = globalKeyOffset(batch: batch, kvHead: kvHead)
                let globalTiles = GlobalKeyTiles(
                    keys: globalKeys.floats + packed, values: globalValues.floats + packed,
                    keyGradient: gradients.key.map { _ in globalGradients.floats + packed },
                    valueGradient: gradients.value.map { _ in
                        globalGradients.floats + globalKeys.elementCount + packed
                    })
                for queryTile in 0..<plan.queryTileCount {
                    for head in heads {
                        backwardQueryTile(
                            batch: batch, head: head, queryTile: queryTile,
                            outputGradient: outputGradient, query: query, key: key,
                            value: value, logSumExp: logSumExp, rowDots: rowDots.floats,
                            gradients: gradients, globalTiles: globalTiles,
                            scratch: tileScratch)
                    }
                }

                let kvOffset = shape.block(batch: batch, head: kvHead, width: shape.kvWidth)
                if let dK = gradients.key, let packedGradient = globalTiles.keyGradient {
                    scatterAdd(
                        rows: 0..<globalCount, from: packedGradient, into: dK + kvOffset,
                        stride: shape.kvWidth)
                }
                if let dV = gradients.value, let packedGradient = globalTiles.valueGradient {
                    scatterAdd(
                        rows: 0..<globalCount, from: packedGradient, into: dV + kvOffset,
                        stride: shape.kvWidth)
                }
            }
        }

        if globalCount > 0 {
            backwardGlobalRows(
                outputGradient: outputGradient, query: query, key: key, value: value,
                logSumExp: logSumExp, rowDots: rowDots.floats, gradients: gradients)
        }
    }

    /// The packed global keys and values of one (batch, kvHead) and their packed gradients.
    struct GlobalKeyTiles {
        let keys: UnsafePointer<Float>
        let values: UnsafePointer<Float>
        let keyGradient: UnsafeMutablePointer<Float>?
        let valueGradient: UnsafeMutablePointer<Float>?
    }

    /// The gradient contributions of one query tile of (batch, head) with every key tile it
    /// visited in the forward.
    private func backwardQueryTile(
        batch: Int, head: Int, queryTile: Int, outputGradient: UnsafePointer<Float>,
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        logSumExp: UnsafePointer<Float>, rowDots: UnsafePointer<Float>,
        gradients: AttentionGradients, globalTiles: GlobalKeyTiles, scratch: BackwardScratch
    ) {
        let q0 = queryTile * plan.blockSize
        let queryOffset =
            shape.block(batch: batch, head: head, width: shape.queryWidth)
            + q0 * shape.queryWidth
        let headRows = (batch * shape.headCount + head) * shape.seqLen + q0
        let rows = BackwardRows(
            count: min(plan.blockSize, shape.seqLen - q0), stride: shape.queryWidth,
            queries: query + queryOffset, outputGradient: outputGradient + queryOffset,
            queryGradient: gradients.query.map { $0 + queryOffset },
            logSumExp: logSumExp + headRows, rowDots: rowDots + headRows)
        let kvOffset = shape.block(
            batch: batch, head: head / shape.groupSize, width: shape.kvWidth)

        for keyTile in plan.keyTiles[queryTile] {
            tiling.backwardStep(
                rows,
                keyRows(
                    keyTile, key: key, value: value, kvOffset: kvOffset, gradients: gradients),
                mask: mask(queryTile: queryTile, keyTile: keyTile), scratch: scratch)
        }
        for c0 in stride(from: 0, to: plan.globalKeyCounts[queryTile], by: tileSize) {
            let packed = c0 * shape.headDim
            let tile = KeyRows(
                count: min(tileSize, plan.globalKeyCounts[queryTile] - c0),
                stride: shape.headDim, keys: globalTiles.keys + packed,
                values: globalTiles.values + packed,
                keyGradient: globalTiles.keyGradient.map { $0 + packed },
                valueGradient: globalTiles.valueGradient.map { $0 + packed })
            tiling.backwardStep(
                rows, tile, mask: GlobalKeyMask(queryStart: q0, chunkStart: c0, plan: plan),
                scratch: scratch)
        }
    }

    /// The gradient contributions of the global query rows, gathered `tileSize` at a time, with
    /// every key tile up to the last of them; their query gradients scattered back.
    ///
    /// Split by (batch, kvHead) again, since the rows of a group's heads all add into its dK
    /// and dV; a second pass, after the ordinary rows have added theirs.
    private func backwardGlobalRows(
        outputGradient: UnsafePointer<Float>, query: UnsafePointer<Float>,
        key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        logSumExp: UnsafePointer<Float>, rowDots: UnsafePointer<Float>,
        gradients: AttentionGradients
    ) {
        let packedFloats = tileSize * shape.headDim
        let scratchFloats = 2 * tiling.tileFloats + 3 * packedFloats + 2 * tileSize
        let scratch = Tensor(uninitialized: [Ops.pool.threadCount, scratchFloats])

        shape.forEach(shape.batchSize * shape.kvHeadCount) { items, thread in
            let base = scratch.floats + thread * scratchFloats
            let tileScratch = tiling.backwardScratch(base)
            let packedQueries = base + 2 * tiling.tileFloats
            let packedOutputGradient = packedQueries + packedFloats
            let packedQueryGradient = packedOutputGradient + packedFloats
            let packedLogSumExp = packedQueryGradient + packedFloats
            let packedRowDots = packedLogSumExp + tileSize
            for item in items {
                let (batch, kvHead) = (item / shape.kvHeadCount, item % shape.kvHeadCount)
                let kvOffset = shape.block(batch: batch, head: kvHead, width: shape.kvWidth)
                for head in (kvHead * shape.groupSize)..<((kvHead + 1) * shape.groupSize) {
                    let queryBlock = shape.block(batch: batch, head: head, width: shape.queryWidth)
                    let headRows = (batch * shape.headCount + head) * shape.seqLen
                    for r0 in stride(from: 0, to: globalCount, by: tileSize) {
                        let globalRows = r0..<min(r0 + tileSize, globalCount)
                        gather(
                            rows: globalRows, from: query + queryBlock, stride: shape.queryWidth,
                            into: packedQueries)
                        gather(
                            rows: globalRows, from: outputGradient + queryBlock,
                            stride: shape.queryWidth, into: packedOutputGradient)
                        packedQueryGradient.update(
                            repeating: 0, count: globalRows.count * shape.headDim)
                        for (index, globalIndex) in globalRows.enumerated() {
                            let position = plan.globalPositions[globalIndex]
                            packedLogSumExp[index] = logSumExp[headRows + position]
                            packedRowDots[index] = rowDots[headRows + position]
                        }
                        let rows = BackwardRows(
                            count: globalRows.count, stride: shape.headDim,
                            queries: packedQueries, outputGradient: packedOutputGradient,
                            queryGradient: gradients.query.map { _ in packedQueryGradient },
                            logSumExp: packedLogSumExp, rowDots: packedRowDots)

                        let last = plan.globalPositions[globalRows.upperBound - 1]
                        for keyTile in 0...(last / plan.blockSize) {
                            let mask = GatheredCausalMask(
                                positions: plan.globalPositions, rowStart: r0,
                                keyStart: keyTile * plan.blockSize)
                            tiling.backwardStep(
                                rows,
                                keyRows(
                                    keyTile, key: key, value: value, kvOffset: kvOffset,
                                    gradients: gradients),
                                mask: mask, scratch: tileScratch)
                        }

                        if let dQ = gradients.query {
                            scatterAdd(
                                rows: globalRows, from: packedQueryGradient,
                                into: dQ + queryBlock, stride: shape.queryWidth)
                        }
                    }
                }
            }
        }
    }
}
