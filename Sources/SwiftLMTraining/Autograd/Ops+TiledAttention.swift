import Foundation
import SwiftLMCore

extension Ops {
    /// `[batchSize * seqLen, headCount * headDim]` queries and
    /// `[batchSize * seqLen, kvHeadCount * headDim]` keys and values
    /// `-> [batchSize * seqLen, headCount * headDim]`: the same causal grouped-query attention as
    /// `causalAttention`, computed tile by tile in memory linear in `seqLen`.
    ///
    /// The exact algorithm of FlashAttention (Dao et al. 2022) with the loop order of
    /// FlashAttention-2 (Dao 2023, algorithms 1 and 2). The forward takes one query tile at a
    /// time and makes one pass over the key tiles up to the diagonal, keeping a running row
    /// maximum and sum (the online softmax of Milakov and Gimelshein 2018) and rescaling the
    /// partial output whenever the maximum grows; key tiles wholly above the diagonal are never
    /// touched, so it does about half the arithmetic of the plain version. It keeps only the
    /// output and each row's log-sum-exp, `[batchSize, headCount, seqLen]` floats. The backward
    /// recomputes the probabilities of each tile from Q, K and the log-sum-exp, and uses
    /// `D = rowsum(dO ⊙ O)` in place of `rowsum(dP ⊙ P)`: the two are equal, and D needs no
    /// second pass over the keys.
    ///
    /// The result equals `causalAttention`'s up to float rounding (the sums run in another
    /// order), and so do the gradients.
    ///
    /// - Parameters:
    ///   - queryTileSize: query rows per tile (FlashAttention's `B_r`); clipped to `seqLen`.
    ///   - keyTileSize: key rows per tile (`B_c`); clipped to `seqLen`. Tiles of 64 to 128 ran
    ///     within 10% of each other on an AVX-512 EPYC with OpenBLAS (64 a little faster up to
    ///     1024 tokens, 128 at 4096); 32 was 15% slower, the matrix products too small.
    public static func tiledCausalAttention(
        query: Variable, key: Variable, value: Variable, batchSize: Int, seqLen: Int,
        headCount: Int, kvHeadCount: Int, headDim: Int, queryTileSize: Int = 64,
        keyTileSize: Int = 64
    ) -> Variable {
        let shape = AttentionShape(
            batchSize: batchSize, seqLen: seqLen, headCount: headCount,
            kvHeadCount: kvHeadCount, headDim: headDim)
        shape.validate(query: query, key: key, value: value)
        precondition(
            queryTileSize > 0 && keyTileSize > 0,
            "attention: tile sizes \(queryTileSize) and \(keyTileSize) must be positive")
        let tiling = AttentionTiling(
            shape: shape, queryTileSize: min(queryTileSize, seqLen),
            keyTileSize: min(keyTileSize, seqLen))

        let logSumExp = Tensor(uninitialized: [batchSize, headCount, seqLen])
        // Zeroed: the forward adds into it from the first key tile on.
        let result = Tensor(zeros: [shape.tokens, shape.queryWidth])
        tiling.forward(
            query: query.value.floats, key: key.value.floats, value: value.value.floats,
            output: result.floats, logSumExp: logSumExp.floats)

        return Variable(result, inputs: [query, key, value]) { output in
            // Allocated here: `gradientStorage` is not safe to call from the pool's threads.
            let gradients = AttentionGradients(
                query: query.requiresGradient ? query.gradientStorage() : nil,
                key: key.requiresGradient ? key.gradientStorage() : nil,
                value: value.requiresGradient ? value.gradientStorage() : nil)
            tiling.backward(
                outputGradient: output.gradient!.floats, output: output.value.floats,
                query: query.value.floats, key: key.value.floats, value: value.value.floats,
                logSumExp: logSumExp.floats, gradients: gradients)
        }
    }
}

