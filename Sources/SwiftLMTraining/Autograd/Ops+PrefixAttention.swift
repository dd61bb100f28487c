import Foundation
import SwiftLMCore

extension Ops {
    /// Causal grouped-query attention (as `causalAttention`) in which every query also sees
    /// `prefixLength` learned key and value positions before its sequence, prefix tuning's
    /// (Li and Liang 2021) attention; each head's prefix carries a gate.
    ///
    /// Shapes: queries `[batchSize * seqLen, headCount * headDim]`, keys and values
    /// `[batchSize * seqLen, kvDim]`, prefix keys and values `[prefixLength, kvDim]` (the same
    /// for every sequence), gates `[headCount]` -> `[batchSize * seqLen, headCount * headDim]`.
    ///
    /// The gate `g` of a head multiplies the prefix's unnormalised attention weights:
    /// `w_p = g · exp(s_p)` beside `w_j = exp(s_j)` for the sequence's own tokens, then one
    /// softmax over both. At `g = 1` this is prefix tuning as Hugging Face PEFT computes it; at
    /// `g = 0` the prefix has no effect at all, so a fresh prefix with zero gates leaves every
    /// logit of the model unchanged (LLaMA-Adapter's zero-initialised gating, Zhang et al.
    /// 2023, applied to the joint softmax). The gate's gradient is finite at zero,
    /// `dL/dg = Σ_p exp(s_p)/Z · (dO·v_p − dO·o)`, so gates open as training needs them, and
    /// the prefix keys and values start learning once they do.
    ///
    /// A negative gate would put negative weights in the softmax's sum, whose total could
    /// then approach zero, so gates below zero count as zero (a closed prefix); their gradient
    /// passes through unchanged, which lets a gate pushed below zero open again.
    ///
    /// This is the plain form: it keeps the `[batchSize, headCount, seqLen, prefix + seqLen]`
    /// probabilities for the backward. Prefix tuning's sequences are short chat turns, where
    /// that memory is small; the tiled kernel has no prefix.
    public static func prefixCausalAttention(
        query: Variable, key: Variable, value: Variable, prefixKeys: Variable,
        prefixValues: Variable, gates: Variable, batchSize: Int, seqLen: Int, headCount: Int,
        kvHeadCount: Int, headDim: Int
    ) -> Variable {
        let shape = AttentionShape(
            batchSize: batchSize, seqLen: seqLen, headCount: headCount,
            kvHeadCount: kvHeadCount, headDim: headDim)
        shape.validate(query: query, key: key, value: value)
        let prefixLength = prefixKeys.shape[0]
        precondition(
            prefixKeys.shape == [prefixLength, shape.kvWidth]
                && prefixValues.shape == prefixKeys.shape && gates.shape == [headCount],
            "prefix attention: prefix \(prefixKeys.shape), \(prefixValues.shape), gates "
                + "\(gates.shape)")
        let layout = PrefixAttentionLayout(shape: shape, prefixLength: prefixLength)

        let probabilities = Tensor(uninitialized: [layout.probabilityCount])
        let rawPrefix = Tensor(uninitialized: [layout.rawPrefixCount])
        let result = Tensor(uninitialized: [shape.tokens, shape.queryWidth])
        let operands = PrefixAttentionOperands(
            query: query.value.floats, key: key.value.floats, value: value.value.floats,
            prefixKeys: prefixKeys.value.floats, prefixValues: prefixValues.value.floats,
            gates: gates.value.floats)
        shape.forEach(batchSize * headCount) { items, _ in
            for item in items {
                layout.forward(
                    batch: item / headCount, head: item % headCount, operands,
                    probabilities: probabilities.floats, rawPrefix: rawPrefix.floats,
                    output: result.floats)
            }
        }

        let inputs = [query, key, value, prefixKeys, prefixValues, gates]
        return Variable(result, inputs: inputs) { output in
            layout.backward(
                upstream: output.gradient!.floats, operands, probabilities: probabilities.floats,
                rawPrefix: rawPrefix.floats, inputs: inputs)
        }
    }
}

/// The read-only inputs of a prefix attention call.
private struct PrefixAttentionOperands {
    let query, key, value, prefixKeys, prefixValues, gates: UnsafePointer<Float>
}

