import Foundation
import SwiftLMCore
import Testing

@testable import SwiftLMTraining

@Suite("Autograd: embedding, norms, activations, dropout, loss, checkpointing")
struct LayerOpsTests {
    static func parameter(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Variable {
        Variable(GradientCheck.random(shape, seed: seed, scale: scale), requiresGradient: true)
    }

    @Test("embedding's gradient scatters into the rows of repeated tokens")
    func embeddingGradients() {
        let table = Self.parameter([6, 4], seed: 1)
        GradientCheck.check([table]) { Ops.embedding($0[0], tokens: [3, 1, 3, 5, 0]) }
    }

    @Test("RMSNorm's gradients match finite differences")
    func rmsNormGradients() {
        let x = Self.parameter([3, 8], seed: 2)
        let weight = Self.parameter([8], seed: 3)
        GradientCheck.check([x, weight]) { Ops.rmsNorm($0[0], weight: $0[1], epsilon: 1e-5) }
    }

    @Test("RMSNorm equals the inference kernel")
    func rmsNormValues() {
        let x = GradientCheck.random([2, 16], seed: 4)
        let weight = GradientCheck.random([16], seed: 5)
        let y = Ops.rmsNorm(Variable(x), weight: Variable(weight), epsilon: 1e-5)
        let expected = Tensor(zeros: [16])
        for row in 0..<2 {
            FloatKernels.rmsNorm(
                x.floats + row * 16, weight: weight.floats, epsilon: 1e-5, count: 16,
                into: expected.floats)
            for index in 0..<16 {
                #expect(abs(y.value.floats[row * 16 + index] - expected.floats[index]) < 1e-6)
            }
        }
    }

    @Test("LayerNorm's gradients match finite differences")
    func layerNormGradients() {
        let x = Self.parameter([3, 8], seed: 6)
        let weight = Self.parameter([8], seed: 7)
        let bias = Self.parameter([8], seed: 8)
        GradientCheck.check([x, weight, bias]) {
            Ops.layerNorm($0[0], weight: $0[1], bias: $0[2], epsilon: 1e-5)
        }
    }

    @Test("SwiGLU's gradients match finite differences")
    func swiGLUGradients() {
        let gate = Self.parameter([3, 5], seed: 9, scale: 3)
        let up = Self.parameter([3, 5], seed: 10)
        GradientCheck.check([gate, up]) { Ops.swiGLU(gate: $0[0], up: $0[1]) }
    }

    @Test("GELU's gradient matches finite differences and GELU(1) is 0.8413")
    func geluGradients() {
        let x = Self.parameter([4, 5], seed: 11, scale: 3)
        GradientCheck.check([x]) { Ops.gelu($0[0]) }
        let one = Ops.gelu(Variable(Tensor(shape: [1], values: [1])))
        #expect(abs(one.value.floats[0] - 0.841_344_7) < 1e-6)
    }

    @Test("dropout keeps about 1 − p of the elements, scaled, with the same mask per seed")
    func dropoutMask() {
        let x = Variable(Tensor(shape: [100, 100], values: .init(repeating: 1, count: 10_000)))
        let first = Ops.dropout(x, probability: 0.25, seed: 42).value.toArray()
        let again = Ops.dropout(x, probability: 0.25, seed: 42).value.toArray()
        #expect(first == again)
        let kept = first.filter { $0 != 0 }
        #expect(abs(Double(kept.count) / 10_000 - 0.75) < 0.02)
        #expect(kept.allSatisfy { abs($0 - 1 / 0.75) < 1e-6 })

        let input = Self.parameter([4, 6], seed: 12)
        GradientCheck.check([input]) { Ops.dropout($0[0], probability: 0.5, seed: 7) }
    }

    @Test("cross-entropy's gradient matches finite differences, ignoring -100 targets")
    func crossEntropyGradients() {
        let logits = Self.parameter([5, 7], seed: 13, scale: 3)
        let targets = [2, Ops.ignoredTarget, 6, 0, Ops.ignoredTarget]
        GradientCheck.check([logits]) { Ops.crossEntropy($0[0], targets: targets) }
    }

    @Test("cross-entropy of uniform logits is log(vocabSize)")
    func crossEntropyUniform() {
        let logits = Variable(Tensor(zeros: [3, 50]))
        let loss = Ops.crossEntropy(logits, targets: [1, 2, 3])
        #expect(abs(Double(loss.value.floats[0]) - log(50.0)) < 1e-6)
    }

    @Test("a checkpointed block gives gradients identical to the plain run")
    func checkpointingIsExact() {
        let x = Self.parameter([4, 8], seed: 14)
        let w1 = Self.parameter([12, 8], seed: 15)
        let w2 = Self.parameter([8, 12], seed: 16)
        let norm = Self.parameter([8], seed: 17)
        func block(_ inputs: [Variable]) -> Variable {
            let h = Ops.rmsNorm(inputs[0], weight: norm, epsilon: 1e-5)
            let up = Ops.linear(h, weight: w1)
            let down = Ops.linear(Ops.gelu(Ops.dropout(up, probability: 0.2, seed: 3)), weight: w2)
            return Ops.add(inputs[0], down)
        }
        func gradients(checkpointed: Bool) -> [[Float]] {
            for parameter in [x, w1, w2, norm] { parameter.zeroGradient() }
            let y =
                checkpointed
                ? Ops.checkpoint([x], parameters: [w1, w2, norm], block) : block([x])
            let loss = Ops.crossEntropy(y, targets: [1, 5, Ops.ignoredTarget, 7])
            loss.backward()
            return [x, w1, w2, norm].map { $0.gradient!.toArray() }
        }
        #expect(gradients(checkpointed: true) == gradients(checkpointed: false))
    }
}
