import Foundation
import SwiftLMCore

/// One row of a paged forward pass: a token of some sequence at some position.
public struct PagedRow: Sendable, Equatable {
    public var token: Int
    /// The token's position in its sequence.
    public var position: Int
    /// Index of the sequence's block table in `PagedBatch.blockTables`.
    public var sequence: Int
    /// Attention in the order of sums of a prompt chunk (true) or of a decode step (false).
    /// The serving engine sets it by what the token is (a prompt token or a generated one),
    /// never by how the batch happens to be cut, so that a token's numbers do not depend on
    /// which other requests share its step.
    public var promptOrder: Bool
    /// Whether the forward pass returns this row's logits.
    public var wantsLogits: Bool

    public init(token: Int, position: Int, sequence: Int, promptOrder: Bool, wantsLogits: Bool) {
        self.token = token
        self.position = position
        self.sequence = sequence
        self.promptOrder = promptOrder
        self.wantsLogits = wantsLogits
    }
}

/// The rows of one paged forward pass and the block tables of their sequences. A row sees
/// the positions `0...position` of its sequence: those before it must be in the cache
/// already or be earlier rows of the same batch.
public struct PagedBatch: Sendable {
    public var rows: [PagedRow] = []
    public var blockTables: [[Int]] = []

    public init(rows: [PagedRow] = [], blockTables: [[Int]] = []) {
        self.rows = rows
        self.blockTables = blockTables
    }
}

/// RoPE, cache writes and attention of a paged batch, as pool work over (row × head).
final class PagedAttentionWork: ParallelWork, @unchecked Sendable {
    unowned let context: InferenceContext
    let batch: PagedBatch
    let cache: PagedKVCache
    var layer = 0

    init(_ context: InferenceContext, batch: PagedBatch, cache: PagedKVCache) {
        self.context = context
        self.batch = batch
        self.cache = cache
        for row in batch.rows {
            let table = batch.blockTables[row.sequence]
            precondition(
                row.position / cache.blockSize < table.count,
                "position \(row.position) past the \(table.count) blocks of its sequence")
        }
    }

    /// Rotates every row's queries and keys and stores its key and value in its block.
    func rotateAndCache(layer: Int) {
        for (index, row) in batch.rows.enumerated() {
            context.rotate(row: index, position: row.position)
            let slot = batch.blockTables[row.sequence].withUnsafeBufferPointer {
                cache.slot(of: row.position, in: $0.baseAddress!)
            }
            context.store(row: index, into: cache.storage, layer: layer, slotPosition: slot)
        }
    }

    func run(_ items: Range<Int>, thread: Int) {
        let headCount = context.model.config.headCount
        let storage = cache.storage
        let layer = layer
        for item in items {
            let index = item / headCount
            let row = batch.rows[index]
            batch.blockTables[row.sequence].withUnsafeBufferPointer { table in
                let table = table.baseAddress!
                context.attendExact(
                    row: index, head: item % headCount, thread: thread, layer: layer,
                    visible: row.position + 1, batchedOrder: row.promptOrder,
                    keys: {
                        storage.keys(layer: layer, position: self.cache.slot(of: $0, in: table))
                    },
                    values: {
                        storage.values(layer: layer, position: self.cache.slot(of: $0, in: table))
                    })
            }
        }
    }
}