/// The tile loops of `Ops.tiledCausalAttention` for one call.
///
/// A query tile is rows `q0..<q0 + rows` of one (batch, head) block, a key tile rows
/// `k0..<k0 + columns` of its key and value block; the scores of the pair are a
/// `[rows, columns]` tile, stored with row length `keyTileSize` in per-thread scratch. Query
/// row `i` sees key rows `0...i`, so in a tile it sees `i - k0 + 1` columns, clamped to
/// `0...columns`: the causal mask never needs a -infinity, only a count.
struct AttentionTiling {
    let shape: AttentionShape
    let queryTileSize: Int
    let keyTileSize: Int

    var queryTileCount: Int { (shape.seqLen + queryTileSize - 1) / queryTileSize }
    var tileFloats: Int { queryTileSize * keyTileSize }

    /// How many of a tile's `columns` key rows, starting at `k0`, query row `i` may see.
    func visibleColumns(row i: Int, k0: Int, columns: Int) -> Int {
        min(max(i - k0 + 1, 0), columns)
    }

    // MARK: - Forward

    /// `[tokens, queryWidth]`, `[tokens, kvWidth]` ×2 -> `[tokens, queryWidth]` output and
    /// `[batchSize, headCount, seqLen]` log-sum-exp of each row's scaled scores.
    ///
    /// Every (batch, head, query tile) writes its own output rows, so all of them run in
    /// parallel; each thread keeps one score tile and the tile's running maxima and sums.
    func forward(
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>
    ) {
        let scratchFloats = tileFloats + 2 * queryTileSize
        let scratch = Tensor(uninitialized: [Ops.pool.threadCount, scratchFloats])
        let tilesPerSequence = shape.headCount * queryTileCount

        shape.forEach(shape.batchSize * tilesPerSequence) { items, thread in
            let scores = scratch.floats + thread * scratchFloats
            let rowMaximum = scores + tileFloats
            let rowSum = rowMaximum + queryTileSize
            for item in items {
                let batch = item / tilesPerSequence
                let head = item % tilesPerSequence / queryTileCount
                let q0 = item % queryTileCount * queryTileSize
                let rows = min(queryTileSize, shape.seqLen - q0)
                let queryOffset =
                    shape.block(batch: batch, head: head, width: shape.queryWidth)
                    + q0 * shape.queryWidth
                let kvOffset = shape.block(
                    batch: batch, head: head / shape.groupSize, width: shape.kvWidth)
                forwardQueryTile(
                    q0: q0, rows: rows, queries: query + queryOffset, keys: key + kvOffset,
                    values: value + kvOffset, output: output + queryOffset,
                    logSumExp: logSumExp + (batch * shape.headCount + head) * shape.seqLen + q0,
                    scores: scores, rowMaximum: rowMaximum, rowSum: rowSum)
            }
        }
    }

    /// One query tile against every key tile up to the diagonal (FlashAttention-2, algorithm
    /// 1). `queries` and `output` point at the tile's first row, `keys` and `values` at the
    /// (batch, kvHead) block's; `output` starts zero and accumulates `e^(S − m) · V` unscaled.
    private func forwardQueryTile(
        q0: Int, rows: Int, queries: UnsafePointer<Float>, keys: UnsafePointer<Float>,
        values: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        logSumExp: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
        rowMaximum: UnsafeMutablePointer<Float>, rowSum: UnsafeMutablePointer<Float>
    ) {
        let (headDim, queryWidth, kvWidth) = (shape.headDim, shape.queryWidth, shape.kvWidth)
        rowMaximum.update(repeating: -.infinity, count: rows)
        rowSum.update(repeating: 0, count: rows)

        // Key rows at or after the tile's last query row are masked for every row: stop there.
        var k0 = 0
        while k0 < q0 + rows {
            let columns = min(keyTileSize, q0 + rows - k0)

            // S[rows, columns] = scale · Q · Kᵀ
            BLAS.gemm(
                transposeA: false, transposeB: true, m: rows, n: columns, k: headDim,
                alpha: shape.scale, queries, lda: queryWidth, keys + k0 * kvWidth, ldb: kvWidth,
                scores, ldc: keyTileSize)

            // The online softmax: a larger maximum shrinks what the row has summed so far by
            // e^(m_old − m_new). On the first tile m_old = -infinity and the factor is 0.
            for row in 0..<rows {
                let visible = visibleColumns(row: q0 + row, k0: k0, columns: columns)
                let p = scores + row * keyTileSize
                (p + visible).update(repeating: 0, count: columns - visible)
                guard visible > 0 else { continue }
                let maximum = max(rowMaximum[row], rowMax(p, count: visible))
                let correction = expf(rowMaximum[row] - maximum)
                rowSum[row] =
                    rowSum[row] * correction + exponentiate(p, count: visible, shift: maximum)
                rowMaximum[row] = maximum
                if correction != 1 { scaleRow(output + row * queryWidth, by: correction) }
            }

            // O[rows, headDim] += P̃ · V
            BLAS.gemm(
                transposeA: false, transposeB: false, m: rows, n: headDim, k: columns, scores,
                lda: keyTileSize, values + k0 * kvWidth, ldb: kvWidth, beta: 1, output,
                ldc: queryWidth)
            k0 += keyTileSize
        }

        // Every row saw at least key 0, so its sum is at least 1 (its maximum's term).
        for row in 0..<rows {
            scaleRow(output + row * queryWidth, by: 1 / rowSum[row])
            logSumExp[row] = rowMaximum[row] + logf(rowSum[row])
        }
    }

