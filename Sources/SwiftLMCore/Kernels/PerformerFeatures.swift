import Foundation

// The random features of Performer attention (FAVOR+, Choromanski et al. 2021, "Rethinking
// Attention with Performers"): the projection, the positive feature map, and the state that
// decodes token by token. Shared by training (`Ops.performerCausalAttention` in SwiftLMTraining)
// and inference (`InferenceContext`), so a model trained with Performer attention is run with
// the very features it was trained with. The features follow the reference implementation,
// google-research/performer, fast_attention/jax/fast_attention.py (`create_projection_matrix`,
// `nonnegative_softmax_kernel_feature_creator`).

/// The `[featureCount, headDim]` random projection ω_1 ... ω_m of FAVOR+: positive orthogonal
/// random features (Choromanski et al. 2021, sections 2.3 and 2.4).
///
/// Rows come in blocks of `headDim` exactly orthogonal directions (Gram–Schmidt on the rows of a
/// Gaussian matrix: the Q of its QR decomposition, uniformly distributed over rotations), and
/// each row is then rescaled by the norm of an independent Gaussian vector, a chi-distributed
/// length with `headDim` degrees of freedom. Every row on its own is then a standard Gaussian
/// vector, which keeps the estimator of the softmax kernel unbiased (lemma 1), while the
/// orthogonality within a block lowers its variance (theorem 2). This is `scaling = 0` of the
/// reference's `create_projection_matrix`. A last block of fewer than `headDim` rows keeps the
/// first rows of a full one.
///
/// The features are constants of the model, not parameters: no gradient reaches them. Training
/// may redraw them every so many steps (`redraw(seed:)`), as the paper does (section 4.2), so
/// that no single draw's errors are learnt around.
public struct RandomFeatures: Sendable {
    /// m, the number of random features (rows of `projection`).
    public let featureCount: Int
    public let headDim: Int
    /// The seed of the current draw.
    public private(set) var seed: UInt64
    /// `[featureCount, headDim]`. Never written in place: a redraw replaces it, so copies of
    /// this value (such as an operation's backward) keep the draw they were made with.
    public private(set) var projection: Tensor

    public init(featureCount: Int, headDim: Int, seed: UInt64) {
        precondition(
            featureCount > 0 && headDim > 0,
            "random features: featureCount \(featureCount) and headDim \(headDim) must be positive")
        self.featureCount = featureCount
        self.headDim = headDim
        self.seed = seed
        projection = Self.draw(featureCount: featureCount, headDim: headDim, seed: seed)
    }

    /// The features of layer `layer` at draw `draw` of a model: what training uses at that draw
    /// (`draw` = step / redraw interval) and inference uses with the draw of the model's last
    /// training step (`LlamaConfig.performerDraw`). A pure function of its arguments, so a
    /// resumed run, a recomputed checkpointed block and a loaded model see the same features.
    public static func layer(_ layer: Int, draw: Int, featureCount: Int, headDim: Int) -> Self {
        let seed = UInt64(layer) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(draw)
        return RandomFeatures(featureCount: featureCount, headDim: headDim, seed: seed)
    }

    /// Replaces the projection with a fresh draw from `seed`.
    public mutating func redraw(seed: UInt64) {
        self.seed = seed
        projection = Self.draw(featureCount: featureCount, headDim: headDim, seed: seed)
    }

    /// `-> [featureCount, headDim]`: orthonormal blocks, then chi-distributed row lengths.
    static func draw(featureCount: Int, headDim: Int, seed: UInt64) -> Tensor {
        var random = TrainingRandom(seed: seed)
        var directions: [Double] = []
        directions.reserveCapacity(featureCount * headDim + headDim * headDim)
        while directions.count < featureCount * headDim {
            directions += orthonormalRows(headDim, random: &random)
        }

        let result = Tensor(uninitialized: [featureCount, headDim])
        for row in 0..<featureCount {
            var squares = 0.0
            for _ in 0..<headDim {
                let g = Double(random.nextNormal())
                squares += g * g
            }
            let length = squares.squareRoot()
            for column in 0..<headDim {
                let index = row * headDim + column
                result.floats[index] = Float(directions[index] * length)
            }
        }
        return result
    }

