import Foundation
import SwiftLMCore

// Performer attention: FAVOR+ (Choromanski et al. 2021, "Rethinking Attention with Performers"),
// causal form. Softmax attention's kernel exp(q·k / sqrt(headDim)) is replaced by a dot product
// of positive random features, φ(q)·φ(k), so a query's output needs only running sums over the
// keys before it, and the cost grows linearly with seqLen. The random features follow the
// reference implementation, google-research/performer, fast_attention/jax/fast_attention.py
// (`create_projection_matrix`, `nonnegative_softmax_kernel_feature_creator`).

extension Ops {
    /// `[batchSize * seqLen, headCount * headDim]` queries and
    /// `[batchSize * seqLen, kvHeadCount * headDim]` keys and values
    /// `-> [batchSize * seqLen, headCount * headDim]`: causal Performer attention (FAVOR+,
    /// Choromanski et al. 2021), an estimate of `causalAttention` in time and memory linear in
    /// `seqLen`.
    ///
    /// Each query row attends with positive random features in place of softmax weights:
    /// `out_t = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t` with `S_t = Σ_{s≤t} φ(k_s) v_sᵀ` and
    /// `z_t = Σ_{s≤t} φ(k_s)` (section 2.2 and the prefix sums of section 2.5), where
    /// `φ(x) = exp(ω·x − |x|²/2) / sqrt(m)` for the rows ω of `features.projection`, taken of
    /// `q / headDim^(1/4)` and `k / headDim^(1/4)` so that E[φ(q)·φ(k)] = exp(q·k / sqrt(headDim)),
    /// softmax attention's kernel. The grouping of query heads onto key and value heads is that
    /// of `causalAttention`.
    ///
    /// The result is an estimate, never exact softmax attention. Its error shrinks about as
    /// 1 / sqrt(featureCount) and grows fast with the norms of queries and keys: the kernel's
    /// variance carries a factor exp(|q + k|² / sqrt(headDim)) (lemma 2). With headDim 64 and
    /// 512 tokens, the relative error of the whole output was 47%, 40%, 32% at 64, 128, 256
    /// features for entries of standard deviation 0.5, and above 100% even at 512 features for
    /// unit entries (scores of standard deviation 1). Performer layers are meant to be trained
    /// with the feature map in place, not swapped into a softmax-trained model.
    ///
    /// The sequence is cut into chunks of `chunkSize` rows (the chunked form of linear
    /// attention; Katharopoulos et al. 2020 give the row-by-row recurrence). Within a chunk the
    /// kernel weights `φ(Q)·φ(K)ᵀ` are a small masked matrix product; the keys and values of
    /// earlier chunks reach it through one running `[featureCount, headDim + 1]` state, carried
    /// from chunk to chunk and never stored per row. The forward keeps only each row's
    /// normalizer and each (batch, kvHead)'s key stabilizer, `[batchSize, headCount, seqLen]`
    /// and `[batchSize, kvHeadCount]` floats; the backward recomputes the features chunk by
    /// chunk. It makes two sweeps: forward in time for the queries' gradients (which need the
    /// state of earlier chunks), backward in time for the keys' and values' (which need the sum
    /// of later chunks' `φ(q_t) g_tᵀ`).
    ///
    /// Numerical stability: the exponents are shifted before `exp`, by each query row's largest
    /// exponent and by the largest key exponent of the whole (batch, kvHead) sequence, the
    /// reference implementation's per-row query and global key stabilizers. A shift multiplies
    /// a query's features, or all keys' features, by one constant, which cancels between the
    /// numerator and the normalizer, so the result does not depend on the shifts and no gradient
    /// flows through them. Unlike the reference, the shifts are the maxima of the whole exponent
    /// `ω·x − |x|²/2` rather than of `ω·x`, so the largest feature of every query row and of
    /// every sequence's keys is exactly `1 / sqrt(m)`, and the reference's `+ 1e-6` on every
    /// feature is left out (it biases the estimate). The price of one shift for all keys: a key
    /// whose exponents all lie more than about 87 below the sequence's largest (keys of very
    /// different norms: the exponent carries −|k|² / (2 sqrt(headDim))) has features of
    /// e^-87 ≈ 1.6e-38 and counts for nothing, and a row whose every kernel weight
    /// underflows gets a zero output instead of NaN (its normalizer is held at
    /// `Float.leastNormalMagnitude`). `PerformerState`, which cannot know later keys, shifts by
    /// the largest key so far instead.
    ///
    /// Work is split by (batch, kvHead): the query heads of a group share its key features and
    /// state. With batch 1 and two kv heads, two threads do all the work, however many the pool
    /// has.
    ///
    /// - Parameters:
    ///   - features: the random projection, `features.headDim == headDim`; shared by every head,
    ///     as the reference shares one per layer. A constant: no gradient reaches it.
    ///   - chunkSize: rows per chunk; clipped to `seqLen`. A chunk's own weights cost
    ///     `chunkSize · featureCount` per row and the carried state `featureCount · headDim`
    ///     whatever the chunk, so smaller chunks do less arithmetic until the products get too
    ///     small for BLAS: at 2048 tokens, 256 features and headDim 64, one thread of a shared
    ///     2-core x86-64 with OpenBLAS took 117, 117, 129 and 160 ms of CPU time for the forward
    ///     and backward with chunks of 16, 32, 64 and 128.
    public static func performerCausalAttention(
        query: Variable, key: Variable, value: Variable, batchSize: Int, seqLen: Int,
        headCount: Int, kvHeadCount: Int, headDim: Int, features: RandomFeatures,
        chunkSize: Int = 32
    ) -> Variable {
        let shape = AttentionShape(
            batchSize: batchSize, seqLen: seqLen, headCount: headCount,
            kvHeadCount: kvHeadCount, headDim: headDim)
        shape.validate(query: query, key: key, value: value)
        precondition(
            features.headDim == headDim,
            "performer attention: features of headDim \(features.headDim), expected \(headDim)")
        precondition(chunkSize > 0, "performer attention: chunkSize \(chunkSize) must be positive")
        let chunking = PerformerChunking(
            shape: shape, featureMap: PerformerFeatureMap(features),
            chunkSize: min(chunkSize, seqLen))

        let normalizers = Tensor(uninitialized: [batchSize, headCount, seqLen])
        let keyStabilizers = Tensor(uninitialized: [batchSize, kvHeadCount])
        let result = Tensor(uninitialized: [shape.tokens, shape.queryWidth])
        chunking.forward(
            query: query.value.floats, key: key.value.floats, value: value.value.floats,
            output: result.floats, normalizers: normalizers.floats,
            keyStabilizers: keyStabilizers.floats)

        return Variable(result, inputs: [query, key, value]) { output in
            // Allocated here: `gradientStorage` is not safe to call from the pool's threads.
            let gradients = AttentionGradients(
                query: query.requiresGradient ? query.gradientStorage() : nil,
                key: key.requiresGradient ? key.gradientStorage() : nil,
                value: value.requiresGradient ? value.gradientStorage() : nil)
            chunking.backward(
                outputGradient: output.gradient!.floats, output: output.value.floats,
                query: query.value.floats, key: key.value.floats, value: value.value.floats,
                normalizers: normalizers.floats, keyStabilizers: keyStabilizers.floats,
                gradients: gradients)
        }
    }
}

