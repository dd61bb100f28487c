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

/// The tile loops of `Ops.tiledCausalAttention` for one call, and the tile steps it shares with
/// `Ops.sparseCausalAttention` (Ops+SparseAttention.swift).
///
/// A query tile is rows `q0..<q0 + rows` of one (batch, head) block, a key tile rows
/// `k0..<k0 + columns` of its key and value block; the scores of the pair are a
/// `[rows, columns]` tile, stored with row length `keyTileSize` in per-thread scratch. Each row
/// sees a contiguous run of the tile's columns, given by an `AttentionTileMask`: causally, query
/// row `i` sees `i - k0 + 1` columns clamped to `0...columns`, so a mask never needs a
/// -infinity, only a range.
struct AttentionTiling {
    let shape: AttentionShape
    let queryTileSize: Int
    let keyTileSize: Int

    var queryTileCount: Int { (shape.seqLen + queryTileSize - 1) / queryTileSize }
    var tileFloats: Int { queryTileSize * keyTileSize }

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
        let scratch = Tensor(uninitialized: [Ops.pool.threadCount, forwardScratchFloats])
        let tilesPerSequence = shape.headCount * queryTileCount

        shape.forEach(shape.batchSize * tilesPerSequence) { items, thread in
            let tileScratch = forwardScratch(scratch.floats + thread * forwardScratchFloats)
            for item in items {
                let batch = item / tilesPerSequence
                let head = item % tilesPerSequence / queryTileCount
                let q0 = item % queryTileCount * queryTileSize
                let queryOffset =
                    shape.block(batch: batch, head: head, width: shape.queryWidth)
                    + q0 * shape.queryWidth
                let kvOffset = shape.block(
                    batch: batch, head: head / shape.groupSize, width: shape.kvWidth)
                let rows = ForwardRows(
                    count: min(queryTileSize, shape.seqLen - q0), stride: shape.queryWidth,
                    queries: query + queryOffset, output: output + queryOffset)
                forwardQueryTile(
                    q0: q0, rows: rows, keys: key + kvOffset, values: value + kvOffset,
                    logSumExp: logSumExp + (batch * shape.headCount + head) * shape.seqLen + q0,
                    scratch: tileScratch)
            }
        }
    }

    /// One query tile against every key tile up to the diagonal (FlashAttention-2, algorithm
    /// 1). `keys` and `values` point at the (batch, kvHead) block's first row.
    private func forwardQueryTile(
        q0: Int, rows: ForwardRows, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        logSumExp: UnsafeMutablePointer<Float>, scratch: ForwardScratch
    ) {
        startRows(rows.count, scratch: scratch)

        // Key rows at or after the tile's last query row are masked for every row: stop there.
        var k0 = 0
        while k0 < q0 + rows.count {
            let tile = KeyRows(
                count: min(keyTileSize, q0 + rows.count - k0), stride: shape.kvWidth,
                keys: keys + k0 * shape.kvWidth, values: values + k0 * shape.kvWidth)
            forwardStep(
                rows, tile, mask: CausalTileMask(queryStart: q0, keyStart: k0), scratch: scratch)
            k0 += keyTileSize
        }

        finishRows(rows, logSumExp: logSumExp, scratch: scratch)
    }

    /// Floats of one thread's forward scratch: a score tile, then a maximum and a sum per row.
    var forwardScratchFloats: Int { tileFloats + 2 * queryTileSize }

    func forwardScratch(_ base: UnsafeMutablePointer<Float>) -> ForwardScratch {
        ForwardScratch(
            scores: base, rowMaximum: base + tileFloats,
            rowSum: base + tileFloats + queryTileSize)
    }

    /// Resets the running maxima and sums before a query tile's first `forwardStep`.
    func startRows(_ count: Int, scratch: ForwardScratch) {
        scratch.rowMaximum.update(repeating: -.infinity, count: count)
        scratch.rowSum.update(repeating: 0, count: count)
    }

    /// One query tile against one key tile: FlashAttention-2's inner loop (algorithm 1, lines
    /// 8 to 10). `rows.output` accumulates `e^(S − m) · V` unscaled; `mask` says which of the
    /// tile's columns each row sees.
    func forwardStep<Mask: AttentionTileMask>(
        _ rows: ForwardRows, _ tile: KeyRows, mask: Mask, scratch: ForwardScratch
    ) {
        let (scores, rowMaximum, rowSum) = (scratch.scores, scratch.rowMaximum, scratch.rowSum)

        // S[rows, columns] = scale · Q · Kᵀ
        BLAS.gemm(
            transposeA: false, transposeB: true, m: rows.count, n: tile.count,
            k: shape.headDim, alpha: shape.scale, rows.queries, lda: rows.stride, tile.keys,
            ldb: tile.stride, scores, ldc: keyTileSize)

        // The online softmax: a larger maximum shrinks what the row has summed so far by
        // e^(m_old − m_new). On a row's first visible tile m_old = -infinity and the factor is 0.
        for row in 0..<rows.count {
            let visible = mask.visibleColumns(row: row, columns: tile.count)
            let p = scores + row * keyTileSize
            p.update(repeating: 0, count: visible.lowerBound)
            (p + visible.upperBound).update(repeating: 0, count: tile.count - visible.upperBound)
            guard !visible.isEmpty else { continue }
            let maximum = max(
                rowMaximum[row], rowMax(p + visible.lowerBound, count: visible.count))
            let correction = expf(rowMaximum[row] - maximum)
            rowSum[row] =
                rowSum[row] * correction
                + exponentiate(p + visible.lowerBound, count: visible.count, shift: maximum)
            rowMaximum[row] = maximum
            if correction != 1 { scaleRow(rows.output + row * rows.stride, by: correction) }
        }

        // O[rows, headDim] += P̃ · V
        BLAS.gemm(
            transposeA: false, transposeB: false, m: rows.count, n: shape.headDim,
            k: tile.count, scores, lda: keyTileSize, tile.values, ldb: tile.stride, beta: 1,
            rows.output, ldc: rows.stride)
    }

    /// Divides each row's output by its sum and writes its log-sum-exp, after the last
    /// `forwardStep`. A row that saw no key at all (a global row of the sparse attention, which
    /// runs apart) is left as it is.
    func finishRows(
        _ rows: ForwardRows, logSumExp: UnsafeMutablePointer<Float>, scratch: ForwardScratch
    ) {
        for row in 0..<rows.count where scratch.rowSum[row] > 0 {
            scaleRow(rows.output + row * rows.stride, by: 1 / scratch.rowSum[row])
            logSumExp[row] = scratch.rowMaximum[row] + logf(scratch.rowSum[row])
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
            let tileScratch = backwardScratch(scratch.floats + thread * 2 * tileFloats)
            for item in items {
                let batch = item / shape.kvHeadCount
                let kvHead = item % shape.kvHeadCount
                let heads = (kvHead * shape.groupSize)..<((kvHead + 1) * shape.groupSize)
                for head in heads {
                    computeRowDots(
                        batch: batch, head: head, outputGradient: outputGradient,
                        output: output, rowDots: rowDots.floats)
                }

                var k0 = 0
                while k0 < shape.seqLen {
                    for head in heads {
                        backwardKeyTile(
                            batch: batch, head: head, k0: k0, outputGradient: outputGradient,
                            query: query, key: key, value: value, logSumExp: logSumExp,
                            rowDots: rowDots.floats, gradients: gradients, scratch: tileScratch)
                    }
                    k0 += keyTileSize
                }
            }
        }
    }

    /// D = rowsum(dO ⊙ O) = rowsum(dP ⊙ P) for every row of (batch, head), into `rowDots`,
    /// `[batchSize, headCount, seqLen]` (FlashAttention-2, algorithm 2, line 4).
    func computeRowDots(
        batch: Int, head: Int, outputGradient: UnsafePointer<Float>,
        output: UnsafePointer<Float>, rowDots: UnsafeMutablePointer<Float>
    ) {
        let offset = shape.block(batch: batch, head: head, width: shape.queryWidth)
        let dots = rowDots + (batch * shape.headCount + head) * shape.seqLen
        for row in 0..<shape.seqLen {
            let at = offset + row * shape.queryWidth
            dots[row] = dot(outputGradient + at, output + at, count: shape.headDim)
        }
    }

    /// The gradient contributions of key tile `k0` of (batch, head's kvHead) with every query
    /// tile of `head` that can see it: query rows `k0..<seqLen`, cut into tiles starting at
    /// `k0` (the backward's query tiles need not line up with the forward's).
    private func backwardKeyTile(
        batch: Int, head: Int, k0: Int, outputGradient: UnsafePointer<Float>,
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        logSumExp: UnsafePointer<Float>, rowDots: UnsafePointer<Float>,
        gradients: AttentionGradients, scratch: BackwardScratch
    ) {
        let (seqLen, queryWidth, kvWidth) = (shape.seqLen, shape.queryWidth, shape.kvWidth)
        let kvOffset =
            shape.block(batch: batch, head: head / shape.groupSize, width: kvWidth)
            + k0 * kvWidth
        let tile = KeyRows(
            count: min(keyTileSize, seqLen - k0), stride: kvWidth, keys: key + kvOffset,
            values: value + kvOffset, keyGradient: gradients.key.map { $0 + kvOffset },
            valueGradient: gradients.value.map { $0 + kvOffset })
        let headRows = (batch * shape.headCount + head) * seqLen

        var q0 = k0
        while q0 < seqLen {
            let queryOffset =
                shape.block(batch: batch, head: head, width: queryWidth) + q0 * queryWidth
            let rows = BackwardRows(
                count: min(queryTileSize, seqLen - q0), stride: queryWidth,
                queries: query + queryOffset, outputGradient: outputGradient + queryOffset,
                queryGradient: gradients.query.map { $0 + queryOffset },
                logSumExp: logSumExp + headRows + q0, rowDots: rowDots + headRows + q0)
            backwardStep(
                rows, tile, mask: CausalTileMask(queryStart: q0, keyStart: k0), scratch: scratch)
            q0 += queryTileSize
        }
    }

    func backwardScratch(_ base: UnsafeMutablePointer<Float>) -> BackwardScratch {
        BackwardScratch(probabilities: base, scoreGradients: base + tileFloats)
    }

    /// The gradient contributions of one query tile and one key tile (FlashAttention-2,
    /// algorithm 2, lines 11 to 20), added into whichever of `rows.queryGradient`,
    /// `tile.keyGradient` and `tile.valueGradient` are present.
    func backwardStep<Mask: AttentionTileMask>(
        _ rows: BackwardRows, _ tile: KeyRows, mask: Mask, scratch: BackwardScratch
    ) {
        let (probabilities, scoreGradients) = (scratch.probabilities, scratch.scoreGradients)
        let (headDim, columns) = (shape.headDim, tile.count)

        // P[rows, columns] = e^(scale · Q · Kᵀ − L), the forward's probabilities exactly as
        // normalized there, zero where masked.
        BLAS.gemm(
            transposeA: false, transposeB: true, m: rows.count, n: columns, k: headDim,
            alpha: shape.scale, rows.queries, lda: rows.stride, tile.keys, ldb: tile.stride,
            probabilities, ldc: keyTileSize)
        for row in 0..<rows.count {
            let visible = mask.visibleColumns(row: row, columns: columns)
            let p = probabilities + row * keyTileSize
            p.update(repeating: 0, count: visible.lowerBound)
            _ = exponentiate(
                p + visible.lowerBound, count: visible.count, shift: rows.logSumExp[row])
            (p + visible.upperBound).update(repeating: 0, count: columns - visible.upperBound)
        }

        // dV[columns, headDim] += Pᵀ · dO
        if let dV = tile.valueGradient {
            BLAS.gemm(
                transposeA: true, transposeB: false, m: columns, n: headDim, k: rows.count,
                probabilities, lda: keyTileSize, rows.outputGradient, ldb: rows.stride, beta: 1,
                dV, ldc: tile.stride)
        }

        guard rows.queryGradient != nil || tile.keyGradient != nil else { return }

        // dP[rows, columns] = dO · Vᵀ, then dS = P ⊙ (dP − D): zero where P is.
        BLAS.gemm(
            transposeA: false, transposeB: true, m: rows.count, n: columns, k: headDim,
            rows.outputGradient, lda: rows.stride, tile.values, ldb: tile.stride, scoreGradients,
            ldc: keyTileSize)
        for row in 0..<rows.count {
            softmaxBackward(
                scoreGradients + row * keyTileSize,
                probabilities: probabilities + row * keyTileSize, count: columns,
                rowDot: rows.rowDots[row])
        }

        // dQ[rows, headDim] += scale · dS · K
        if let dQ = rows.queryGradient {
            BLAS.gemm(
                transposeA: false, transposeB: false, m: rows.count, n: headDim, k: columns,
                alpha: shape.scale, scoreGradients, lda: keyTileSize, tile.keys,
                ldb: tile.stride, beta: 1, dQ, ldc: rows.stride)
        }
        // dK[columns, headDim] += scale · dSᵀ · Q
        if let dK = tile.keyGradient {
            BLAS.gemm(
                transposeA: true, transposeB: false, m: columns, n: headDim, k: rows.count,
                alpha: shape.scale, scoreGradients, lda: keyTileSize, rows.queries,
                ldb: rows.stride, beta: 1, dK, ldc: tile.stride)
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
            let e = VectorMath.clampedExp(load16(x + column) - shift)
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

// MARK: - Tile operands

/// Which columns of a `[rows, columns]` score tile each of its rows sees: one contiguous run,
/// empty for a row that sees none of the tile's keys.
protocol AttentionTileMask {
    func visibleColumns(row: Int, columns: Int) -> Range<Int>
}

/// The causal mask: query row `queryStart + row` sees key rows up to itself, so in the tile
/// that starts at key row `keyStart` its first `queryStart + row - keyStart + 1` columns.
struct CausalTileMask: AttentionTileMask {
    let queryStart: Int
    let keyStart: Int

    func visibleColumns(row: Int, columns: Int) -> Range<Int> {
        0..<min(max(queryStart + row - keyStart + 1, 0), columns)
    }
}

/// Query rows of one head for the forward, `stride` floats apart in `queries` and `output`: a
/// tile of the token-major tensors, or rows gathered into scratch.
struct ForwardRows {
    let count: Int
    let stride: Int
    let queries: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
}

/// Query rows of one head for the backward, `stride` floats apart in `queries`,
/// `outputGradient` and `queryGradient`; one float per row in `logSumExp` and `rowDots`.
struct BackwardRows {
    let count: Int
    let stride: Int
    let queries: UnsafePointer<Float>
    let outputGradient: UnsafePointer<Float>
    let queryGradient: UnsafeMutablePointer<Float>?
    let logSumExp: UnsafePointer<Float>
    let rowDots: UnsafePointer<Float>
}

/// Key and value rows of one kvHead, `stride` floats apart, at most `keyTileSize` of them, and
/// where their gradients go in the backward (nil for none, and in the forward).
struct KeyRows {
    let count: Int
    let stride: Int
    let keys: UnsafePointer<Float>
    let values: UnsafePointer<Float>
    var keyGradient: UnsafeMutablePointer<Float>? = nil
    var valueGradient: UnsafeMutablePointer<Float>? = nil
}

/// One thread's forward scratch: a score tile and the running maximum and sum of each row.
struct ForwardScratch {
    let scores: UnsafeMutablePointer<Float>
    let rowMaximum: UnsafeMutablePointer<Float>
    let rowSum: UnsafeMutablePointer<Float>
}

/// One thread's backward scratch: the probability tile and the score-gradient tile.
struct BackwardScratch {
    let probabilities: UnsafeMutablePointer<Float>
    let scoreGradients: UnsafeMutablePointer<Float>
}
