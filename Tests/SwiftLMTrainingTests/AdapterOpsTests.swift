import SwiftLMCore
import Testing

@testable import SwiftLMTraining

@Suite("Autograd: the operations of adapters")
struct AdapterOpsTests {
    static func parameter(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Variable {
        Variable(GradientCheck.random(shape, seed: seed, scale: scale), requiresGradient: true)
    }

    @Test("addScaled, addBias, tanh and columns match finite differences")
    func elementwiseGradients() {
        let a = Self.parameter([3, 5], seed: 1)
        let b = Self.parameter([3, 5], seed: 2)
        let bias = Self.parameter([5], seed: 3)
        GradientCheck.check([a, b]) { Ops.addScaled($0[0], $0[1], scale: 0.37) }
        GradientCheck.check([a, bias]) { Ops.addBias($0[0], $0[1]) }
        GradientCheck.check([a]) { Ops.tanh($0[0]) }
        GradientCheck.check([a]) { Ops.columns($0[0], 1..<4) }
    }

    @Test("prepending to sequences and dropping the prefix again match finite differences")
    func sequenceGradients() {
        let prefix = Self.parameter([2, 4], seed: 4)
        let x = Self.parameter([3 * 5, 4], seed: 5)
        GradientCheck.check([prefix, x]) { Ops.prependToSequences($0[0], $0[1], batchSize: 3) }
        let long = Self.parameter([3 * 7, 4], seed: 6)
        GradientCheck.check([long]) { Ops.dropSequencePrefix($0[0], count: 2, batchSize: 3) }

        // Dropping what was prepended gives back the input.
        let round = Ops.dropSequencePrefix(
            Ops.prependToSequences(prefix, x, batchSize: 3), count: 2, batchSize: 3)
        #expect(round.value.toArray() == x.value.toArray())
    }

    @Test("a frozen quantized weight multiplies as its dequantized F32 copy, both ways")
    func quantizedLinear() {
        // Q8_0 rows of 64: two blocks; a 1 MB panel holds every row, so shrink nothing.
        let floats = GradientCheck.random([70, 64], seed: 7, scale: 0.5)
        let quantized = floats.quantizedForTest(.q8_0)
        let dequantized = Tensor(shape: floats.shape, values: quantized.toArray())
        let x = Self.parameter([5, 64], seed: 8)

        let viaQuantized = Ops.linear(x, weight: Variable(quantized))
        let viaFloats = Ops.linear(x, weight: Variable(dequantized))
        let forwardGap = zip(viaQuantized.value.toArray(), viaFloats.value.toArray())
            .map { abs($0 - $1) }.max()!
        #expect(forwardGap < 1e-4)

        GradientCheck.check([x]) { Ops.linear($0[0], weight: Variable(quantized)) }
    }

    /// Sizes for prefix attention: 2 sequences of 4 tokens, 4 query heads over 2 KV heads of
    /// width 3, 2 prefix positions.
    static let shape = (batch: 2, seqLen: 4, heads: 4, kvHeads: 2, headDim: 3, prefix: 2)

    static func prefixInputs(gates: [Float]) -> [Variable] {
        let s = shape
        return [
            parameter([s.batch * s.seqLen, s.heads * s.headDim], seed: 11),
            parameter([s.batch * s.seqLen, s.kvHeads * s.headDim], seed: 12),
            parameter([s.batch * s.seqLen, s.kvHeads * s.headDim], seed: 13),
            parameter([s.prefix, s.kvHeads * s.headDim], seed: 14),
            parameter([s.prefix, s.kvHeads * s.headDim], seed: 15),
            Variable(Tensor(shape: [s.heads], values: gates), requiresGradient: true),
        ]
    }

    static func prefixAttention(_ inputs: [Variable]) -> Variable {
        let s = shape
        return Ops.prefixCausalAttention(
            query: inputs[0], key: inputs[1], value: inputs[2], prefixKeys: inputs[3],
            prefixValues: inputs[4], gates: inputs[5], batchSize: s.batch, seqLen: s.seqLen,
            headCount: s.heads, kvHeadCount: s.kvHeads, headDim: s.headDim)
    }

    @Test("prefix attention's gradients match finite differences, gates open and closed")
    func prefixAttentionGradients() {
        GradientCheck.check(Self.prefixInputs(gates: [1, 0.5, 0.2, 1.7])) {
            Self.prefixAttention($0)
        }
        // At zero the other inputs' gradients still hold, and the gates get the one-sided
        // derivative (a gate below zero counts as zero), which is not zero: gates can open.
        let closed = Self.prefixInputs(gates: [0, 0, 0, 0])
        let gates = closed[5]
        GradientCheck.check(Array(closed.prefix(5))) { Self.prefixAttention($0 + [gates]) }
        let probe = GradientCheck.random([8, 12], seed: 977)
        func loss() -> Double {
            let output = GradientRecording.withoutRecording { Self.prefixAttention(closed) }
            return (0..<probe.elementCount).reduce(0) {
                $0 + Double(output.value.floats[$1]) * Double(probe.floats[$1])
            }
        }
        let atZero = loss()
        let step: Float = 1e-3
        for head in 0..<4 {
            gates.value.floats[head] = step
            let numeric = Float((loss() - atZero) / Double(step))
            gates.value.floats[head] = 0
            let analytic = gates.gradient!.floats[head]
            #expect(abs(analytic - numeric) <= 2e-3 * max(1, abs(numeric)))
            #expect(abs(analytic) > 1e-3)
        }
    }

    @Test("closed gates give plain causal attention; open ones attention over [prefix; tokens]")
    func prefixAttentionValues() {
        let s = Self.shape
        let closed = Self.prefixInputs(gates: [0, 0, 0, 0])
        let plain = Ops.causalAttention(
            query: closed[0], key: closed[1], value: closed[2], batchSize: s.batch,
            seqLen: s.seqLen, headCount: s.heads, kvHeadCount: s.kvHeads, headDim: s.headDim)
        let closedGap = zip(Self.prefixAttention(closed).value.toArray(), plain.value.toArray())
            .map { abs($0 - $1) }.max()!
        #expect(closedGap < 1e-6)

        // With every gate at 1 it equals causal attention over the prefix put in front of
        // each sequence (the query rows of the prefix are padding, dropped afterwards).
        let open = Self.prefixInputs(gates: [1, 1, 1, 1])
        let padding = Variable(Tensor(zeros: [s.prefix, s.heads * s.headDim]))
        let joined = Ops.causalAttention(
            query: Ops.prependToSequences(padding, open[0], batchSize: s.batch),
            key: Ops.prependToSequences(open[3], open[1], batchSize: s.batch),
            value: Ops.prependToSequences(open[4], open[2], batchSize: s.batch),
            batchSize: s.batch, seqLen: s.seqLen + s.prefix, headCount: s.heads,
            kvHeadCount: s.kvHeads, headDim: s.headDim)
        let expected = Ops.dropSequencePrefix(joined, count: s.prefix, batchSize: s.batch)
        let gap = zip(Self.prefixAttention(open).value.toArray(), expected.value.toArray())
            .map { abs($0 - $1) }.max()!
        #expect(gap < 1e-5)
    }
}

extension Tensor {
    /// A copy quantized row by row (test helper).
    func quantizedForTest(_ type: ElementType) -> Tensor {
        let rowBytes = type.byteCount(elements: rowLength)!
        let storage = TensorStorage(byteCount: rowCount * rowBytes)
        for row in 0..<rowCount {
            Quantization.quantizeRow(
                type, floats + row * rowLength, storage.pointer + row * rowBytes, count: rowLength)
        }
        return Tensor(shape: shape, type: type, storage: storage)
    }
}
