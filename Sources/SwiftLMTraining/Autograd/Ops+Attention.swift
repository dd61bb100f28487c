import Foundation
import SwiftLMCore

extension Ops {
    /// `[batchSize * seqLen, headCount * headDim]` queries and
    /// `[batchSize * seqLen, kvHeadCount * headDim]` keys and values
    /// `-> [batchSize * seqLen, headCount * headDim]`: causal scaled dot-product attention
    /// (Vaswani et al. 2017, section 3.2.1) with grouped-query heads (Ainslie et al. 2023).
    ///
    /// Query head `h` attends with key and value head `h / (headCount / kvHeadCount)`, the
    /// grouping of llama.cpp and Hugging Face's `repeat_kv`. Scores are scaled by
    /// `1 / sqrt(headDim)`, token `i` sees tokens `0...i` of its own sequence, and the softmax
    /// subtracts the row maximum before `exp`. Inference's attention rounds the query and the
    /// softmax weights to Float16 as llama.cpp does; this one stays in F32 throughout, so the two
    /// differ by that rounding and do not agree bit for bit.
    ///
    /// This is the plain version: it keeps the softmax probabilities,
    /// `[batchSize, headCount, seqLen, seqLen]` floats, for the backward, so its memory grows
    /// with the square of `seqLen`. `tiledCausalAttention` recomputes them tile by tile
    /// (FlashAttention-2, Dao 2023) in memory linear in `seqLen`; this one stays as its
    /// reference.
    ///
    /// The backward follows the softmax gradient of Dao et al. 2022 (FlashAttention, appendix
    /// B.2): `dV = Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = scale·dS·K`,
    /// `dK = scale·dSᵀ·Q`.
    public static func causalAttention(
        query: Variable, key: Variable, value: Variable, batchSize: Int, seqLen: Int,
        headCount: Int, kvHeadCount: Int, headDim: Int
    ) -> Variable {
        let shape = AttentionShape(
            batchSize: batchSize, seqLen: seqLen, headCount: headCount,
            kvHeadCount: kvHeadCount, headDim: headDim)
        shape.validate(query: query, key: key, value: value)

        let probabilities = Tensor(uninitialized: [batchSize, headCount, seqLen, seqLen])
        let result = Tensor(uninitialized: [shape.tokens, shape.queryWidth])
        shape.forward(
            query: query.value.floats, key: key.value.floats, value: value.value.floats,
            probabilities: probabilities.floats, output: result.floats)

        return Variable(result, inputs: [query, key, value]) { output in
            // Allocate the gradients here: `gradientStorage` is not safe to call from the
            // pool's threads.
            let gradients = AttentionGradients(
                query: query.requiresGradient ? query.gradientStorage() : nil,
                key: key.requiresGradient ? key.gradientStorage() : nil,
                value: value.requiresGradient ? value.gradientStorage() : nil)
            shape.backward(
                outputGradient: output.gradient!.floats, query: query.value.floats,
                key: key.value.floats, value: value.value.floats,
                probabilities: probabilities.floats, gradients: gradients)
        }
    }
}

/// Where the inputs' gradients go; nil for an input that needs none. Shared with the tiled
/// attention (Ops+TiledAttention.swift).
struct AttentionGradients {
    let query: UnsafeMutablePointer<Float>?
    let key: UnsafeMutablePointer<Float>?
    let value: UnsafeMutablePointer<Float>?
}

/// The sizes of one attention call and where each (batch, head) block lies in the token-major
/// tensors: head `h` of sequence `b` is the `[seqLen, headDim]` block at row `b * seqLen`,
/// column `h * headDim`, read with the full row length as its leading dimension.
struct AttentionShape {
    let batchSize: Int
    let seqLen: Int
    let headCount: Int
    let kvHeadCount: Int
    let headDim: Int

    var tokens: Int { batchSize * seqLen }
    var queryWidth: Int { headCount * headDim }
    var kvWidth: Int { kvHeadCount * headDim }
    var groupSize: Int { headCount / kvHeadCount }
    var scale: Float { 1 / Float(headDim).squareRoot() }