    // MARK: - Backward

    /// Adds the gradients of the query, key and value, given the output and its gradient.
    ///
    /// Work is split by (batch, kvHead), as in the plain version: the query heads of a group
    /// all add into the same dK and dV rows, so one thread takes the whole group and every
    /// gradient row has one writer. Within a group the key tiles are the outer loop
    /// (FlashAttention-2, algorithm 2), so a key tile and its dK and dV rows stay in cache
    /// while the query tiles after it stream past.
    func backward(
        outputGradient: UnsafePointer<Float>, output: UnsafePointer<Float>,
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        logSumExp: UnsafePointer<Float>, gradients: AttentionGradients
    ) {
        let scratch = Tensor(uninitialized: [Ops.pool.threadCount, 2 * tileFloats])
        let rowDots = Tensor(uninitialized: [shape.batchSize, shape.headCount, shape.seqLen])

        shape.forEach(shape.batchSize * shape.kvHeadCount) { items, thread in
            let probabilities = scratch.floats + thread * 2 * tileFloats
            let scoreGradients = probabilities + tileFloats
            for item in items {
                let batch = item / shape.kvHeadCount
                let kvHead = item % shape.kvHeadCount
                let heads = (kvHead * shape.groupSize)..<((kvHead + 1) * shape.groupSize)

                // D = rowsum(dO ⊙ O) = rowsum(dP ⊙ P) (FlashAttention-2, algorithm 2, line 4).
                for head in heads {
                    let offset = shape.block(batch: batch, head: head, width: shape.queryWidth)
                    let dots = rowDots.floats + (batch * shape.headCount + head) * shape.seqLen
                    for row in 0..<shape.seqLen {
                        let at = offset + row * shape.queryWidth
                        dots[row] = dot(outputGradient + at, output + at, count: shape.headDim)
                    }
                }

                var k0 = 0
                while k0 < shape.seqLen {
                    for head in heads {
                        backwardKeyTile(
                            batch: batch, head: head, k0: k0, outputGradient: outputGradient,
                            query: query, key: key, value: value, logSumExp: logSumExp,
                            rowDots: rowDots.floats, gradients: gradients,
                            probabilities: probabilities, scoreGradients: scoreGradients)
                    }
                    k0 += keyTileSize
                }
            }
        }
    }

