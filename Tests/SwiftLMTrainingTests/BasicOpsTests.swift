import SwiftLMCore
import Testing

@testable import SwiftLMTraining

@Suite("Autograd: linear and add")
struct BasicOpsTests {
    @Test("linear's gradients match finite differences")
    func linearGradients() {
        let x = Variable(GradientCheck.random([5, 7], seed: 1), requiresGradient: true)
        let w = Variable(GradientCheck.random([3, 7], seed: 2), requiresGradient: true)
        GradientCheck.check([x, w]) { Ops.linear($0[0], weight: $0[1]) }
    }

    @Test("a variable used twice sums both gradients")
    func addSumsGradients() {
        let x = Variable(GradientCheck.random([4, 6], seed: 3), requiresGradient: true)
        let y = Variable(GradientCheck.random([4, 6], seed: 4), requiresGradient: true)
        GradientCheck.check([x, y]) { Ops.add(Ops.add($0[0], $0[1]), $0[0]) }
    }

    @Test("linear equals a plain triple loop")
    func linearValues() {
        let x = GradientCheck.random([9, 33], seed: 5)
        let w = GradientCheck.random([70, 33], seed: 6)
        let y = Ops.linear(Variable(x), weight: Variable(w))
        for token in 0..<9 {
            for feature in 0..<70 {
                var sum: Float = 0
                for i in 0..<33 { sum += x.floats[token * 33 + i] * w.floats[feature * 33 + i] }
                #expect(abs(y.value.floats[token * 70 + feature] - sum) < 1e-4)
            }
        }
    }
}