    /// `-> [size, size]`: the rows of a Gaussian matrix made orthonormal by modified
    /// Gram–Schmidt, in Double.
    static func orthonormalRows(_ size: Int, random: inout TrainingRandom) -> [Double] {
        var block = (0..<(size * size)).map { _ in Double(random.nextNormal()) }
        for row in 0..<size {
            let r = row * size
            for earlier in 0..<row {
                let e = earlier * size
                var dot = 0.0
                for column in 0..<size { dot += block[r + column] * block[e + column] }
                for column in 0..<size { block[r + column] -= dot * block[e + column] }
            }
            var squares = 0.0
            for column in 0..<size { squares += block[r + column] * block[r + column] }
            // A Gaussian matrix is singular with probability zero.
            assert(squares > 0, "degenerate Gaussian block")
            let inverse = 1 / squares.squareRoot()
            for column in 0..<size { block[r + column] *= inverse }
        }
        return block
    }
}

/// The positive random feature map of FAVOR+ (Choromanski et al. 2021, lemma 1), on rows of
/// queries or keys: `φ(x)_j = exp(ω_j·x − |x|²/2 − shift) / sqrt(m)` with `x = row /
/// headDim^(1/4)`. The shifts are described at `Ops.performerCausalAttention`.
package struct PerformerFeatureMap {
    package let features: RandomFeatures

    package init(_ features: RandomFeatures) { self.features = features }

    package var featureCount: Int { features.featureCount }
    package var headDim: Int { features.headDim }
    /// headDim^(-1/4): the softmax's 1 / sqrt(headDim), split evenly between query and key.
    package var inputScale: Float { 1 / Float(headDim).squareRoot().squareRoot() }
    /// ln sqrt(m), folded into the shift so that `exp` applies the 1 / sqrt(m) for free.
    package var logRootFeatureCount: Float { logf(Float(featureCount)) / 2 }

    /// `[count, headDim]` rows `width` apart `-> [count, featureCount]`: the exponents ω_j·x.
    package func project(
        _ rows: UnsafePointer<Float>, count: Int, width: Int, into out: UnsafeMutablePointer<Float>
    ) {
        BLAS.gemm(
            transposeA: false, transposeB: true, m: count, n: featureCount, k: headDim,
            alpha: inputScale, rows, lda: width, features.projection.floats, ldb: headDim, out,
            ldc: featureCount)
    }

    /// `[headDim] -> ()`: |x|²/2 of one row.
    package func halfSquaredNorm(_ row: UnsafePointer<Float>) -> Float {
        var sum: Float = 0
        for column in 0..<headDim { sum += row[column] * row[column] }
        return sum * inputScale * inputScale / 2
    }

    /// `[count, headDim]` rows `width` apart `-> [count, featureCount]`: query features, each
    /// row shifted by its own largest exponent. That shift takes |x|²/2 with it (it is the same
    /// for every feature of the row), so a query row's features are `exp(ω·x − max ω·x) /
    /// sqrt(m)`.
    package func queryFeatures(
        _ rows: UnsafePointer<Float>, count: Int, width: Int, into out: UnsafeMutablePointer<Float>
    ) {
        project(rows, count: count, width: width, into: out)
        for row in 0..<count {
            let features = out + row * featureCount
            let shift = Self.maximum(features, count: featureCount) + logRootFeatureCount
            Self.exponentiate(features, count: featureCount, shift: shift)
        }
    }

    /// `[count, headDim]` rows `width` apart `-> [count, featureCount]`: key features, shifted by
    /// `stabilizer`, the largest exponent `ω·x − |x|²/2` of the sequence (`keyStabilizer`).
    package func keyFeatures(
        _ rows: UnsafePointer<Float>, count: Int, width: Int, stabilizer: Float,
        into out: UnsafeMutablePointer<Float>
    ) {
        project(rows, count: count, width: width, into: out)
        for row in 0..<count {
            let shift = halfSquaredNorm(rows + row * width) + stabilizer + logRootFeatureCount
            Self.exponentiate(out + row * featureCount, count: featureCount, shift: shift)
        }
    }

    /// `[count, headDim]` rows `width` apart `-> ()`: the largest exponent `ω_j·x − |x|²/2` over
    /// every row and feature, projected `chunkSize` rows at a time into `scratch`
    /// (`[chunkSize, featureCount]`).
    package func keyStabilizer(
        _ rows: UnsafePointer<Float>, count: Int, width: Int, chunkSize: Int,
        scratch: UnsafeMutablePointer<Float>
    ) -> Float {
        var stabilizer = -Float.infinity
        for start in stride(from: 0, to: count, by: chunkSize) {
            let chunkRows = min(chunkSize, count - start)
            project(rows + start * width, count: chunkRows, width: width, into: scratch)
            for row in 0..<chunkRows {
                let largest = Self.maximum(scratch + row * featureCount, count: featureCount)
                let exponent = largest - halfSquaredNorm(rows + (start + row) * width)
                stabilizer = max(stabilizer, exponent)
            }
        }
        return stabilizer
    }

    /// `[count, featureCount]` feature gradients dφ (overwritten) and features φ, `[count,
    /// headDim]` rows `width` apart `-> [count, headDim]` row gradients, added at `width`.
    ///
    /// With the shift held constant (the output does not depend on it), ∂φ_j/∂x = φ_j (ω_j − x),
    /// so dx = Ωᵀ(dφ ⊙ φ) − x · Σ_j dφ_j φ_j, and d(row) = headDim^(-1/4) · dx.
    package func backward(
        featureGradients: UnsafeMutablePointer<Float>, features: UnsafePointer<Float>,
        rows: UnsafePointer<Float>, count: Int, width: Int,
        rowGradients: UnsafeMutablePointer<Float>
    ) {
        // d(row) −= s² · Σ_j dφ_j φ_j · row, with x = s · row; dφ becomes dφ ⊙ φ on the way.
        let squaredScale = inputScale * inputScale
        for row in 0..<count {
            let gradient = featureGradients + row * featureCount
            let feature = features + row * featureCount
            var sum: Float = 0
            for j in 0..<featureCount {
                gradient[j] *= feature[j]
                sum += gradient[j]
            }
            let factor = squaredScale * sum
            for column in 0..<headDim {
                rowGradients[row * width + column] -= factor * rows[row * width + column]
            }
        }

        // d(row)[count, headDim] += s · (dφ ⊙ φ) · Ω
        BLAS.gemm(
            transposeA: false, transposeB: false, m: count, n: headDim, k: featureCount,
            alpha: inputScale, featureGradients, lda: featureCount,
            self.features.projection.floats, ldb: headDim, beta: 1, rowGradients, ldc: width)
    }

    /// The largest of `count` (at least one) floats.
    package static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var largest = x[0]
        for index in 1..<count where x[index] > largest { largest = x[index] }
        return largest
    }

    /// `[count] -> [count]` in place: `x = e^(x − shift)` for a `shift` at least as large as
    /// every `x`. The clamped exponential of the tiled attention: an exponent below -87 gives
    /// e^-87 ≈ 1.6e-38 rather than less, nothing next to the largest feature's 1 / sqrt(m).
    package static func exponentiate(_ x: UnsafeMutablePointer<Float>, count: Int, shift: Float) {
        var index = 0
        while index + 16 <= count {
            let raw = UnsafeMutableRawPointer(x + index)
            let lanes = raw.loadUnaligned(as: SIMD16<Float>.self)
            raw.storeBytes(of: VectorMath.clampedExp(lanes - shift), as: SIMD16<Float>.self)
            index += 16
        }
        while index < count {
            x[index] = expf(x[index] - shift)
            index += 1
        }
    }
}

