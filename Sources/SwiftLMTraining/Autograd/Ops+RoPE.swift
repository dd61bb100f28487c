import Foundation
import SwiftLMCore

extension Ops {
    /// `[batchSize * seqLen, headCount * headDim] -> [batchSize * seqLen, headCount * headDim]`:
    /// rotary position embedding (Su et al. 2021, "RoFormer", section 3.4) of every head.
    ///
    /// Token `t` of each sequence sits at position `t % seqLen`. Pair `i` of each head turns by
    /// the angle `position · base^(-2i / ropeDims)`; the `headDim - ropeDims` trailing elements
    /// of a head pass through unchanged. The forward equals `FloatKernels.rope` applied to each
    /// head, bit for bit: the angles are built by the same repeated multiplication and the
    /// rotation takes the same fused multiply-adds, so a model trained here sees the positions
    /// its inference will. With a `scaling`, the angles and the factor on cos and sin come from
    /// the `RoPETable` that inference uses, and the forward equals
    /// `FloatKernels.rope(_:position:table:interleaved:)` bit for bit.
    ///
    /// The rotation is orthogonal (times YaRN's magnitude, a scalar), so the backward is the
    /// rotation by the negative angle with the same magnitude: the transpose.
    ///
    /// - Parameters:
    ///   - ropeDims: leading elements of each head that are rotated (`rope.dimension_count`);
    ///     even, at most `headDim`.
    ///   - interleaved: true to rotate adjacent pairs `(2i, 2i + 1)`, the layout of Llama GGUF
    ///     files; false to rotate `(i, i + ropeDims / 2)`, Hugging Face's `rotate_half`.
    ///   - scaling: linear, NTK-aware or YaRN scaling of the angles; `.none` by default.
    ///   - positionOffset: the position of each sequence's first token (prefix tuning puts
    ///     the learned prefix at positions `0..<P` and the tokens after it).
    public static func rope(
        _ x: Variable, seqLen: Int, headCount: Int, headDim: Int, ropeDims: Int, base: Float,
        interleaved: Bool, scaling: RoPEScaling = .none, positionOffset: Int = 0
    ) -> Variable {
        precondition(x.value.rank == 2, "rope: 2-D input, got \(x.shape)")
        precondition(
            x.shape[1] == headCount * headDim,
            "rope: \(x.shape[1]) features, expected headCount \(headCount) × headDim \(headDim)")
        precondition(
            seqLen > 0 && x.shape[0] % seqLen == 0,
            "rope: \(x.shape[0]) tokens is not a whole number of sequences of \(seqLen)")
        precondition(
            ropeDims > 0 && ropeDims % 2 == 0 && ropeDims <= headDim,
            "rope: ropeDims \(ropeDims) must be even and in 2...\(headDim)")
        precondition(positionOffset >= 0, "rope: negative position offset")
        let layout = RotaryLayout(
            seqLen: seqLen, headCount: headCount, headDim: headDim, ropeDims: ropeDims,
            interleaved: interleaved, positionOffset: positionOffset)
        let positions = positionOffset + seqLen
        let tables =
            scaling.kind == .none
            ? RotaryTables(seqLen: positions, ropeDims: ropeDims, base: base)
            : RotaryTables(
                seqLen: positions, table: RoPETable(dims: ropeDims, base: base, scaling: scaling))

        let result = Tensor(uninitialized: x.shape)
        layout.rotate(
            x.value.floats, into: result.floats, tokens: x.shape[0], tables: tables,
            direction: 1, accumulate: false)

        return Variable(result, inputs: [x]) { output in
            guard x.requiresGradient else { return }
            layout.rotate(
                output.gradient!.floats, into: x.gradientStorage(), tokens: x.shape[0],
                tables: tables, direction: -1, accumulate: true)
        }
    }
}

/// cos and sin of every rotated pair at every position, `[seqLen, ropeDims / 2]` each, times
/// the scaling's magnitude.
private struct RotaryTables {
    let cos: Tensor
    let sin: Tensor

    /// Scaled angles, each as `FloatKernels.rope(_:position:table:interleaved:)` builds it.
    init(seqLen: Int, table: RoPETable) {
        let half = table.dims / 2
        cos = Tensor(zeros: [seqLen, half])
        sin = Tensor(zeros: [seqLen, half])
        for position in 0..<seqLen {
            var theta = Float(position)
            for pair in 0..<half {
                let rotation = table.rotation(theta: theta, pair: pair)
                cos.floats[position * half + pair] = rotation.cos
                sin.floats[position * half + pair] = rotation.sin
                theta *= table.thetaScale
            }
        }
    }

    init(seqLen: Int, ropeDims: Int, base: Float) {
        let half = ropeDims / 2
        cos = Tensor(zeros: [seqLen, half])
        sin = Tensor(zeros: [seqLen, half])
        // One multiplication per pair, as `FloatKernels.rope` (after ggml's
        // `ggml_rope_cache_init`), rather than a power per pair: the angles must match
        // inference's to the last bit.
        let thetaScale = powf(base, -2 / Float(ropeDims))
        for position in 0..<seqLen {
            var theta = Float(position)
            for pair in 0..<half {
                cos.floats[position * half + pair] = cosf(theta)
                sin.floats[position * half + pair] = sinf(theta)
                theta *= thetaScale
            }
        }
    }
}

/// Where the rotated pairs of a `[tokens, headCount * headDim]` tensor lie.
private struct RotaryLayout {
    let seqLen: Int
    let headCount: Int
    let headDim: Int
    let ropeDims: Int
    let interleaved: Bool
    let positionOffset: Int

    /// `[tokens, headCount * headDim] -> [tokens, headCount * headDim]`: turns every pair by
    /// `direction` (1 or -1) times its angle, writing or adding into `target`.
    ///
    /// Negating the sine is exact, so the backward (direction -1) is the same loop.
    func rotate(
        _ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, tokens: Int,
        tables: RotaryTables, direction: Float, accumulate: Bool
    ) {
        let half = ropeDims / 2
        let width = headCount * headDim
        let cosTable = tables.cos.floats
        let sinTable = tables.sin.floats

        let rotateTokens: (Range<Int>) -> Void = { range in
            for token in range {
                let angles = (token % seqLen + positionOffset) * half
                for head in 0..<headCount {
                    let offset = token * width + head * headDim
                    let x = source + offset
                    let y = target + offset

                    for pair in 0..<half {
                        let cosTheta = cosTable[angles + pair]
                        let sinTheta = direction * sinTable[angles + pair]
                        let (i, j) = interleaved ? (2 * pair, 2 * pair + 1) : (pair, pair + half)
                        // The same fused forms as `FloatKernels.rope`.
                        let y0 = (-(x[j] * sinTheta)).addingProduct(x[i], cosTheta)
                        let y1 = (x[j] * cosTheta).addingProduct(x[i], sinTheta)
                        y[i] = accumulate ? y[i] + y0 : y0
                        y[j] = accumulate ? y[j] + y1 : y1
                    }

                    for index in ropeDims..<headDim {
                        y[index] = accumulate ? y[index] + x[index] : x[index]
                    }
                }
            }
        }

        // A handoff to the workers costs more than rotating a few thousand elements.
        let parallelMinimum = 1 << 15
        if tokens * width < parallelMinimum {
            rotateTokens(0..<tokens)
        } else {
            Ops.pool.parallelFor(tokens, rotateTokens)
        }
    }
}
