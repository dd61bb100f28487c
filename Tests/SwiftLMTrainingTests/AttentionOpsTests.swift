import Foundation
import SwiftLMCore
import Testing

@testable import SwiftLMTraining

/// Tests of operations that run on the shared `Ops.pool`. Its `parallelFor` serves one caller
/// at a time and Swift Testing runs suites concurrently, so these run one after another.
@Suite(.serialized) struct PooledOpsTests {}

extension PooledOpsTests {
    @Suite("Autograd: causal attention")
    struct AttentionOpsTests {
        /// The sizes of one test case.
        struct Shape: Sendable, CustomTestStringConvertible {
            var batchSize = 2
            var seqLen = 5
            var headCount = 4
            var kvHeadCount = 2
            var headDim = 4

            var tokens: Int { batchSize * seqLen }
            var testDescription: String {
                "batch \(batchSize), seqLen \(seqLen), "
                    + "\(headCount)/\(kvHeadCount) heads of \(headDim)"
            }

            /// Random query, key and value, scaled so the softmax is neither flat nor one-hot.
            func inputs(seed: UInt64, requiresGradient: Bool = false) -> [Variable] {
                [headCount, kvHeadCount, kvHeadCount].enumerated().map { which, heads in
                    Variable(
                        GradientCheck.random(
                            [tokens, heads * headDim], seed: seed + UInt64(which), scale: 1.5),
                        requiresGradient: requiresGradient)
                }
            }

            func attention(_ inputs: [Variable]) -> Variable {
                Ops.causalAttention(
                    query: inputs[0], key: inputs[1], value: inputs[2], batchSize: batchSize,
                    seqLen: seqLen, headCount: headCount, kvHeadCount: kvHeadCount, headDim: headDim
                )
            }
        }

        static let shapes: [Shape] = [
            Shape(),
            Shape(kvHeadCount: 1),
            Shape(kvHeadCount: 4),
            Shape(batchSize: 3, seqLen: 9, headCount: 6, kvHeadCount: 3, headDim: 8),
            Self.pooled,
        ]

        /// Large enough that attention splits its work across `Ops.pool`.
        static let pooled = Shape(
            batchSize: 2, seqLen: 32, headCount: 4, kvHeadCount: 2, headDim: 16)

        /// The definition, one (batch, head, query token) at a time, in Double.
        static func naiveAttention(
            _ shape: Shape, query: Tensor, key: Tensor, value: Tensor
        )
            -> [Float]
        {
            let (seqLen, headDim) = (shape.seqLen, shape.headDim)
            let queryWidth = shape.headCount * headDim
            let kvWidth = shape.kvHeadCount * headDim
            let group = shape.headCount / shape.kvHeadCount
            var output = [Float](repeating: 0, count: shape.tokens * queryWidth)
            for batch in 0..<shape.batchSize {
                for head in 0..<shape.headCount {
                    let kvColumn = (head / group) * headDim
                    for i in 0..<seqLen {
                        let queryRow = (batch * seqLen + i) * queryWidth + head * headDim
                        var scores = [Double](repeating: 0, count: i + 1)
                        for j in 0...i {
                            let keyRow = (batch * seqLen + j) * kvWidth + kvColumn
                            for d in 0..<headDim {
                                scores[j] +=
                                    Double(query.floats[queryRow + d])
                                    * Double(key.floats[keyRow + d])
                            }
                            scores[j] /= Double(headDim).squareRoot()
                        }
                        let weights = scores.map { exp($0 - scores.max()!) }
                        let total = weights.reduce(0, +)
                        for d in 0..<headDim {
                            var sum = 0.0
                            for j in 0...i {
                                let valueRow = (batch * seqLen + j) * kvWidth + kvColumn
                                sum += weights[j] / total * Double(value.floats[valueRow + d])
                            }
                            output[queryRow + d] = Float(sum)
                        }
                    }
                }
            }
            return output
        }