    func validate(query: Variable, key: Variable, value: Variable) {
        precondition(batchSize > 0 && seqLen > 0 && headDim > 0, "attention: empty shape")
        precondition(
            kvHeadCount > 0 && headCount % kvHeadCount == 0,
            "attention: headCount \(headCount) is not a multiple of kvHeadCount \(kvHeadCount)")
        precondition(
            query.shape == [tokens, queryWidth],
            "attention: query \(query.shape), expected [\(tokens), \(queryWidth)]")
        precondition(
            key.shape == [tokens, kvWidth],
            "attention: key \(key.shape), expected [\(tokens), \(kvWidth)]")
        precondition(
            value.shape == [tokens, kvWidth],
            "attention: value \(value.shape), expected [\(tokens), \(kvWidth)]")
    }

    /// Runs `body` over `0..<count` on `Ops.pool`, or all on the calling thread (index 0) when
    /// the whole call is too small to repay the handoff to the workers, the rule of
    /// `BLAS.gemm(..., pool:)`.
    func forEach(_ count: Int, _ body: (Range<Int>, Int) -> Void) {
        let parallelMinimum = 1 << 16
        if batchSize * headCount * seqLen * seqLen * headDim < parallelMinimum {
            body(0..<count, 0)
        } else {
            Ops.pool.parallelFor(count, body)
        }
    }

    /// Offset of head `head`'s block of sequence `batch` in a tensor of rows `width` long.
    func block(batch: Int, head: Int, width: Int) -> Int {
        batch * seqLen * width + head * headDim
    }

    /// Offset of the `[seqLen, seqLen]` probabilities of (`batch`, `head`).
    func probabilityBlock(batch: Int, head: Int) -> Int {
        (batch * headCount + head) * seqLen * seqLen
    }

    /// `[tokens, queryWidth]`, `[tokens, kvWidth]` ×2 -> `[tokens, queryWidth]` and
    /// `[batchSize, headCount, seqLen, seqLen]` probabilities. Every (batch, head) writes its
    /// own blocks, so they run in parallel.
    func forward(
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        probabilities: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        forEach(batchSize * headCount) { items, _ in
            for item in items {
                let batch = item / headCount
                let head = item % headCount
                let kvHead = head / groupSize
                let queries = query + block(batch: batch, head: head, width: queryWidth)
                let keys = key + block(batch: batch, head: kvHead, width: kvWidth)
                let values = value + block(batch: batch, head: kvHead, width: kvWidth)
                let p = probabilities + probabilityBlock(batch: batch, head: head)

                // S[seqLen, seqLen] = scale · Q · Kᵀ. The masked upper triangle is computed
                // and thrown away (half the work): skipping it is left to the tiled version,
                // which works block by block anyway.
                BLAS.gemm(
                    transposeA: false, transposeB: true, m: seqLen, n: seqLen, k: headDim,
                    alpha: scale, queries, lda: queryWidth, keys, ldb: kvWidth, p, ldc: seqLen)

                for row in 0..<seqLen { causalSoftmax(p + row * seqLen, row: row) }

                // O[seqLen, headDim] = P · V
                BLAS.gemm(
                    transposeA: false, transposeB: false, m: seqLen, n: headDim, k: seqLen, p,
                    lda: seqLen, values, ldb: kvWidth,
                    output + block(batch: batch, head: head, width: queryWidth),
                    ldc: queryWidth)
            }
        }
    }

    /// `[seqLen] -> [seqLen]` in place: softmax over elements `0...row`, zero after them.
    func causalSoftmax(_ scores: UnsafeMutablePointer<Float>, row: Int) {
        var maximum = -Float.infinity
        for column in 0...row { maximum = max(maximum, scores[column]) }

        // Subtracting the maximum keeps every exp in (0, 1]: no overflow, and the largest
        // term is exactly 1, so the sum is at least 1.
        var sum: Float = 0
        for column in 0...row {
            let e = expf(scores[column] - maximum)
            scores[column] = e
            sum += e
        }

        let inverse = 1 / sum
        for column in 0...row { scores[column] *= inverse }
        for column in (row + 1)..<seqLen { scores[column] = 0 }
    }

