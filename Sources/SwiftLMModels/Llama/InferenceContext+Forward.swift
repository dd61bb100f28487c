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

    /// `forward` from input embeddings, `[count, hidden]`, instead of token ids (prompt
    /// tuning's virtual tokens); no logits.
    func forward(embeddings: UnsafePointer<Float>, count: Int) {
        buffers.x.update(from: embeddings, count: count * model.config.hidden)
        forwardEmbedded(tokenCount: count, logitRows: 0)
    }

    /// `forward` after the embedding: the rows of `buffers.x` are the inputs.
    private func forwardEmbedded(tokenCount: Int, logitRows: Int) {
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
            rotateAndCache(layer: layer, tokenCount: tokenCount)
            attend(layer: layer, tokenCount: tokenCount)
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
        cache.count += tokenCount

        // Only the rows whose logits were asked for go through the output head.
        guard logitRows > 0 else { return }
        let firstRow = tokenCount - logitRows
        normalize(
            b.x + firstRow * hidden, weight: model.outputNorm, rows: logitRows, into: b.normed)
        multiply(model.output, b.normed, rows: logitRows, into: b.logits)
    }

    /// `[tokenCount] -> [tokenCount, hidden]`: rows of the embedding table, dequantized.
    private func embed(_ tokens: ArraySlice<Int>, into x: UnsafeMutablePointer<Float>) {
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
        let config = model.config
        let headDim = config.headDim
        let queryDim = config.headCount * headDim
        let b = buffers
        // Unscaled models keep the kernel that matches llama.cpp's plain RoPE.
        let scaledTable = ropeTable
        let rotate = { (head: UnsafeMutablePointer<Float>, position: Int) in
            if let table = scaledTable {
                FloatKernels.rope(
                    head, position: position, table: table, interleaved: config.ropeInterleaved)
            } else {
                FloatKernels.rope(
                    head, position: position, dims: config.ropeDims, base: config.ropeBase,
                    interleaved: config.ropeInterleaved)
            }
        }

        for token in 0..<tokenCount {
            let position = cache.count + token
            for head in 0..<config.headCount {
                rotate(b.query + token * queryDim + head * headDim, position)
            }
            for head in 0..<config.kvHeadCount {
                rotate(b.key + token * config.kvDim + head * headDim, position)
            }

            guard cache.slotCount > 0 else { continue }
            let keys = cache.keys(layer: layer, position: position)
            let values = cache.values(layer: layer, position: position)
            let key = b.key + token * config.kvDim
            let value = b.value + token * config.kvDim
            for i in 0..<config.kvDim {
                keys[i] = Float16(key[i])
                values[i] = Float16(value[i])
            }
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
        let headDim = config.headDim
        let queryDim = config.headCount * headDim
        let groupSize = config.headCount / config.kvHeadCount
        let scale = 1 / Float(headDim).squareRoot()
        let firstPosition = cache.count
        let batched = tokenCount >= 2
        // tinyBLAS takes rows in whole vectors of 16; ggml falls back to ggml_vec_dot_f16.
        let scoresInLanes16 = batched && headDim % 16 == 0
        let b = buffers
        let cache = cache

        let scores = b.scores + thread * b.scoresStride
        let query = scores + b.scoresCapacity
        let lanes = query + headDim

        for item in items {
            let token = item / config.headCount
            let head = item % config.headCount
            let kvOffset = (head / groupSize) * headDim
            let visible = firstPosition + token + 1

            query.update(from: b.query + token * queryDim + head * headDim, count: headDim)
            FloatKernels.roundToHalf(query, count: headDim)
            for position in 0..<visible {
                let key = cache.keys(layer: layer, position: position) + kvOffset
                let dot =
                    scoresInLanes16
                    ? FloatKernels.dotLanes16(query, key, count: headDim)
                    : FloatKernels.dotF16(query, key, count: headDim)
                scores[position] = dot * scale
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
            let value = { UnsafePointer(cache.values(layer: layer, position: $0) + kvOffset) }
            if batched {
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