/// The chunk loops of `Ops.performerCausalAttention` for one call.
///
/// A chunk is rows `c0..<c0 + rows` of one (batch, head) block. Values carry an appended
/// column of ones (`augmentedWidth = headDim + 1` columns), so that one product gives both a
/// row's numerator `φ(q)ᵀ S` and its normalizer `φ(q)ᵀ z`: the state is `[S | z]`,
/// `[featureCount, augmentedWidth]`. The key features and the state depend only on the key and
/// value head, so a (batch, kvHead) group computes them once for all of its query heads.
struct PerformerChunking {
    let shape: AttentionShape
    let featureMap: PerformerFeatureMap
    let chunkSize: Int

    var featureCount: Int { featureMap.featureCount }
    var augmentedWidth: Int { shape.headDim + 1 }

    /// One thread's buffers, carved from one scratch row.
    struct Buffers {
        /// `[chunkSize, featureCount]`: φ(K) of the chunk, φ(Q) of one head's chunk, and the
        /// gradients of either.
        let keyFeatures, queryFeatures, featureGradients: UnsafeMutablePointer<Float>
        /// `[chunkSize, augmentedWidth]`: the chunk's values with their column of ones, one
        /// head's numerators (forward) or their gradients (backward), and the values' gradients.
        let values, numerators, valueGradients: UnsafeMutablePointer<Float>
        /// `[chunkSize, chunkSize]`: the masked kernel weights φ(Q)·φ(K)ᵀ and their gradients.
        let weights, weightGradients: UnsafeMutablePointer<Float>
        /// `[featureCount, augmentedWidth]`: the running state `[S | z]` of earlier chunks, or
        /// in the backward's reverse sweep the sum `Σ φ(q_t) g_tᵀ` of later ones.
        let state: UnsafeMutablePointer<Float>

