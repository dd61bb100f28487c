import Foundation
import SwiftLMCore
import Testing

@testable import SwiftLMTraining

@Suite("Autograd: Performer random features")
struct RandomFeaturesTests {
    @Test("a seed gives the same projection, and a redraw gives that of its seed")
    func seeded() {
        var features = RandomFeatures(featureCount: 20, headDim: 8, seed: 1)
        let first = features.projection.toArray()
        #expect(RandomFeatures(featureCount: 20, headDim: 8, seed: 1).projection.toArray() == first)

        features.redraw(seed: 2)
        #expect(features.seed == 2)
        #expect(features.projection.toArray() != first)
        #expect(
            features.projection.toArray()
                == RandomFeatures(featureCount: 20, headDim: 8, seed: 2).projection.toArray())
    }

    @Test("rows within a block of headDim are orthogonal, the last block partial")
    func orthogonalBlocks() {
        let (featureCount, headDim) = (20, 8)
        let rows = RandomFeatures(featureCount: featureCount, headDim: headDim, seed: 3)
            .projection.toArray()
        func row(_ index: Int) -> ArraySlice<Float> {
            rows[(index * headDim)..<((index + 1) * headDim)]
        }
        func dot(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
            zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        for first in 0..<featureCount {
            #expect(dot(row(first), row(first)) > 0)
            for second in (first + 1)..<featureCount where first / headDim == second / headDim {
                let cosine =
                    dot(row(first), row(second))
                    / (dot(row(first), row(first)) * dot(row(second), row(second))).squareRoot()
                #expect(abs(cosine) < 1e-5, "rows \(first) and \(second)")
            }
        }
    }

    @Test("the features estimate the softmax kernel without bias (lemma 1)")
    func unbiasedKernel() {
        // Over many draws, φ(x)·φ(y) = Σ_j exp(ω_j·(x + y) − |x|²/2 − |y|²/2) / m averages to
        // exp(x·y). Rows of the wrong length would bias it: unit rows (no chi scaling) would
        // come out about 24% low here.
        let (headDim, featureCount, draws) = (8, 16, 2000)
        let x: [Double] = (0..<headDim).map { 0.25 * sin(Double($0) + 1) }
        let y: [Double] = (0..<headDim).map { 0.25 * cos(Double($0) * 2) }
        let exact = exp(zip(x, y).reduce(0) { $0 + $1.0 * $1.1 })
        let halfNorms = (x.reduce(0) { $0 + $1 * $1 } + y.reduce(0) { $0 + $1 * $1 }) / 2

        var estimates: [Double] = []
        for seed in 0..<draws {
            let omega = RandomFeatures(
                featureCount: featureCount, headDim: headDim, seed: UInt64(seed)
            ).projection.toArray()
            var estimate = 0.0
            for j in 0..<featureCount {
                var exponent = -halfNorms
                for d in 0..<headDim { exponent += Double(omega[j * headDim + d]) * (x[d] + y[d]) }
                estimate += exp(exponent) / Double(featureCount)
            }
            estimates.append(estimate)
        }
        let mean = estimates.reduce(0, +) / Double(draws)
        let variance = estimates.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(draws - 1)
        let standardError = (variance / Double(draws)).squareRoot()
        #expect(standardError < 0.005 * exact)
        #expect(
            abs(mean - exact) < 4 * standardError, "mean \(mean) ± \(standardError), exact \(exact)"
        )
    }
}

extension PooledOpsTests {
    @Suite("Autograd: Performer causal attention")
    struct LinearAttentionTests {
        typealias Shape = AttentionOpsTests.Shape

        /// One test case: the attention's shape, the random features and the chunking.
        struct Case: Sendable, CustomTestStringConvertible {
            var shape = Shape()
            var featureCount = 6
            var chunkSize = 2

            var testDescription: String {
                "\(shape.testDescription), \(featureCount) features, chunks of \(chunkSize)"
            }

            var features: RandomFeatures {
                RandomFeatures(featureCount: featureCount, headDim: shape.headDim, seed: 5)
            }

            func attention(_ inputs: [Variable]) -> Variable {
                Ops.performerCausalAttention(
                    query: inputs[0], key: inputs[1], value: inputs[2],
                    batchSize: shape.batchSize, seqLen: shape.seqLen, headCount: shape.headCount,
                    kvHeadCount: shape.kvHeadCount, headDim: shape.headDim, features: features,
                    chunkSize: chunkSize)
            }
        }

        /// Chunks of one row, of sizes that do not divide seqLen, and of the whole sequence;
        /// feature counts below, at and above a block of headDim, with and without a partial
        /// block, and of 16 and more so the SIMD exponential runs whole lanes as well as tails.
        static let cases: [Case] = [
            Case(),
            Case(shape: Shape(kvHeadCount: 1), featureCount: 4, chunkSize: 1),
            Case(shape: Shape(kvHeadCount: 4), featureCount: 9, chunkSize: 64),
            Case(
                shape: Shape(batchSize: 3, seqLen: 9, headCount: 6, kvHeadCount: 3, headDim: 8),
                featureCount: 20, chunkSize: 4),
            Case(
                shape: Shape(batchSize: 1, seqLen: 37, headCount: 4, kvHeadCount: 1, headDim: 16),
                featureCount: 40, chunkSize: 16),
            Case(shape: AttentionOpsTests.pooled, featureCount: 32, chunkSize: 8),
        ]