    /// The gradient contributions of key tile `k0` of (batch, head's kvHead) with every query
    /// tile of `head` that can see it: query rows `k0..<seqLen`, cut into tiles starting at
    /// `k0` (the backward's query tiles need not line up with the forward's).
    private func backwardKeyTile(
        batch: Int, head: Int, k0: Int, outputGradient: UnsafePointer<Float>,
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        logSumExp: UnsafePointer<Float>, rowDots: UnsafePointer<Float>,
        gradients: AttentionGradients, probabilities: UnsafeMutablePointer<Float>,
        scoreGradients: UnsafeMutablePointer<Float>
    ) {
        let (seqLen, headDim) = (shape.seqLen, shape.headDim)
        let (queryWidth, kvWidth) = (shape.queryWidth, shape.kvWidth)
        let columns = min(keyTileSize, seqLen - k0)
        let kvOffset =
            shape.block(batch: batch, head: head / shape.groupSize, width: kvWidth)
            + k0 * kvWidth
        let keys = key + kvOffset
        let values = value + kvOffset
        let headRows = (batch * shape.headCount + head) * seqLen
        let needsScores = gradients.query != nil || gradients.key != nil

        var q0 = k0
        while q0 < seqLen {
            let rows = min(queryTileSize, seqLen - q0)
            let queryOffset =
                shape.block(batch: batch, head: head, width: queryWidth) + q0 * queryWidth
            let queries = query + queryOffset
            let dO = outputGradient + queryOffset

            // P[rows, columns] = e^(scale · Q · Kᵀ − L), the forward's probabilities exactly
            // as normalized there, zero where masked.
            BLAS.gemm(
                transposeA: false, transposeB: true, m: rows, n: columns, k: headDim,
                alpha: shape.scale, queries, lda: queryWidth, keys, ldb: kvWidth, probabilities,
                ldc: keyTileSize)
            for row in 0..<rows {
                let visible = visibleColumns(row: q0 + row, k0: k0, columns: columns)
                let p = probabilities + row * keyTileSize
                _ = exponentiate(p, count: visible, shift: logSumExp[headRows + q0 + row])
                (p + visible).update(repeating: 0, count: columns - visible)
            }

            // dV[columns, headDim] += Pᵀ · dO
            if let dV = gradients.value {
                BLAS.gemm(
                    transposeA: true, transposeB: false, m: columns, n: headDim, k: rows,
                    probabilities, lda: keyTileSize, dO, ldb: queryWidth, beta: 1, dV + kvOffset,
                    ldc: kvWidth)
            }

            if needsScores {
                // dP[rows, columns] = dO · Vᵀ, then dS = P ⊙ (dP − D): zero where P is.
                BLAS.gemm(
                    transposeA: false, transposeB: true, m: rows, n: columns, k: headDim, dO,
                    lda: queryWidth, values, ldb: kvWidth, scoreGradients, ldc: keyTileSize)
                for row in 0..<rows {
                    softmaxBackward(
                        scoreGradients + row * keyTileSize,
                        probabilities: probabilities + row * keyTileSize, count: columns,
                        rowDot: rowDots[headRows + q0 + row])
                }
            }

            // dQ[rows, headDim] += scale · dS · K
            if let dQ = gradients.query {
                BLAS.gemm(
                    transposeA: false, transposeB: false, m: rows, n: headDim, k: columns,
                    alpha: shape.scale, scoreGradients, lda: keyTileSize, keys, ldb: kvWidth,
                    beta: 1, dQ + queryOffset, ldc: queryWidth)
            }
            // dK[columns, headDim] += scale · dSᵀ · Q
            if let dK = gradients.key {
                BLAS.gemm(
                    transposeA: true, transposeB: false, m: columns, n: headDim, k: rows,
                    alpha: shape.scale, scoreGradients, lda: keyTileSize, queries,
                    ldb: queryWidth, beta: 1, dK + kvOffset, ldc: kvWidth)
            }
            q0 += queryTileSize
        }
    }

    // MARK: - Row kernels

    /// `[count] -> [count]` in place: dP becomes dS = P ⊙ (dP − D).
    private func softmaxBackward(
        _ gradient: UnsafeMutablePointer<Float>, probabilities: UnsafePointer<Float>, count: Int,
        rowDot: Float
    ) {
        var column = 0
        while column + 16 <= count {
            let p = load16(probabilities + column)
            store16(p * (load16(gradient + column) - rowDot), gradient + column)
            column += 16
        }
        while column < count {
            gradient[column] = probabilities[column] * (gradient[column] - rowDot)
            column += 1
        }
    }