        @Test("attention equals the naive triple loop", arguments: shapes)
        func matchesNaive(shape: Shape) {
            let inputs = shape.inputs(seed: 21)
            let output = shape.attention(inputs).value.toArray()
            let expected = Self.naiveAttention(
                shape, query: inputs[0].value, key: inputs[1].value, value: inputs[2].value)
            let difference = zip(output, expected).map { abs($0 - $1) }.max()!
            #expect(difference <= 1e-5)
        }

        @Test("attention's gradients match finite differences", arguments: shapes.prefix(3))
        func gradients(shape: Shape) {
            GradientCheck.check(shape.inputs(seed: 31, requiresGradient: true), shape.attention)
        }

        @Test("attention's gradients across the pool match a directional finite difference")
        func pooledGradients() {
            // Element-by-element differences would take minutes at this size; the derivative
            // along one random direction per input checks every element of its gradient at once.
            let shape = Self.pooled
            let inputs = shape.inputs(seed: 35, requiresGradient: true)
            let output = shape.attention(inputs)
            let probe = GradientCheck.random(output.shape, seed: 36)
            output.gradientStorage().update(from: probe.floats, count: probe.elementCount)
            output.backward(seededGradient: ())

            func loss() -> Double {
                let output = GradientRecording.withoutRecording { shape.attention(inputs) }
                return (0..<output.elementCount).reduce(0) {
                    $0 + Double(output.value.floats[$1]) * Double(probe.floats[$1])
                }
            }
            let step: Float = 1e-2
            for (which, input) in inputs.enumerated() {
                let direction = GradientCheck.random(input.shape, seed: 37 + UInt64(which))
                let values = input.value.floats
                let saved = input.value.toArray()
                var analytic = 0.0
                for index in 0..<input.elementCount {
                    analytic +=
                        Double(input.gradient!.floats[index]) * Double(direction.floats[index])
                }

                for index in 0..<input.elementCount {
                    values[index] += step * direction.floats[index]
                }
                let plus = loss()
                for index in 0..<input.elementCount {
                    values[index] = saved[index] - step * direction.floats[index]
                }
                let minus = loss()
                values.update(from: saved, count: saved.count)

                let numeric = (plus - minus) / (2 * Double(step))
                let error = abs(analytic - numeric) / max(1, abs(numeric))
                #expect(error <= 1e-3, "input \(which): analytic \(analytic), numeric \(numeric)")
            }
        }

        @Test("a query or key/value constant gets no gradient and the others stay right")
        func partialGradients() {
            let shape = Shape()
            var inputs = shape.inputs(seed: 41, requiresGradient: true)
            inputs[0] = Variable(inputs[0].value)
            GradientCheck.check(inputs, shape.attention)

            inputs = shape.inputs(seed: 42, requiresGradient: true)
            inputs[1] = Variable(inputs[1].value)
            inputs[2] = Variable(inputs[2].value)
            GradientCheck.check(inputs, shape.attention)
            #expect(inputs[1].gradient == nil && inputs[2].gradient == nil)
        }

        @Test("changing a later key or value leaves earlier outputs unchanged")
        func causality() {
            let shape = Shape()
            let width = shape.headCount * shape.headDim
            let kvWidth = shape.kvHeadCount * shape.headDim
            let inputs = shape.inputs(seed: 51)
            let before = shape.attention(inputs).value.toArray()

            // Token 3 of the second sequence: row 8.
            let (changedToken, changedRow) = (3, shape.seqLen + 3)
            for input in inputs[1...2] {
                for column in 0..<kvWidth {
                    input.value.floats[changedRow * kvWidth + column] += 0.7
                }
            }
            let after = shape.attention(inputs).value.toArray()

            for token in 0..<shape.tokens {
                let row = before[(token * width)..<((token + 1) * width)]
                let changedRow = after[(token * width)..<((token + 1) * width)]
                let sequence = token / shape.seqLen
                let position = token % shape.seqLen
                if sequence == 1 && position >= changedToken {
                    #expect(row != changedRow, "token \(token) sees the changed key")
                } else {
                    #expect(row == changedRow, "token \(token) must not see the changed key")
                }
            }
        }
    }
}
