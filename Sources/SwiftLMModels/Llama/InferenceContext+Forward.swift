import Foundation
import SwiftLMCore

extension InferenceContext {
    /// One forward pass over `tokens` at positions `position..<position + tokens.count`:
    /// `[tokenCount] -> [logitRows, vocabSize]` in `buffers.logits`, for the last `logitRows`
    /// tokens. Appends the tokens' keys and values to the cache.
    func forward(_ tokens: ArraySlice<Int>, logitRows: Int) {
        embed(tokens, into: buffers.x)
        forwardEmbedded(tokenCount: tokens.count, logitRows: logitRows)
    }

    /// One forward pass over the rows of `batch`, tokens of several sequences whose keys and
    /// values live in `cache`: `[rowCount] -> [logitRowCount, vocabSize]`, the rows that want
    /// logits in order, returned as a view of the context's buffer (valid until the next
    /// forward pass). Each row's keys and values go into its sequence's block at its position.
    ///
    /// Every weight is read once for all the rows, which is what makes serving many
    /// sequences cheaper than serving them in turn. A row's result does not depend on the
    /// other rows: the products keep each row's order of sums, and attention takes the
    /// prompt's (batched) or the decode step's order of sums from the row's own
    /// `promptOrder`, so batching changes no token.
    public func forward(
        _ batch: PagedBatch, cache paged: PagedKVCache
    ) -> UnsafeBufferPointer<Float> {
        precondition(batch.rows.count <= batchCapacity, "batch of \(batch.rows.count) rows")
        precondition(paged.storage.kvDim == model.config.kvDim, "cache of another model")
        guard !batch.rows.isEmpty else { return UnsafeBufferPointer(start: nil, count: 0) }

        embed(batch.rows.lazy.map(\.token), into: buffers.x)
        let work = PagedAttentionWork(self, batch: batch, cache: paged)
        let logitRows = forwardLayers(tokenCount: batch.rows.count, paged: work)
        return UnsafeBufferPointer(start: buffers.logits, count: logitRows * model.config.vocabSize)
    }

    /// `forward` from input embeddings, `[count, hidden]`, instead of token ids (prompt
    /// tuning's virtual tokens); no logits.
    func forward(embeddings: UnsafePointer<Float>, count: Int) {
        buffers.x.update(from: embeddings, count: count * model.config.hidden)
        forwardEmbedded(tokenCount: count, logitRows: 0)
    }

    /// `forward` after the embedding: the rows of `buffers.x` are the inputs.
    private func forwardEmbedded(tokenCount: Int, logitRows: Int) {
        forwardLayers(tokenCount: tokenCount, paged: nil)
        cache.count += tokenCount

        // Only the rows whose logits were asked for go through the output head.
        guard logitRows > 0 else { return }
        let firstRow = tokenCount - logitRows
        let hidden = model.config.hidden
        normalize(
            buffers.x + firstRow * hidden, weight: model.outputNorm, rows: logitRows,
            into: buffers.normed)
        multiply(model.output, buffers.normed, rows: logitRows, into: buffers.logits)
    }

    /// The transformer blocks over the rows of `buffers.x`: the context's own sequence, or
    /// with `paged` the rows of a paged batch, whose logits it then computes (returning
    /// their count).
    @discardableResult
    private func forwardLayers(tokenCount: Int, paged: PagedAttentionWork?) -> Int {
        let config = model.config
        let hidden = config.hidden
        let b = buffers

        for layer in 0..<config.layerCount {
            let weights = model.blocks[layer]

            // Attention sub-layer with a residual connection.
            normalize(b.x, weight: weights.attentionNorm, rows: tokenCount, into: b.normed)
            multiply(weights.query, b.normed, rows: tokenCount, into: b.query)
            multiply(weights.key, b.normed, rows: tokenCount, into: b.key)
            multiply(weights.value, b.normed, rows: tokenCount, into: b.value)
            if let paged {
                paged.rotateAndCache(layer: layer)
                paged.layer = layer
                pool.parallelFor(tokenCount * config.headCount, work: paged)
            } else {
                rotateAndCache(layer: layer, tokenCount: tokenCount)
                attend(layer: layer, tokenCount: tokenCount)
            }
            multiply(weights.attentionOutput, b.attention, rows: tokenCount, into: b.projection)
            FloatKernels.add(b.projection, into: b.x, count: tokenCount * hidden)

            // SwiGLU feed-forward sub-layer with a residual connection.
            normalize(b.x, weight: weights.feedForwardNorm, rows: tokenCount, into: b.normed)
            multiply(weights.gate, b.normed, rows: tokenCount, into: b.gate)
            multiply(weights.up, b.normed, rows: tokenCount, into: b.up)
            for token in 0..<tokenCount {
                let offset = token * config.intermediate
                FloatKernels.swiGLU(
                    gate: b.gate + offset, up: b.up + offset, count: config.intermediate)
            }
            multiply(weights.down, b.gate, rows: tokenCount, into: b.projection)
            FloatKernels.add(b.projection, into: b.x, count: tokenCount * hidden)
        }
        guard let paged else { return 0 }

        // The rows that want logits, gathered in order through the output head.
        var logitRows = 0
        for (row, entry) in paged.batch.rows.enumerated() where entry.wantsLogits {
            normalize(
                b.x + row * hidden, weight: model.outputNorm, rows: 1,
                into: b.normed + logitRows * hidden)
            logitRows += 1
        }
        if logitRows > 0 { multiply(model.output, b.normed, rows: logitRows, into: b.logits) }
        return logitRows
    }