        static func floats(_ chunking: PerformerChunking) -> Int {
            let (chunk, features, width) =
                (chunking.chunkSize, chunking.featureCount, chunking.augmentedWidth)
            return 3 * chunk * features + 3 * chunk * width + 2 * chunk * chunk + features * width
        }

        init(_ base: UnsafeMutablePointer<Float>, _ chunking: PerformerChunking) {
            let (chunk, features, width) =
                (chunking.chunkSize, chunking.featureCount, chunking.augmentedWidth)
            keyFeatures = base
            queryFeatures = keyFeatures + chunk * features
            featureGradients = queryFeatures + chunk * features
            values = featureGradients + chunk * features
            numerators = values + chunk * width
            valueGradients = numerators + chunk * width
            weights = valueGradients + chunk * width
            weightGradients = weights + chunk * chunk
            state = weightGradients + chunk * chunk
        }
    }

    /// The query heads that share kv head `kvHead`.
    func heads(of kvHead: Int) -> Range<Int> {
        (kvHead * shape.groupSize)..<((kvHead + 1) * shape.groupSize)
    }

    /// Chunk starts, first to last.
    var chunkStarts: StrideTo<Int> { stride(from: 0, to: shape.seqLen, by: chunkSize) }

    /// Runs `body(buffers, batch, kvHead)` for every (batch, kvHead) group. The groups write
    /// disjoint rows of every output and gradient, so they run in parallel, each thread with
    /// its own buffers.
    func forEachGroup(_ body: (Buffers, Int, Int) -> Void) {
        let floats = Buffers.floats(self)
        let scratch = Tensor(uninitialized: [Ops.pool.threadCount, floats])
        shape.forEach(shape.batchSize * shape.kvHeadCount) { items, thread in
            let buffers = Buffers(scratch.floats + thread * floats, self)
            for item in items {
                body(buffers, item / shape.kvHeadCount, item % shape.kvHeadCount)
            }
        }
    }

    // MARK: - Forward