/// The state of Performer attention while decoding one sequence token by token: per kv head,
/// `S = Σ_s φ(k_s) v_sᵀ` (`[featureCount, headDim]`) and `z = Σ_s φ(k_s)` (`[featureCount]`), a
/// fixed size however long the sequence, in place of a KV cache.
///
/// `attend(query:)` after `append`ing tokens `0...t` gives row t of
/// `Ops.performerCausalAttention` over those tokens, up to float rounding. The operation
/// shifts key exponents by the largest of the whole sequence, which decoding cannot know in
/// advance; here the shift is the largest so far, and when a new key raises it, S and z are
/// scaled down by the difference (the online rescaling of Milakov and Gimelshein 2018). The
/// result does not depend on the shift, as at the operation.
public final class PerformerState: @unchecked Sendable {
    public let headCount: Int
    public let kvHeadCount: Int
    public let features: RandomFeatures
    /// Tokens appended so far.
    public private(set) var tokenCount = 0

    /// `[kvHeadCount, featureCount, headDim + 1]`: `[S | z]` per kv head, scaled by
    /// e^(−keyStabilizer).
    private let state: Tensor
    /// `[kvHeadCount]`: the largest key exponent `ω·x − |x|²/2` so far.
    private var keyStabilizers: [Float]
    private let featureMap: PerformerFeatureMap
    /// `[featureCount + headDim + 1]` scratch: one row's features, then one head's
    /// `[numerator | normalizer]`.
    private let scratch: Tensor

