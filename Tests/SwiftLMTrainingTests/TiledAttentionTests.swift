import SwiftLMCore
import Testing

@testable import SwiftLMTraining

extension PooledOpsTests {
    @Suite("Autograd: tiled causal attention")
    struct TiledAttentionTests {
        typealias Shape = AttentionOpsTests.Shape

        /// Query and key tile sizes of one test case.
        struct Tiling: Sendable, CustomTestStringConvertible {
            var query: Int
            var key: Int

            var testDescription: String { "tiles \(query)×\(key)" }
        }

        /// Sequence lengths that tiles of 3, 16 and 64 do not divide, every grouping (4/4,
        /// 4/2, 4/1, 6/3), batches above 1, and head sizes of 16 and more so the SIMD row
        /// loops run whole lanes as well as tails.
        static let shapes: [Shape] = [
            Shape(),
            Shape(batchSize: 1, seqLen: 37, headCount: 4, kvHeadCount: 1, headDim: 8),
            Shape(batchSize: 3, seqLen: 20, headCount: 4, kvHeadCount: 4, headDim: 16),
            Shape(batchSize: 2, seqLen: 70, headCount: 6, kvHeadCount: 3, headDim: 16),
            Shape(batchSize: 2, seqLen: 131, headCount: 4, kvHeadCount: 2, headDim: 32),
        ]

        static let tilings: [Tiling] = [
            Tiling(query: 1, key: 1), Tiling(query: 3, key: 3), Tiling(query: 16, key: 16),
            Tiling(query: 64, key: 64), Tiling(query: 16, key: 3), Tiling(query: 3, key: 64),
        ]

        /// Allowed |tiled − plain| / max(1, |plain|): the two sum in different orders, in F32.
        static let tolerance: Float = 1e-5
        /// The same for nearly one-hot rows: there dS = P ⊙ (dP − D) is a difference of close
        /// numbers, and the two form D differently (rowsum(dO ⊙ O) against rowsum(dP ⊙ P)).
        /// The gradients differ by 1.7e-5 with libm's `expf` in place of the clamped SIMD
        /// exponential as well, so the rounding, not the clamp, sets this.
        static let peakedTolerance: Float = 5e-5

        static func tiled(_ shape: Shape, _ tiling: Tiling) -> ([Variable]) -> Variable {
            { inputs in
                Ops.tiledCausalAttention(
                    query: inputs[0], key: inputs[1], value: inputs[2],
                    batchSize: shape.batchSize, seqLen: shape.seqLen,
                    headCount: shape.headCount, kvHeadCount: shape.kvHeadCount,
                    headDim: shape.headDim, queryTileSize: tiling.query, keyTileSize: tiling.key)
            }
        }

        /// The largest relative difference, in the sense of `tolerance`.
        static func difference(_ actual: Tensor, _ expected: Tensor) -> Float {
            zip(actual.toArray(), expected.toArray())
                .map { abs($0 - $1) / max(1, abs($1)) }.max()!
        }

        /// The gradients of query, key and value for loss = Σ output ⊙ probe.
        static func gradients(
            _ inputs: [Variable], _ operation: ([Variable]) -> Variable
        ) -> [Tensor] {
            let output = operation(inputs)
            let probe = GradientCheck.random(output.shape, seed: 61)
            output.gradientStorage().update(from: probe.floats, count: probe.elementCount)
            output.backward(seededGradient: ())
            return inputs.map { $0.gradient! }
        }

        @Test(
            "tiled attention's output equals the plain attention's",
            arguments: shapes, tilings)
        func matchesPlainForward(shape: Shape, tiling: Tiling) {
            let inputs = shape.inputs(seed: 71)
            let tiled = Self.tiled(shape, tiling)(inputs)
            let plain = shape.attention(inputs)
            #expect(Self.difference(tiled.value, plain.value) <= Self.tolerance)
        }

        @Test(
            "tiled attention's gradients equal the plain attention's",
            arguments: shapes, tilings)
        func matchesPlainGradients(shape: Shape, tiling: Tiling) {
            let tiled = Self.gradients(
                shape.inputs(seed: 81, requiresGradient: true), Self.tiled(shape, tiling))
            let plain = Self.gradients(
                shape.inputs(seed: 81, requiresGradient: true), shape.attention)
            for (which, (actual, expected)) in zip(tiled, plain).enumerated() {
                let difference = Self.difference(actual, expected)
                #expect(difference <= Self.tolerance, "input \(which): \(difference)")
            }
        }