    /// `[tokens, queryWidth]`, `[tokens, kvWidth]` ×2 -> `[tokens, queryWidth]` output,
    /// `[batchSize, headCount, seqLen]` normalizers `φ(q_t)ᵀ z_t` and `[batchSize, kvHeadCount]`
    /// key stabilizers.
    func forward(
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, normalizers: UnsafeMutablePointer<Float>,
        keyStabilizers: UnsafeMutablePointer<Float>
    ) {
        forEachGroup { buffers, batch, kvHead in
            let kvOffset = shape.block(batch: batch, head: kvHead, width: shape.kvWidth)
            let stabilizer = featureMap.keyStabilizer(
                key + kvOffset, count: shape.seqLen, width: shape.kvWidth, chunkSize: chunkSize,
                scratch: buffers.keyFeatures)
            keyStabilizers[batch * shape.kvHeadCount + kvHead] = stabilizer
            buffers.state.update(repeating: 0, count: featureCount * augmentedWidth)

            for c0 in chunkStarts {
                let rows = min(chunkSize, shape.seqLen - c0)
                loadChunk(
                    c0: c0, rows: rows, keys: key + kvOffset, values: value + kvOffset,
                    stabilizer: stabilizer, buffers: buffers)
                for head in heads(of: kvHead) {
                    forwardChunk(
                        batch: batch, head: head, c0: c0, rows: rows, query: query,
                        output: output, normalizers: normalizers, buffers: buffers)
                }

                // [S | z] += φ(K)ᵀ · [V | 1]
                BLAS.gemm(
                    transposeA: true, transposeB: false, m: featureCount, n: augmentedWidth,
                    k: rows, buffers.keyFeatures, lda: featureCount, buffers.values,
                    ldb: augmentedWidth, beta: 1, buffers.state, ldc: augmentedWidth)
            }
        }
    }

    /// Fills `keyFeatures` with φ(K) and `values` with `[V | 1]` for chunk `c0` of the
    /// (batch, kvHead) block at `keys` and `values`.
    private func loadChunk(
        c0: Int, rows: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        stabilizer: Float, buffers: Buffers
    ) {
        let (headDim, kvWidth) = (shape.headDim, shape.kvWidth)
        featureMap.keyFeatures(
            keys + c0 * kvWidth, count: rows, width: kvWidth, stabilizer: stabilizer,
            into: buffers.keyFeatures)
        for row in 0..<rows {
            let target = buffers.values + row * augmentedWidth
            target.update(from: values + (c0 + row) * kvWidth, count: headDim)
            target[headDim] = 1
        }
    }

    /// One head's output rows for chunk `c0`, given the chunk's key features and values and
    /// the state of the chunks before it.
    private func forwardChunk(
        batch: Int, head: Int, c0: Int, rows: Int, query: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, normalizers: UnsafeMutablePointer<Float>,
        buffers: Buffers
    ) {
        let (headDim, queryWidth, width) = (shape.headDim, shape.queryWidth, augmentedWidth)
        let queryOffset = shape.block(batch: batch, head: head, width: queryWidth) + c0 * queryWidth
        featureMap.queryFeatures(
            query + queryOffset, count: rows, width: queryWidth, into: buffers.queryFeatures)

        // [numerator | normalizer][rows, width] = φ(Q) · [S | z], the earlier chunks' share.
        BLAS.gemm(
            transposeA: false, transposeB: false, m: rows, n: width, k: featureCount,
            buffers.queryFeatures, lda: featureCount, buffers.state, ldb: width,
            buffers.numerators, ldc: width)

        // A[rows, rows] = φ(Q) · φ(K)ᵀ with s ≤ t, then [numerator | normalizer] += A · [V | 1].
        kernelWeights(rows: rows, buffers: buffers)
        BLAS.gemm(
            transposeA: false, transposeB: false, m: rows, n: width, k: rows, buffers.weights,
            lda: chunkSize, buffers.values, ldb: width, beta: 1, buffers.numerators, ldc: width)

        let headRows = (batch * shape.headCount + head) * shape.seqLen + c0
        for row in 0..<rows {
            let numerator = buffers.numerators + row * width
            let normalizer = max(numerator[headDim], .leastNormalMagnitude)
            normalizers[headRows + row] = normalizer
            let inverse = 1 / normalizer
            let target = output + queryOffset + row * queryWidth
            for column in 0..<headDim { target[column] = numerator[column] * inverse }
        }
    }