    public var headDim: Int { features.headDim }
    private var augmentedWidth: Int { headDim + 1 }

    public init(headCount: Int, kvHeadCount: Int, features: RandomFeatures) {
        precondition(
            kvHeadCount > 0 && headCount % kvHeadCount == 0,
            "performer state: headCount \(headCount) is not a multiple of kvHeadCount "
                + "\(kvHeadCount)")
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.features = features
        featureMap = PerformerFeatureMap(features)
        state = Tensor(zeros: [kvHeadCount, features.featureCount, features.headDim + 1])
        keyStabilizers = Array(repeating: -.infinity, count: kvHeadCount)
        scratch = Tensor(uninitialized: [features.featureCount + features.headDim + 1])
    }

    /// `[kvHeadCount * headDim]` key and value of the next token -> (): adds them to S and z.
    public func append(key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let (featureCount, width) = (features.featureCount, augmentedWidth)
        let phi = scratch.floats
        for kvHead in 0..<kvHeadCount {
            let row = key + kvHead * headDim
            featureMap.project(row, count: 1, width: headDim, into: phi)
            let exponent =
                PerformerFeatureMap.maximum(phi, count: featureCount)
                - featureMap.halfSquaredNorm(row)

            // A larger shift scales what is summed so far by e^(old − new); the first token's
            // factor is e^-infinity = 0, on a state that is zero anyway.
            let sums = state.floats + kvHead * featureCount * width
            let stabilizer = max(keyStabilizers[kvHead], exponent)
            if stabilizer > keyStabilizers[kvHead] {
                let factor = expf(keyStabilizers[kvHead] - stabilizer)
                for index in 0..<(featureCount * width) { sums[index] *= factor }
                keyStabilizers[kvHead] = stabilizer
            }

            featureMap.keyFeatures(
                row, count: 1, width: headDim, stabilizer: stabilizer, into: phi)
            let values = value + kvHead * headDim
            for j in 0..<featureCount {
                let target = sums + j * width
                for column in 0..<headDim { target[column] += phi[j] * values[column] }
                target[headDim] += phi[j]
            }
        }
        tokenCount += 1
    }

    /// `[headCount * headDim] -> [headCount * headDim]`: the attention output of a query at the
    /// latest appended token, `φ(q)ᵀ S / φ(q)ᵀ z` per head.
    public func attend(query: UnsafePointer<Float>) -> [Float] {
        var output = [Float](repeating: 0, count: headCount * headDim)
        output.withUnsafeMutableBufferPointer { attend(query: query, into: $0.baseAddress!) }
        return output
    }

    /// `attend(query:)` into `output`, allocating nothing: what inference's decode loop calls.
    public func attend(query: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>) {
        precondition(tokenCount > 0, "performer state: attend before any token was appended")
        let (featureCount, width) = (features.featureCount, augmentedWidth)
        let groupSize = headCount / kvHeadCount
        let phi = scratch.floats
        let numerator = scratch.floats + featureCount
        for head in 0..<headCount {
            featureMap.queryFeatures(
                query + head * headDim, count: 1, width: headDim, into: phi)
            BLAS.gemm(
                transposeA: false, transposeB: false, m: 1, n: width, k: featureCount, phi,
                lda: featureCount, state.floats + head / groupSize * featureCount * width,
                ldb: width, numerator, ldc: width)
            let inverse = 1 / max(numerator[headDim], .leastNormalMagnitude)
            for column in 0..<headDim {
                output[head * headDim + column] = numerator[column] * inverse
            }
        }
    }

    /// Forgets every token, keeping the features and the memory.
    public func reset() {
        state.floats.update(repeating: 0, count: state.elementCount)
        for kvHead in 0..<kvHeadCount { keyStabilizers[kvHead] = -.infinity }
        tokenCount = 0
    }
}
