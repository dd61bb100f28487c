import SwiftLMCore
import Testing

@testable import SwiftLMTraining

extension PooledOpsTests {
    @Suite("Autograd: rotary position embedding")
    struct RoPEOpsTests {
        /// (interleaved, ropeDims) for heads of 8: both layouts, whole and partial rotation.
        static let layouts: [(Bool, Int)] = [(true, 8), (false, 8), (true, 4), (false, 6)]

        @Test(
            "rope's forward equals inference's rope on every head, bit for bit", arguments: layouts)
        func forwardMatchesInference(interleaved: Bool, ropeDims: Int) {
            // Enough heads that the tokens are split across the pool.
            let (batchSize, seqLen, headCount, headDim) = (2, 40, 64, 8)
            let width = headCount * headDim
            let x = GradientCheck.random([batchSize * seqLen, width], seed: 11)
            let rotated = Ops.rope(
                Variable(x), seqLen: seqLen, headCount: headCount, headDim: headDim,
                ropeDims: ropeDims, base: 10_000, interleaved: interleaved)

            var expected = x.toArray()
            for token in 0..<(batchSize * seqLen) {
                for head in 0..<headCount {
                    expected.withUnsafeMutableBufferPointer {
                        FloatKernels.rope(
                            $0.baseAddress! + token * width + head * headDim,
                            position: token % seqLen, dims: ropeDims, base: 10_000,
                            interleaved: interleaved)
                    }
                }
            }
            // The same angles and the same fused multiply-adds: equal to the last bit.
            #expect(rotated.value.toArray() == expected)
        }

        @Test("the backward of a rotation turns it back", arguments: layouts)
        func backwardInvertsForward(interleaved: Bool, ropeDims: Int) {
            // The rotation is orthogonal, so seeding the output's gradient with the output itself
            // must give back the input; at this size the tokens are split across the pool.
            let x = Variable(
                GradientCheck.random([2 * 40, 64 * 8], seed: 16), requiresGradient: true)
            let rotated = Ops.rope(
                x, seqLen: 40, headCount: 64, headDim: 8, ropeDims: ropeDims, base: 10_000,
                interleaved: interleaved)
            rotated.gradientStorage().update(
                from: rotated.value.floats, count: rotated.elementCount)
            rotated.backward(seededGradient: ())

            let difference = zip(x.gradient!.toArray(), x.value.toArray()).map { abs($0 - $1) }
                .max()!
            #expect(difference <= 1e-6)
        }

        @Test("rope's gradient matches finite differences", arguments: layouts)
        func gradients(interleaved: Bool, ropeDims: Int) {
            let x = Variable(
                GradientCheck.random([2 * 5, 4 * 8], seed: 12), requiresGradient: true)
            GradientCheck.check([x]) {
                Ops.rope(
                    $0[0], seqLen: 5, headCount: 4, headDim: 8, ropeDims: ropeDims, base: 10_000,
                    interleaved: interleaved)
            }
        }

        @Test("rotated query-key dot products depend only on the offset", arguments: layouts)
        func relativePosition(interleaved: Bool, ropeDims: Int) {
            // The same query and key at every position: row p of the result is the vector turned
            // to position p, so ⟨q_p, k_{p+d}⟩ must be the same for every p (RoFormer eq. 16).
            let (seqLen, headDim) = (16, 8)
            let q = GradientCheck.random([headDim], seed: 13).toArray()
            let k = GradientCheck.random([headDim], seed: 14).toArray()
            func rotatedAtEveryPosition(_ vector: [Float]) -> [Float] {
                let repeated = Tensor(
                    shape: [seqLen, headDim],
                    values: Array((0..<seqLen).map { _ in vector }.joined()))
                return Ops.rope(
                    Variable(repeated), seqLen: seqLen, headCount: 1, headDim: headDim,
                    ropeDims: ropeDims, base: 10_000, interleaved: interleaved
                ).value.toArray()
            }
            let queries = rotatedAtEveryPosition(q)
            let keys = rotatedAtEveryPosition(k)
            func dot(_ p: Int, _ other: Int) -> Float {
                (0..<headDim).reduce(0) {
                    $0 + queries[p * headDim + $1] * keys[other * headDim + $1]
                }
            }

            for offset in [0, 1, 3, 7] {
                let atZero = dot(0, offset)
                for position in 1..<(seqLen - offset) {
                    #expect(abs(dot(position, position + offset) - atZero) <= 1e-5)
                }
            }
        }

        /// Each kind of scaling, with factors that are not all powers of two. For heads rotating
        /// 8 or 6 elements, the first YaRN's ramp weighs one pair of 8 by 1/2 and two pairs of 6
        /// by 2/3 and 1/3; the second has its own betas.
        static let scalings: [RoPEScaling] = [
            .linear(factor: 2.5), .ntkAware(factor: 4),
            .yarn(factor: 3, originalContextLength: 4096),
            .yarn(factor: 8, originalContextLength: 64, betaFast: 16, betaSlow: 2),
        ]
        static let scaledLayouts: [(Bool, Int)] = [(true, 8), (false, 6)]