    /// `[tokenCount] -> [tokenCount, hidden]`: rows of the embedding table, dequantized.
    private func embed(
        _ tokens: some Collection<Int>, into x: UnsafeMutablePointer<Float>
    ) {
        let table = model.tokenEmbedding
        let hidden = model.config.hidden
        for (row, token) in tokens.enumerated() {
            Quantization.dequantizeRow(
                table.type, table.row(token), x + row * hidden, count: hidden)
        }
    }

    /// `[rows, hidden] -> [rows, hidden]`: RMSNorm of each row, scaled by `weight`.
    private func normalize(
        _ x: UnsafePointer<Float>, weight: Tensor, rows: Int, into y: UnsafeMutablePointer<Float>
    ) {
        let hidden = model.config.hidden
        let epsilon = model.config.rmsNormEpsilon
        for row in 0..<rows {
            FloatKernels.rmsNorm(
                x + row * hidden, weight: weight.floats, epsilon: epsilon, count: hidden,
                into: y + row * hidden)
        }
    }

    /// `[rows, inFeatures] -> [rows, outFeatures]`.
    private func multiply(
        _ weight: WeightMatrix, _ x: UnsafePointer<Float>, rows: Int,
        into y: UnsafeMutablePointer<Float>
    ) {
        weight.multiply(
            x, rowCount: rows, into: y, scratch: buffers.activations, pool: pool,
            product: buffers.product)
    }

    /// Applies RoPE to this chunk's queries and keys, then stores keys and values in the cache
    /// as Float16, as llama.cpp's F16 cache stores them.
    private func rotateAndCache(layer: Int, tokenCount: Int) {
        for token in 0..<tokenCount {
            let position = cache.count + token
            rotate(row: token, position: position)
            guard cache.slotCount > 0 else { continue }
            store(row: token, into: cache, layer: layer, slotPosition: position)
        }
    }

    /// RoPE on the queries and keys of row `row` of this chunk, at `position`.
    func rotate(row: Int, position: Int) {
        let config = model.config
        let headDim = config.headDim
        let queryDim = config.headCount * headDim
        let b = buffers
        // Unscaled models keep the kernel that matches llama.cpp's plain RoPE.
        let scaledTable = ropeTable
        let rotate = { (head: UnsafeMutablePointer<Float>) in
            if let table = scaledTable {
                FloatKernels.rope(
                    head, position: position, table: table, interleaved: config.ropeInterleaved)
            } else {
                FloatKernels.rope(
                    head, position: position, dims: config.ropeDims, base: config.ropeBase,
                    interleaved: config.ropeInterleaved)
            }
        }
        for head in 0..<config.headCount { rotate(b.query + row * queryDim + head * headDim) }
        for head in 0..<config.kvHeadCount { rotate(b.key + row * config.kvDim + head * headDim) }
    }

    /// Stores row `row`'s key and value in `cache` at `slotPosition`, as Float16.
    func store(row: Int, into cache: KVCache, layer: Int, slotPosition: Int) {
        let kvDim = model.config.kvDim
        let keys = cache.keys(layer: layer, position: slotPosition)
        let values = cache.values(layer: layer, position: slotPosition)
        let key = buffers.key + row * kvDim
        let value = buffers.value + row * kvDim
        for i in 0..<kvDim {
            keys[i] = Float16(key[i])
            values[i] = Float16(value[i])
        }
    }

    /// Causal grouped-query attention of this chunk's queries over the cache:
    /// `[tokenCount, headCount * headDim] -> [tokenCount, headCount * headDim]`.
    ///
    /// As llama.cpp's F16 path (`build_attn_mha` without flash attention), the query and the
    /// softmax weights are rounded to Float16 before their products with the cached keys and
    /// values, and both products take ggml's order of sums: llamafile's tinyBLAS for a chunk of
    /// two tokens or more, `ggml_vec_dot_f16` for one token (see `FloatKernels`).
    private func attend(layer: Int, tokenCount: Int) {
        if !performerStates.isEmpty {
            attendPerformer(layer: layer, tokenCount: tokenCount)
            return
        }
        attention.layer = layer
        attention.tokenCount = tokenCount
        pool.parallelFor(tokenCount * model.config.headCount, work: attention)
    }