        @Test("rows whose scores span more than 87 (e^-87 clamped) still equal the plain attention")
        func peakedSoftmax() {
            let shape = Shape(batchSize: 1, seqLen: 40, headCount: 2, kvHeadCount: 1, headDim: 16)
            let inputs = [shape.headCount, shape.kvHeadCount, shape.kvHeadCount].enumerated()
                .map { which, heads in
                    Variable(
                        GradientCheck.random(
                            [shape.tokens, heads * shape.headDim], seed: 121 + UInt64(which),
                            scale: 10),
                        requiresGradient: true)
                }
            #expect(Self.widestScoreSpan(shape, inputs) > 87, "the case must reach the clamp")

            let copies = inputs.map { Variable($0.value, requiresGradient: true) }
            let operation = Self.tiled(shape, Tiling(query: 16, key: 16))
            #expect(
                Self.difference(operation(inputs).value, shape.attention(inputs).value)
                    <= Self.tolerance)
            let tiled = Self.gradients(inputs, operation)
            let plain = Self.gradients(copies, shape.attention)
            for (which, (actual, expected)) in zip(tiled, plain).enumerated() {
                let difference = Self.difference(actual, expected)
                #expect(difference <= Self.peakedTolerance, "input \(which): \(difference)")
            }
        }

        /// The largest max − min of the scaled scores a query row of head 0 sees (kvHead 0).
        static func widestScoreSpan(_ shape: Shape, _ inputs: [Variable]) -> Float {
            let (query, key) = (inputs[0].value.floats, inputs[1].value.floats)
            let queryWidth = shape.headCount * shape.headDim
            let kvWidth = shape.kvHeadCount * shape.headDim
            var widest: Float = 0
            for i in 0..<shape.seqLen {
                let scores = (0...i).map { j in
                    (0..<shape.headDim).reduce(Float(0)) {
                        $0 + query[i * queryWidth + $1] * key[j * kvWidth + $1]
                    } / Float(shape.headDim).squareRoot()
                }
                widest = max(widest, scores.max()! - scores.min()!)
            }
            return widest
        }

        @Test("tiled attention's gradients match finite differences", arguments: tilings.prefix(3))
        func finiteDifferences(tiling: Tiling) {
            let shape = Shape(batchSize: 2, seqLen: 7, headCount: 4, kvHeadCount: 2, headDim: 4)
            GradientCheck.check(
                shape.inputs(seed: 91, requiresGradient: true), Self.tiled(shape, tiling))
        }

        @Test("a query or key/value constant gets no gradient and the others stay right")
        func partialGradients() {
            let shape = Shape()
            let operation = Self.tiled(shape, Tiling(query: 2, key: 3))
            var inputs = shape.inputs(seed: 101, requiresGradient: true)
            inputs[0] = Variable(inputs[0].value)
            GradientCheck.check(inputs, operation)
            #expect(inputs[0].gradient == nil)

            inputs = shape.inputs(seed: 102, requiresGradient: true)
            inputs[1] = Variable(inputs[1].value)
            inputs[2] = Variable(inputs[2].value)
            GradientCheck.check(inputs, operation)
            #expect(inputs[1].gradient == nil && inputs[2].gradient == nil)
        }

        @Test("changing a later key or value leaves earlier outputs unchanged", arguments: tilings)
        func causality(tiling: Tiling) {
            let shape = Shape(batchSize: 2, seqLen: 9, headCount: 4, kvHeadCount: 2, headDim: 4)
            let operation = Self.tiled(shape, tiling)
            let width = shape.headCount * shape.headDim
            let kvWidth = shape.kvHeadCount * shape.headDim
            let inputs = shape.inputs(seed: 111)
            let before = operation(inputs).value.toArray()

            // Token 4 of the second sequence, in the middle of a tile of 3 and of 16.
            let (changedToken, changedRow) = (4, shape.seqLen + 4)
            for input in inputs[1...2] {
                for column in 0..<kvWidth {
                    input.value.floats[changedRow * kvWidth + column] += 0.7
                }
            }
            let after = operation(inputs).value.toArray()

            for token in 0..<shape.tokens {
                let row = before[(token * width)..<((token + 1) * width)]
                let changedRow = after[(token * width)..<((token + 1) * width)]
                if token / shape.seqLen == 1 && token % shape.seqLen >= changedToken {
                    #expect(row != changedRow, "token \(token) sees the changed key")
                } else {
                    #expect(row == changedRow, "token \(token) must not see the changed key")
                }
            }
        }
    }
}