/// Where `prefixCausalAttention` keeps what it computes: per (batch, head, query) a row of
/// `prefixLength + seqLen` probabilities (prefix first), and the prefix's weights before the
/// gate, `exp(s_p) / Z`, which the gate's gradient needs.
private struct PrefixAttentionLayout {
    typealias Pointer = UnsafePointer<Float>
    let shape: AttentionShape
    let prefixLength: Int

    var rowLength: Int { prefixLength + shape.seqLen }
    var probabilityCount: Int { shape.batchSize * shape.headCount * shape.seqLen * rowLength }
    var rawPrefixCount: Int {
        max(1, shape.batchSize * shape.headCount * shape.seqLen * prefixLength)
    }

    func row(batch: Int, head: Int, token: Int) -> Int {
        ((batch * shape.headCount + head) * shape.seqLen + token)
    }

    func forward(
        batch: Int, head: Int, _ x: PrefixAttentionOperands,
        probabilities: UnsafeMutablePointer<Float>, rawPrefix: UnsafeMutablePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        let headDim = shape.headDim
        let kvOffset = (head / shape.groupSize) * headDim
        let gate = max(0, x.gates[head])

        for token in 0..<shape.seqLen {
            let index = row(batch: batch, head: head, token: token)
            let p = probabilities + index * rowLength
            let raw = rawPrefix + index * prefixLength
            let q = x.query + (batch * shape.seqLen + token) * shape.queryWidth + head * headDim
            let visible = prefixLength + token + 1

            // Scores, prefix first, then the sequence's tokens up to this one.
            var maximum = -Float.infinity
            for j in 0..<visible {
                let k = keyRow(j, batch: batch, x) + kvOffset
                p[j] = FloatKernels.dotF32(q, k, count: headDim) * shape.scale
                maximum = max(maximum, p[j])
            }
            var sum: Float = 0
            for j in 0..<visible {
                let weight = exp(p[j] - maximum)
                p[j] = weight
                sum += j < prefixLength ? gate * weight : weight
            }
            for j in 0..<visible {
                let normalised = p[j] / sum
                if j < prefixLength {
                    raw[j] = normalised
                    p[j] = gate * normalised
                } else {
                    p[j] = normalised
                }
            }
            for j in visible..<rowLength { p[j] = 0 }

            let o = output + (batch * shape.seqLen + token) * shape.queryWidth + head * headDim
            for d in 0..<headDim { o[d] = 0 }
            for j in 0..<visible {
                addScaled(p[j], valueRow(j, batch: batch, x) + kvOffset, into: o, headDim)
            }
        }
    }