    /// `weights[rows, rows] = φ(Q) · φ(K)ᵀ` from the buffers' query and key features, zero
    /// above the diagonal (a query row sees the keys up to its own).
    private func kernelWeights(rows: Int, buffers: Buffers) {
        BLAS.gemm(
            transposeA: false, transposeB: true, m: rows, n: rows, k: featureCount,
            buffers.queryFeatures, lda: featureCount, buffers.keyFeatures, ldb: featureCount,
            buffers.weights, ldc: chunkSize)
        maskAboveDiagonal(buffers.weights, rows: rows)
    }

    /// `[rows, rows]` at row length `chunkSize`, in place: zero where column > row.
    private func maskAboveDiagonal(_ matrix: UnsafeMutablePointer<Float>, rows: Int) {
        for row in 0..<rows {
            (matrix + row * chunkSize + row + 1).update(repeating: 0, count: rows - row - 1)
        }
    }

    // MARK: - Backward

    /// Adds the gradients of the query, key and value, given the output and its gradient.
    ///
    /// With `n_t = [φ(q_t)ᵀ S_t | φ(q_t)ᵀ z_t]` the augmented numerator and `out_t = n_t[..d] /
    /// n_t[d]`, the gradient reaching `n_t` is `g_t = [dO_t / n_t[d] | −dO_t·out_t / n_t[d]]`.
    /// Then, as for any causal linear attention, `dφ(q_t) = Σ_{s≤t} (g_t·u_s) φ(k_s)`,
    /// `dφ(k_s) = Σ_{t≥s} (g_t·u_s) φ(q_t)` and `du_s = Σ_{t≥s} (φ(q_t)·φ(k_s)) g_t`, with
    /// `u_s = [v_s | 1]`; the feature map's backward takes the feature gradients on to the
    /// queries and keys.
    func backward(
        outputGradient: UnsafePointer<Float>, output: UnsafePointer<Float>,
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
        normalizers: UnsafePointer<Float>, keyStabilizers: UnsafePointer<Float>,
        gradients: AttentionGradients
    ) {
        let rowGradients = RowGradients(
            shape: shape, outputGradient: outputGradient, output: output,
            normalizers: normalizers)
        forEachGroup { buffers, batch, kvHead in
            let stabilizer = keyStabilizers[batch * shape.kvHeadCount + kvHead]
            if let dQ = gradients.query {
                queryGradientSweep(
                    batch: batch, kvHead: kvHead, stabilizer: stabilizer, query: query, key: key,
                    value: value, rowGradients: rowGradients, queryGradient: dQ, buffers: buffers)
            }
            if gradients.key != nil || gradients.value != nil {
                keyValueGradientSweep(
                    batch: batch, kvHead: kvHead, stabilizer: stabilizer, query: query, key: key,
                    value: value, rowGradients: rowGradients, gradients: gradients,
                    buffers: buffers)
            }
        }
    }

    /// The gradients `g_t` that reach each row's augmented numerator `[φ(q)ᵀS | φ(q)ᵀz]`.
    struct RowGradients {
        let shape: AttentionShape
        let outputGradient: UnsafePointer<Float>
        let output: UnsafePointer<Float>
        let normalizers: UnsafePointer<Float>

        /// `-> [rows, headDim + 1]`: `g` of rows `c0..<c0 + rows` of (batch, head).
        func load(
            batch: Int, head: Int, c0: Int, rows: Int, into target: UnsafeMutablePointer<Float>
        ) {
            let (headDim, queryWidth) = (shape.headDim, shape.queryWidth)
            let offset = shape.block(batch: batch, head: head, width: queryWidth) + c0 * queryWidth
            let headRows = (batch * shape.headCount + head) * shape.seqLen + c0
            for row in 0..<rows {
                let dO = outputGradient + offset + row * queryWidth
                let out = output + offset + row * queryWidth
                let inverse = 1 / normalizers[headRows + row]
                let g = target + row * (headDim + 1)
                var dot: Float = 0
                for column in 0..<headDim {
                    g[column] = dO[column] * inverse
                    dot += dO[column] * out[column]
                }
                g[headDim] = -dot * inverse
            }
        }
    }