    /// Items `items` (token × head) of `attend`'s exact attention, on thread `thread`.
    func attendExact(_ items: Range<Int>, thread: Int, layer: Int, tokenCount: Int) {
        let config = model.config
        let firstPosition = cache.count
        let cache = cache
        for item in items {
            let token = item / config.headCount
            let head = item % config.headCount
            attendExact(
                row: token, head: head, thread: thread, layer: layer,
                visible: firstPosition + token + 1, batchedOrder: tokenCount >= 2,
                keys: { cache.keys(layer: layer, position: $0) },
                values: { cache.values(layer: layer, position: $0) })
        }
    }

    /// Exact attention of one query head of row `row` over the positions `0..<visible` of its
    /// sequence, whose keys and values `keys` and `values` find (in whatever cache holds them).
    ///
    /// `batchedOrder` takes the order of sums of llama.cpp's chunk of two tokens or more
    /// (tinyBLAS); otherwise that of a single token (`ggml_vec_dot_f16`).
    @inline(__always)
    func attendExact(
        row token: Int, head: Int, thread: Int, layer: Int, visible: Int, batchedOrder: Bool,
        keys: (Int) -> UnsafeMutablePointer<Float16>,
        values: (Int) -> UnsafeMutablePointer<Float16>
    ) {
        let config = model.config
        let headDim = config.headDim
        let queryDim = config.headCount * headDim
        let groupSize = config.headCount / config.kvHeadCount
        let scale = 1 / Float(headDim).squareRoot()
        // tinyBLAS takes rows in whole vectors of 16; ggml falls back to ggml_vec_dot_f16.
        let scoresInLanes16 = batchedOrder && headDim % 16 == 0
        let b = buffers
        let kvOffset = (head / groupSize) * headDim

        let scores = b.scores + thread * b.scoresStride
        let query = scores + b.scoresCapacity
        let lanes = query + headDim

        query.update(from: b.query + token * queryDim + head * headDim, count: headDim)
        FloatKernels.roundToHalf(query, count: headDim)
        if scoresInLanes16 {
            for position in 0..<visible {
                let dot = FloatKernels.dotLanes16(query, keys(position) + kvOffset, count: headDim)
                scores[position] = dot * scale
            }
        } else {
            FloatKernels.dotsF16(
                query, count: headDim, positions: visible,
                key: { UnsafePointer(keys($0) + kvOffset) },
                scale: scale, into: scores)
        }
        if let logGates = prefixLogGates {
            let logGate = logGates[layer * config.headCount + head]
            for position in 0..<min(virtualLength, visible) { scores[position] += logGate }
        }

        // llama.cpp's KV view holds a multiple of 256 positions, the ones not visible
        // masked to -infinity. Its softmax takes them in groups of 16, so the last group
        // here is padded the same way; the padding comes out 0.
        let padded = (visible + 15) / 16 * 16
        for position in visible..<padded { scores[position] = -.infinity }
        FloatKernels.softmax(scores, count: padded)
        FloatKernels.roundToHalf(scores, count: visible)

        let output = b.attention + token * queryDim + head * headDim
        let value = { UnsafePointer(values($0) + kvOffset) }
        if batchedOrder {
            FloatKernels.weightedSumLanes16(
                scores, count: visible, width: headDim, row: value, lanes: lanes,
                into: output)
        } else {
            FloatKernels.weightedSumLanes64(
                scores, count: visible, width: headDim, row: value, lanes: lanes,
                into: output)
        }
    }
}

/// `InferenceContext.attend` as pool work (exact attention, or a sliding window), kept by the
/// context so that a decode step allocates nothing.
final class AttentionWork: ParallelWork, @unchecked Sendable {
    unowned let context: InferenceContext
    var layer = 0
    var tokenCount = 0
    /// The window and the global positions (ascending, unique) of a sliding-window model.
    let slidingWindow: (window: Int, globals: [Int])?

    init(_ context: InferenceContext) {
        self.context = context
        if case .slidingWindow(let window, let globals, _) = context.model.config.attention {
            slidingWindow = (window, Array(Set(globals)).sorted())
        } else {
            slidingWindow = nil
        }
    }

    func run(_ range: Range<Int>, thread: Int) {
        if let (window, globals) = slidingWindow {
            context.attendSlidingWindow(
                range, thread: thread, layer: layer, window: window, globals: globals)
        } else {
            context.attendExact(range, thread: thread, layer: layer, tokenCount: tokenCount)
        }
    }
}