        @Test(
            "scaled rope's forward equals inference's scaled rope, bit for bit",
            arguments: scalings, scaledLayouts)
        func scaledForwardMatchesInference(scaling: RoPEScaling, layout: (Bool, Int)) {
            let (interleaved, ropeDims) = layout
            let (batchSize, seqLen, headCount, headDim) = (2, 40, 64, 8)
            let width = headCount * headDim
            let x = GradientCheck.random([batchSize * seqLen, width], seed: 21)
            let rotated = Ops.rope(
                Variable(x), seqLen: seqLen, headCount: headCount, headDim: headDim,
                ropeDims: ropeDims, base: 10_000, interleaved: interleaved, scaling: scaling)

            let table = RoPETable(dims: ropeDims, base: 10_000, scaling: scaling)
            var expected = x.toArray()
            for token in 0..<(batchSize * seqLen) {
                for head in 0..<headCount {
                    expected.withUnsafeMutableBufferPointer {
                        FloatKernels.rope(
                            $0.baseAddress! + token * width + head * headDim,
                            position: token % seqLen, table: table, interleaved: interleaved)
                    }
                }
            }
            #expect(rotated.value.toArray() == expected)
        }

        @Test(
            "scaled rope's gradient matches finite differences", arguments: scalings,
            scaledLayouts)
        func scaledGradients(scaling: RoPEScaling, layout: (Bool, Int)) {
            let (interleaved, ropeDims) = layout
            let x = Variable(
                GradientCheck.random([2 * 5, 4 * 8], seed: 22), requiresGradient: true)
            GradientCheck.check([x]) {
                Ops.rope(
                    $0[0], seqLen: 5, headCount: 4, headDim: 8, ropeDims: ropeDims,
                    base: 10_000, interleaved: interleaved, scaling: scaling)
            }
        }

        @Test("the backward of a scaled rotation is its transpose", arguments: scalings)
        func scaledBackwardIsTranspose(scaling: RoPEScaling) {
            // Rotation times the magnitude m: seeding the output's gradient with the output
            // gives back m² times the rotated elements of the input, and the rest unchanged.
            let (ropeDims, headDim) = (6, 8)
            let x = Variable(
                GradientCheck.random([2 * 40, 64 * headDim], seed: 23), requiresGradient: true)
            let rotated = Ops.rope(
                x, seqLen: 40, headCount: 64, headDim: headDim, ropeDims: ropeDims,
                base: 10_000, interleaved: true, scaling: scaling)
            rotated.gradientStorage().update(
                from: rotated.value.floats, count: rotated.elementCount)
            rotated.backward(seededGradient: ())

            let magnitude = RoPETable(dims: ropeDims, base: 10_000, scaling: scaling).magnitude
            let gradient = x.gradient!.toArray()
            var largest: Float = 0
            for (index, value) in x.value.toArray().enumerated() {
                let scale = index % headDim < ropeDims ? magnitude * magnitude : 1
                largest = max(largest, abs(gradient[index] - scale * value))
            }
            #expect(largest <= 2e-6)
        }

        @Test(
            "scaled query-key dot products depend only on the offset", arguments: scalings,
            scaledLayouts)
        func scaledRelativePosition(scaling: RoPEScaling, layout: (Bool, Int)) {
            let (interleaved, ropeDims) = layout
            let (seqLen, headDim) = (64, 8)
            let q = GradientCheck.random([headDim], seed: 24).toArray()
            let k = GradientCheck.random([headDim], seed: 25).toArray()
            func rotatedAtEveryPosition(_ vector: [Float]) -> [Float] {
                let repeated = Tensor(
                    shape: [seqLen, headDim],
                    values: Array((0..<seqLen).map { _ in vector }.joined()))
                return Ops.rope(
                    Variable(repeated), seqLen: seqLen, headCount: 1, headDim: headDim,
                    ropeDims: ropeDims, base: 10_000, interleaved: interleaved, scaling: scaling
                ).value.toArray()
            }
            let queries = rotatedAtEveryPosition(q)
            let keys = rotatedAtEveryPosition(k)
            func dot(_ p: Int, _ other: Int) -> Float {
                (0..<headDim).reduce(0) {
                    $0 + queries[p * headDim + $1] * keys[other * headDim + $1]
                }
            }

            for offset in [0, 1, 5, 31] {
                let atZero = dot(0, offset)
                for position in 1..<(seqLen - offset) {
                    #expect(abs(dot(position, position + offset) - atZero) <= 1e-5)
                }
            }
        }

        @Test("positions restart at every sequence of the batch")
        func positionsPerSequence() {
            let row = GradientCheck.random([1, 8], seed: 15).toArray()
            let x = Tensor(shape: [6, 8], values: Array((0..<6).map { _ in row }.joined()))
            let rotated = Ops.rope(
                Variable(x), seqLen: 3, headCount: 2, headDim: 4, ropeDims: 4, base: 10_000,
                interleaved: true
            ).value.toArray()
            #expect(Array(rotated[0..<24]) == Array(rotated[24..<48]))
            #expect(Array(rotated[0..<8]) == row)
        }
    }
}