    /// Adds dQ for every query head of (batch, kvHead), sweeping the chunks first to last with
    /// the state of the earlier chunks, as the forward does.
    private func queryGradientSweep(
        batch: Int, kvHead: Int, stabilizer: Float, query: UnsafePointer<Float>,
        key: UnsafePointer<Float>, value: UnsafePointer<Float>, rowGradients: RowGradients,
        queryGradient: UnsafeMutablePointer<Float>, buffers: Buffers
    ) {
        let (queryWidth, width) = (shape.queryWidth, augmentedWidth)
        let kvOffset = shape.block(batch: batch, head: kvHead, width: shape.kvWidth)
        buffers.state.update(repeating: 0, count: featureCount * width)

        for c0 in chunkStarts {
            let rows = min(chunkSize, shape.seqLen - c0)
            loadChunk(
                c0: c0, rows: rows, keys: key + kvOffset, values: value + kvOffset,
                stabilizer: stabilizer, buffers: buffers)
            for head in heads(of: kvHead) {
                let queryOffset =
                    shape.block(batch: batch, head: head, width: queryWidth) + c0 * queryWidth
                featureMap.queryFeatures(
                    query + queryOffset, count: rows, width: queryWidth,
                    into: buffers.queryFeatures)
                rowGradients.load(
                    batch: batch, head: head, c0: c0, rows: rows, into: buffers.numerators)

                // dφ(Q)[rows, features] = G · [S | z]ᵀ, the earlier chunks' share.
                BLAS.gemm(
                    transposeA: false, transposeB: true, m: rows, n: featureCount, k: width,
                    buffers.numerators, lda: width, buffers.state, ldb: width,
                    buffers.featureGradients, ldc: featureCount)

                // dA[rows, rows] = G · [V | 1]ᵀ with s ≤ t, then dφ(Q) += dA · φ(K).
                BLAS.gemm(
                    transposeA: false, transposeB: true, m: rows, n: rows, k: width,
                    buffers.numerators, lda: width, buffers.values, ldb: width,
                    buffers.weightGradients, ldc: chunkSize)
                maskAboveDiagonal(buffers.weightGradients, rows: rows)
                BLAS.gemm(
                    transposeA: false, transposeB: false, m: rows, n: featureCount, k: rows,
                    buffers.weightGradients, lda: chunkSize, buffers.keyFeatures,
                    ldb: featureCount, beta: 1, buffers.featureGradients, ldc: featureCount)

                featureMap.backward(
                    featureGradients: buffers.featureGradients, features: buffers.queryFeatures,
                    rows: query + queryOffset, count: rows, width: queryWidth,
                    rowGradients: queryGradient + queryOffset)
            }

            // [S | z] += φ(K)ᵀ · [V | 1]
            BLAS.gemm(
                transposeA: true, transposeB: false, m: featureCount, n: width, k: rows,
                buffers.keyFeatures, lda: featureCount, buffers.values, ldb: width, beta: 1,
                buffers.state, ldc: width)
        }
    }