    /// Gradients of all six inputs. Work items are (batch, KV head) pairs, so no two write the
    /// same key or value rows of the sequence; the prefix and the gates, which every sequence
    /// shares, are summed per item and added up afterwards.
    func backward(
        upstream: UnsafePointer<Float>, _ x: PrefixAttentionOperands,
        probabilities: UnsafePointer<Float>, rawPrefix: UnsafePointer<Float>,
        inputs: [Variable]
    ) {
        let headDim = shape.headDim
        let itemCount = shape.batchSize * shape.kvHeadCount
        // Allocated here: `gradientStorage` is not safe to call from the pool's threads.
        let targets = inputs.map { $0.requiresGradient ? $0.gradientStorage() : nil }
        let prefixSize = prefixLength * headDim
        let partial = Tensor(zeros: [itemCount, 2 * prefixSize + shape.groupSize])
        let partialWidth = 2 * prefixSize + shape.groupSize
        let dScores = Tensor(zeros: [Ops.pool.threadCount, rowLength])

        shape.forEach(itemCount) { items, thread in
            let ds = dScores.floats + thread * rowLength
            for item in items {
                let batch = item / shape.kvHeadCount
                let kvHead = item % shape.kvHeadCount
                let kvOffset = kvHead * headDim
                let own = partial.floats + item * partialWidth
                for member in 0..<shape.groupSize {
                    let head = kvHead * shape.groupSize + member
                    for token in 0..<shape.seqLen {
                        let index = row(batch: batch, head: head, token: token)
                        let p = probabilities + index * rowLength
                        let raw = rawPrefix + index * prefixLength
                        let tokenRow = batch * shape.seqLen + token
                        let dO = upstream + tokenRow * shape.queryWidth + head * headDim
                        let q = x.query + tokenRow * shape.queryWidth + head * headDim
                        let visible = prefixLength + token + 1

                        // dP_j = dO·v_j; rowsum = Σ P_j dP_j = dO·o.
                        var rowsum: Float = 0
                        for j in 0..<visible {
                            let v = valueRow(j, batch: batch, x) + kvOffset
                            let dot = FloatKernels.dotF32(dO, v, count: headDim)
                            ds[j] = dot
                            rowsum += p[j] * dot
                        }
                        // The gate: Σ_p raw_p (dP_p − rowsum).
                        for j in 0..<prefixLength {
                            own[2 * prefixSize + member] += raw[j] * (ds[j] - rowsum)
                        }
                        // dV_j += P_j dO; dS_j = P_j (dP_j − rowsum).
                        for j in 0..<visible {
                            let dv =
                                j < prefixLength
                                ? (targets[4] == nil ? nil : own + prefixSize + j * headDim)
                                : targets[2].map { $0 + keyRowOffset(j, batch: batch) + kvOffset }
                            if let dv { addScaled(p[j], dO, into: dv, headDim) }
                            ds[j] = p[j] * (ds[j] - rowsum) * shape.scale
                        }
                        // dQ += dS·K, dK_j += dS_j q.
                        let dq = targets[0].map {
                            $0 + tokenRow * shape.queryWidth + head * headDim
                        }
                        for j in 0..<visible {
                            let k = keyRow(j, batch: batch, x) + kvOffset
                            if let dq { addScaled(ds[j], k, into: dq, headDim) }
                            let dk =
                                j < prefixLength
                                ? (targets[3] == nil ? nil : own + j * headDim)
                                : targets[1].map { $0 + keyRowOffset(j, batch: batch) + kvOffset }
                            if let dk { addScaled(ds[j], q, into: dk, headDim) }
                        }
                    }
                }
            }
        }

        // The shared prefix and gates: sum the items' parts.
        for item in 0..<itemCount {
            let own = partial.floats + item * partialWidth
            let kvOffset = (item % shape.kvHeadCount) * headDim
            for position in 0..<prefixLength {
                for d in 0..<headDim {
                    let index = position * shape.kvWidth + kvOffset + d
                    targets[3]?[index] += own[position * headDim + d]
                    targets[4]?[index] += own[prefixSize + position * headDim + d]
                }
            }
            for member in 0..<shape.groupSize {
                let head = (item % shape.kvHeadCount) * shape.groupSize + member
                targets[5]?[head] += own[2 * prefixSize + member]
            }
        }
    }

    /// Key row `j` of a (batch) row of `[prefix; tokens]`: the full row, before the head's
    /// offset.
    private func keyRow(_ j: Int, batch: Int, _ x: PrefixAttentionOperands) -> Pointer {
        j < prefixLength
            ? x.prefixKeys + j * shape.kvWidth : x.key + keyRowOffset(j, batch: batch)
    }

    private func valueRow(_ j: Int, batch: Int, _ x: PrefixAttentionOperands) -> Pointer {
        j < prefixLength
            ? x.prefixValues + j * shape.kvWidth : x.value + keyRowOffset(j, batch: batch)
    }

    /// Offset of the sequence token behind position `j` (`j >= prefixLength`).
    private func keyRowOffset(_ j: Int, batch: Int) -> Int {
        (batch * shape.seqLen + j - prefixLength) * shape.kvWidth
    }

    /// `y += alpha · x` over `count` floats, sixteen lanes at a time.
    @inline(__always)
    private func addScaled(
        _ alpha: Float, _ x: Pointer, into y: UnsafeMutablePointer<Float>, _ count: Int
    ) {
        var i = 0
        while i + 16 <= count {
            let target = UnsafeMutableRawPointer(y + i)
            let sum = target.loadUnaligned(as: SIMD16<Float>.self).addingProduct(
                alpha, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self))
            target.storeBytes(of: sum, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count {
            y[i] += alpha * x[i]
            i += 1
        }
    }
}