        /// The definition, in Double and without any shift: for each query row t, the weights
        /// φ(q_t)·φ(k_s) of the keys s ≤ t, normalized, applied to the values.
        static func naiveAttention(_ testCase: Case, inputs: [Variable]) -> [Float] {
            let shape = testCase.shape
            let (seqLen, headDim, m) = (shape.seqLen, shape.headDim, testCase.featureCount)
            let omega = testCase.features.projection.toArray().map(Double.init)
            let scale = 1 / pow(Double(headDim), 0.25)
            let (query, key, value) = (inputs[0].value, inputs[1].value, inputs[2].value)

            /// φ of the headDim floats at `row`.
            func phi(_ tensor: Tensor, at row: Int) -> [Double] {
                let x = (0..<headDim).map { scale * Double(tensor.floats[row + $0]) }
                let halfNorm = x.reduce(0) { $0 + $1 * $1 } / 2
                return (0..<m).map { j in
                    let projected = (0..<headDim).reduce(0) { $0 + omega[j * headDim + $1] * x[$1] }
                    return exp(projected - halfNorm) / Double(m).squareRoot()
                }
            }

            let queryWidth = shape.headCount * headDim
            let kvWidth = shape.kvHeadCount * headDim
            let group = shape.headCount / shape.kvHeadCount
            var output = [Float](repeating: 0, count: shape.tokens * queryWidth)
            for batch in 0..<shape.batchSize {
                for head in 0..<shape.headCount {
                    let kvColumn = (head / group) * headDim
                    let keys = (0..<seqLen).map {
                        phi(key, at: (batch * seqLen + $0) * kvWidth + kvColumn)
                    }
                    for t in 0..<seqLen {
                        let queryRow = (batch * seqLen + t) * queryWidth + head * headDim
                        let q = phi(query, at: queryRow)
                        let weights = (0...t).map { s in
                            zip(q, keys[s]).reduce(0) { $0 + $1.0 * $1.1 }
                        }
                        let total = weights.reduce(0, +)
                        for d in 0..<headDim {
                            var sum = 0.0
                            for s in 0...t {
                                let valueRow = (batch * seqLen + s) * kvWidth + kvColumn
                                sum += weights[s] * Double(value.floats[valueRow + d])
                            }
                            output[queryRow + d] = Float(sum / total)
                        }
                    }
                }
            }
            return output
        }

        /// The largest |actual − expected| / max(1, |expected|).
        static func difference(_ actual: [Float], _ expected: [Float]) -> Float {
            zip(actual, expected).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        }

        @Test("the chunked op equals the naive quadratic kernelized attention", arguments: cases)
        func matchesNaive(testCase: Case) {
            let inputs = testCase.shape.inputs(seed: 21)
            let output = testCase.attention(inputs).value.toArray()
            let expected = Self.naiveAttention(testCase, inputs: inputs)
            #expect(Self.difference(output, expected) <= 1e-5)
        }

        @Test("gradients match finite differences", arguments: cases.prefix(4))
        func gradients(testCase: Case) {
            GradientCheck.check(
                testCase.shape.inputs(seed: 31, requiresGradient: true), testCase.attention)
        }

        @Test("a query or key/value constant gets no gradient and the others stay right")
        func partialGradients() {
            let testCase = Case()
            var inputs = testCase.shape.inputs(seed: 41, requiresGradient: true)
            inputs[0] = Variable(inputs[0].value)
            GradientCheck.check(inputs, testCase.attention)

            inputs = testCase.shape.inputs(seed: 42, requiresGradient: true)
            inputs[1] = Variable(inputs[1].value)
            GradientCheck.check(inputs, testCase.attention)

            inputs = testCase.shape.inputs(seed: 43, requiresGradient: true)
            inputs[2] = Variable(inputs[2].value)
            GradientCheck.check(inputs, testCase.attention)
            #expect(inputs[2].gradient == nil)
        }