    /// Adds the gradients of the query, key and value, given the output's.
    ///
    /// Work is split by (batch, kvHead): the query heads of one group all add into the same
    /// dK and dV block, so one thread takes the whole group and no two threads ever write the
    /// same rows. Each thread keeps one `[seqLen, seqLen]` scratch for dP and dS.
    func backward(
        outputGradient: UnsafePointer<Float>, query: UnsafePointer<Float>,
        key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        probabilities: UnsafePointer<Float>, gradients: AttentionGradients
    ) {
        let needsScores = gradients.query != nil || gradients.key != nil
        let scratch = Tensor(zeros: [Ops.pool.threadCount, seqLen * seqLen])

        forEach(batchSize * kvHeadCount) { items, thread in
            let dS = scratch.floats + thread * seqLen * seqLen
            for item in items {
                let batch = item / kvHeadCount
                let kvHead = item % kvHeadCount
                let kvOffset = block(batch: batch, head: kvHead, width: kvWidth)
                let keys = key + kvOffset
                let values = value + kvOffset

                for head in (kvHead * groupSize)..<((kvHead + 1) * groupSize) {
                    let queryOffset = block(batch: batch, head: head, width: queryWidth)
                    let dO = outputGradient + queryOffset
                    let p = probabilities + probabilityBlock(batch: batch, head: head)

                    // dV[seqLen, headDim] += Pᵀ · dO
                    if let dV = gradients.value {
                        BLAS.gemm(
                            transposeA: true, transposeB: false, m: seqLen, n: headDim,
                            k: seqLen, p, lda: seqLen, dO, ldb: queryWidth, beta: 1,
                            dV + kvOffset, ldc: kvWidth)
                    }
                    guard needsScores else { continue }

                    // dP[seqLen, seqLen] = dO · Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P)).
                    BLAS.gemm(
                        transposeA: false, transposeB: true, m: seqLen, n: seqLen, k: headDim,
                        dO, lda: queryWidth, values, ldb: kvWidth, dS, ldc: seqLen)
                    for row in 0..<seqLen {
                        softmaxBackward(
                            dS + row * seqLen, probabilities: p + row * seqLen, row: row)
                    }

                    // dQ[seqLen, headDim] += scale · dS · K
                    if let dQ = gradients.query {
                        BLAS.gemm(
                            transposeA: false, transposeB: false, m: seqLen, n: headDim,
                            k: seqLen, alpha: scale, dS, lda: seqLen, keys, ldb: kvWidth, beta: 1,
                            dQ + queryOffset, ldc: queryWidth)
                    }
                    // dK[seqLen, headDim] += scale · dSᵀ · Q
                    if let dK = gradients.key {
                        BLAS.gemm(
                            transposeA: true, transposeB: false, m: seqLen, n: headDim,
                            k: seqLen, alpha: scale, dS, lda: seqLen, query + queryOffset,
                            ldb: queryWidth, beta: 1, dK + kvOffset, ldc: kvWidth)
                    }
                }
            }
        }
    }

    /// `[seqLen] -> [seqLen]` in place: turns row `row` of dP into dS = P ⊙ (dP − ⟨dP, P⟩), the
    /// softmax's Jacobian applied to dP. Masked columns (after `row`) have P = 0: their dS is 0.
    func softmaxBackward(
        _ gradient: UnsafeMutablePointer<Float>, probabilities: UnsafePointer<Float>, row: Int
    ) {
        var dot: Float = 0
        for column in 0...row { dot += gradient[column] * probabilities[column] }
        for column in 0...row {
            gradient[column] = probabilities[column] * (gradient[column] - dot)
        }
        for column in (row + 1)..<seqLen { gradient[column] = 0 }
    }
}