    /// Adds dK and dV of (batch, kvHead), summed over its query heads, sweeping the chunks last
    /// to first with `R = Σ φ(q_t) g_tᵀ` over the later chunks' rows of every head of the group.
    private func keyValueGradientSweep(
        batch: Int, kvHead: Int, stabilizer: Float, query: UnsafePointer<Float>,
        key: UnsafePointer<Float>, value: UnsafePointer<Float>, rowGradients: RowGradients,
        gradients: AttentionGradients, buffers: Buffers
    ) {
        let (headDim, queryWidth, kvWidth, width) =
            (shape.headDim, shape.queryWidth, shape.kvWidth, augmentedWidth)
        let kvOffset = shape.block(batch: batch, head: kvHead, width: kvWidth)
        // dφ(K) of the chunk accumulates in `featureGradients`; G of one head sits in
        // `numerators`.
        let keyFeatureGradients = buffers.featureGradients
        buffers.state.update(repeating: 0, count: featureCount * width)

        for c0 in chunkStarts.reversed() {
            let rows = min(chunkSize, shape.seqLen - c0)
            loadChunk(
                c0: c0, rows: rows, keys: key + kvOffset, values: value + kvOffset,
                stabilizer: stabilizer, buffers: buffers)

            // The later chunks' share: dφ(K)[rows, features] = [V | 1] · Rᵀ and
            // d[V | 1][rows, width] = φ(K) · R.
            BLAS.gemm(
                transposeA: false, transposeB: true, m: rows, n: featureCount, k: width,
                buffers.values, lda: width, buffers.state, ldb: width, keyFeatureGradients,
                ldc: featureCount)
            BLAS.gemm(
                transposeA: false, transposeB: false, m: rows, n: width, k: featureCount,
                buffers.keyFeatures, lda: featureCount, buffers.state, ldb: width,
                buffers.valueGradients, ldc: width)

            for head in heads(of: kvHead) {
                let queryOffset =
                    shape.block(batch: batch, head: head, width: queryWidth) + c0 * queryWidth
                featureMap.queryFeatures(
                    query + queryOffset, count: rows, width: queryWidth,
                    into: buffers.queryFeatures)
                rowGradients.load(
                    batch: batch, head: head, c0: c0, rows: rows, into: buffers.numerators)

                // The chunk's own share: dφ(K) += dAᵀ · φ(Q) and d[V | 1] += Aᵀ · G, with
                // A = φ(Q)·φ(K)ᵀ and dA = G · [V | 1]ᵀ, both masked to s ≤ t.
                kernelWeights(rows: rows, buffers: buffers)
                BLAS.gemm(
                    transposeA: false, transposeB: true, m: rows, n: rows, k: width,
                    buffers.numerators, lda: width, buffers.values, ldb: width,
                    buffers.weightGradients, ldc: chunkSize)
                maskAboveDiagonal(buffers.weightGradients, rows: rows)
                BLAS.gemm(
                    transposeA: true, transposeB: false, m: rows, n: featureCount, k: rows,
                    buffers.weightGradients, lda: chunkSize, buffers.queryFeatures,
                    ldb: featureCount, beta: 1, keyFeatureGradients, ldc: featureCount)
                BLAS.gemm(
                    transposeA: true, transposeB: false, m: rows, n: width, k: rows,
                    buffers.weights, lda: chunkSize, buffers.numerators, ldb: width, beta: 1,
                    buffers.valueGradients, ldc: width)

                // R[features, width] += φ(Q)ᵀ · G, for the chunks before this one.
                BLAS.gemm(
                    transposeA: true, transposeB: false, m: featureCount, n: width, k: rows,
                    buffers.queryFeatures, lda: featureCount, buffers.numerators, ldb: width,
                    beta: 1, buffers.state, ldc: width)
            }

            // dV takes d[V | 1] without its column of ones.
            if let dV = gradients.value {
                for row in 0..<rows {
                    let target = dV + kvOffset + (c0 + row) * kvWidth
                    let source = buffers.valueGradients + row * width
                    for column in 0..<headDim { target[column] += source[column] }
                }
            }
            if let dK = gradients.key {
                featureMap.backward(
                    featureGradients: keyFeatureGradients, features: buffers.keyFeatures,
                    rows: key + kvOffset + c0 * kvWidth, count: rows, width: kvWidth,
                    rowGradients: dK + kvOffset + c0 * kvWidth)
            }
        }
    }
}