    /// The largest of `count` (at least one) floats.
    private func rowMax(_ x: UnsafePointer<Float>, count: Int) -> Float {
        // Lane by lane: `pointwiseMax` on SIMD16 compiles to per-lane code through the stack,
        // fifty times slower than this loop, which LLVM vectorizes.
        var lanes = SIMD16<Float>(repeating: -.infinity)
        var column = 0
        while column + 16 <= count {
            let values = load16(x + column)
            for lane in 0..<16 {
                lanes[lane] = values[lane] > lanes[lane] ? values[lane] : lanes[lane]
            }
            column += 16
        }
        var maximum = -Float.infinity
        for lane in 0..<16 { maximum = max(maximum, lanes[lane]) }
        while column < count {
            maximum = max(maximum, x[column])
            column += 1
        }
        return maximum
    }

    /// `[count] -> [count]` in place: `x = e^(x − shift)`, returning the sum, for a `shift`
    /// at least as large as every `x` (a row's maximum or log-sum-exp). Sixteen lanes at a time,
    /// the rest with `expf`: the exponentials cost as much as the tile's matrix products when
    /// computed one by one.
    private func exponentiate(_ x: UnsafeMutablePointer<Float>, count: Int, shift: Float) -> Float {
        var lanes = SIMD16<Float>(repeating: 0)
        var column = 0
        while column + 16 <= count {
            let e = Self.negativeExp(load16(x + column) - shift)
            store16(e, x + column)
            lanes += e
            column += 16
        }
        var sum = lanes.sum()
        while column < count {
            let e = expf(x[column] - shift)
            x[column] = e
            sum += e
            column += 1
        }
        return sum
    }

    /// e^x per lane for x ≤ 0 (a little above 0 is fine too): within 1.5 ulp of e^x down to
    /// x = -87, and e^-87 ≈ 1.6e-38 below, nothing next to a softmax sum of at least 1.
    ///
    /// The range reduction and degree-5 polynomial of `VectorMath.exp` (ggml's `ggml_v_expf`,
    /// from Arm's optimized routines): x = n ln 2 + b, e^b by the polynomial, times 2^n made
    /// from exponent bits. `VectorMath.exp` also rounds results outside binary32's normal range
    /// exactly as AVX-512's `scalef` does, which it needs to match ggml bit for bit; the masked
    /// Int32 lane updates that this takes compiled to per-lane code through the stack, and
    /// were half the forward's time when this called `VectorMath.exp`. Clamping x is enough
    /// here. Shared with the Performer's feature map (Ops+LinearAttention.swift).
    @inline(__always)
    static func negativeExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        typealias V = SIMD16<Float>
        let x = x.replacing(with: V(repeating: -87), where: x .< -87)

        // z = 1.5 · 2^23 + n: adding the shift rounds x / ln 2 to the integer n, which lands in
        // z's low mantissa bits.
        let shift = V(repeating: 0x1.8p23)
        let z = shift.addingProduct(x, V(repeating: 0x1.715476p+0))
        let n = z - shift
        let b = x.addingProduct(-n, V(repeating: 0x1.62e4p-1))
            .addingProduct(-n, V(repeating: 0x1.7f7d1cp-20))

        let u = b * b
        let high = V(repeating: 0x1.573e2ep-5).addingProduct(V(repeating: 0x1.0e4020p-7), b)
        let middle = V(repeating: 0x1.fffdb6p-2).addingProduct(V(repeating: 0x1.555e66p-3), b)
        let low = V(repeating: 1).addingProduct(V(repeating: 0x1.ffffecp-1), b)
        let j = low.addingProduct(middle.addingProduct(high, u), u)

        // 2^n: n + 127 into the exponent field. The mantissa of z holds 2^22 + n; the bits above
        // it shift out of the word.
        let zBits = unsafeBitCast(z, to: SIMD16<Int32>.self)
        return j * unsafeBitCast((zBits &+ (127 &- 0x40_0000)) &<< 23, to: V.self)
    }

    /// `[headDim]` row scaled in place.
    private func scaleRow(_ x: UnsafeMutablePointer<Float>, by factor: Float) {
        for column in 0..<shape.headDim { x[column] *= factor }
    }

    private func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var sum: Float = 0
        for index in 0..<count { sum += a[index] * b[index] }
        return sum
    }

    private func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    private func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }
}