        @Test("gradients across the pool match a directional finite difference")
        func pooledGradients() {
            // Element by element would take minutes; the derivative along one random direction
            // per input checks every element of its gradient at once.
            let testCase = Self.cases.last!
            let inputs = testCase.shape.inputs(seed: 35, requiresGradient: true)
            let output = testCase.attention(inputs)
            let probe = GradientCheck.random(output.shape, seed: 36)
            output.gradientStorage().update(from: probe.floats, count: probe.elementCount)
            output.backward(seededGradient: ())

            func loss() -> Double {
                let output = GradientRecording.withoutRecording { testCase.attention(inputs) }
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

        @Test("changing a later key or value leaves earlier outputs unchanged")
        func causality() {
            let testCase = Case(shape: Shape(), featureCount: 8, chunkSize: 2)
            let shape = testCase.shape
            let width = shape.headCount * shape.headDim
            let kvWidth = shape.kvHeadCount * shape.headDim
            let inputs = shape.inputs(seed: 51)
            let before = testCase.attention(inputs).value.toArray()

            // Token 3 of the second sequence: row 8. Earlier rows may change by rounding only:
            // the changed key can move the sequence's key stabilizer, a common factor of every
            // key feature that cancels in each row's ratio.
            let (changedToken, changedRow) = (3, shape.seqLen + 3)
            for input in inputs[1...2] {
                for column in 0..<kvWidth {
                    input.value.floats[changedRow * kvWidth + column] += 0.7
                }
            }
            let after = testCase.attention(inputs).value.toArray()

            for token in 0..<shape.tokens {
                let row = Array(before[(token * width)..<((token + 1) * width)])
                let changedRow = Array(after[(token * width)..<((token + 1) * width)])
                let sequence = token / shape.seqLen
                let position = token % shape.seqLen
                if sequence == 1 && position >= changedToken {
                    #expect(Self.difference(changedRow, row) > 1e-3, "token \(token)")
                } else {
                    #expect(Self.difference(changedRow, row) <= 1e-6, "token \(token)")
                }
            }
        }

        @Test("the decoding state gives the op's row for each token appended")
        func decodingState() {
            let testCase = Case(
                shape: Shape(batchSize: 1, seqLen: 23, headCount: 6, kvHeadCount: 3, headDim: 8),
                featureCount: 20, chunkSize: 4)
            let shape = testCase.shape
            let inputs = shape.inputs(seed: 61)
            let expected = testCase.attention(inputs).value.toArray()

            let state = PerformerState(
                headCount: shape.headCount, kvHeadCount: shape.kvHeadCount,
                features: testCase.features)
            let (width, kvWidth) = (
                shape.headCount * shape.headDim, shape.kvHeadCount * shape.headDim
            )
            for token in 0..<shape.seqLen {
                state.append(
                    key: inputs[1].value.floats + token * kvWidth,
                    value: inputs[2].value.floats + token * kvWidth)
                let row = state.attend(query: inputs[0].value.floats + token * width)
                let expectedRow = Array(expected[(token * width)..<((token + 1) * width)])
                #expect(Self.difference(row, expectedRow) <= 1e-5, "token \(token)")
            }
            #expect(state.tokenCount == shape.seqLen)
        }

        @Test("the error against softmax attention falls as the feature count grows")
        func errorFallsWithFeatures() {
            // Queries and keys of standard deviation 0.5 (scores q·k / sqrt(headDim) of standard
            // deviation 0.25), where FAVOR+ is usable: its variance grows as
            // exp(|q + k|² / sqrt(headDim)) (lemma 2), and at unit entries the error stays near
            // 100% up to 512 features. The relative error of a call is ‖performer − softmax‖ /
            // ‖softmax‖ over the whole output, averaged over 8 draws of inputs and features: it
            // should fall about as 1 / sqrt(featureCount), a ratio of 0.71 per doubling; single
            // draws are heavy-tailed (ratios of 0.67 to 0.97 were seen over sets of 4 draws).
            let shape = Shape(batchSize: 1, seqLen: 128, headCount: 4, kvHeadCount: 2, headDim: 64)
            let featureCounts = [64, 128, 256]
            let seeds: [UInt64] = Array(1...8)
            var errors: [Double] = []
            for featureCount in featureCounts {
                var total = 0.0
                for seed in seeds {
                    let inputs = [shape.headCount, shape.kvHeadCount, shape.kvHeadCount]
                        .enumerated().map { which, heads in
                            // Uniform: standard deviation 0.5 (queries, keys) or 1 (values).
                            Variable(
                                GradientCheck.random(
                                    [shape.tokens, heads * shape.headDim],
                                    seed: 100 * seed + UInt64(which),
                                    scale: (which == 2 ? 1 : 0.5) * Float(3).squareRoot()))
                        }
                    let exact = shape.attention(inputs).value.toArray()
                    let features = RandomFeatures(
                        featureCount: featureCount, headDim: shape.headDim, seed: seed)
                    let performer = Ops.performerCausalAttention(
                        query: inputs[0], key: inputs[1], value: inputs[2],
                        batchSize: shape.batchSize, seqLen: shape.seqLen,
                        headCount: shape.headCount, kvHeadCount: shape.kvHeadCount,
                        headDim: shape.headDim, features: features
                    ).value.toArray()
                    var (squaredError, squaredNorm) = (0.0, 0.0)
                    for (a, b) in zip(performer, exact) {
                        squaredError += Double(a - b) * Double(a - b)
                        squaredNorm += Double(b) * Double(b)
                    }
                    total += (squaredError / squaredNorm).squareRoot()
                }
                errors.append(total / Double(seeds.count))
            }
            print("performer relative error, features \(featureCounts): \(errors)")
            for index in 1..<errors.count {
                #expect(
                    errors[index] < 0.92 * errors[index - 1], "\(featureCounts[index]) features")
            }
        }
    }
}
