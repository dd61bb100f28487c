import SwiftLMCore
import Testing

@testable import SwiftLMTraining

@Suite("Gradient clipping, the non-finite check and accumulation")
struct ClippingTests {
    /// The fixture's parameters holding the first step's gradients.
    func parametersWithGradients(_ reference: OptimizerReference) -> [Variable] {
        let parameters = reference.makeParameters()
        reference.setGradients(of: parameters, step: 0)
        return parameters
    }

    @Test("clipGlobalNorm matches clip_grad_norm_ when it clips and when it does not")
    func clipMatchesPyTorch() throws {
        let reference = try OptimizerReference.load()
        for clip in reference.clip {
            let parameters = parametersWithGradients(reference)
            let norm = GradientClipping.clipGlobalNorm(parameters, maxNorm: Float(clip.maxNorm))
            #expect(abs(Double(norm) - clip.norm) <= optimizerTolerance * clip.norm)
            expectClose(parameters[0].gradient!, clip.weight, "max_norm \(clip.maxNorm) weight")
            expectClose(parameters[1].gradient!, clip.normGradient, "max_norm \(clip.maxNorm) norm")
        }
    }

    @Test("a norm below the maximum leaves gradients bit for bit")
    func noClipLeavesGradients() throws {
        let reference = try OptimizerReference.load()
        let parameters = parametersWithGradients(reference)
        let before = parameters.map { $0.gradient!.toArray() }
        GradientClipping.clipGlobalNorm(parameters, maxNorm: 1000)
        #expect(parameters.map { $0.gradient!.toArray() } == before)
    }

    @Test("a NaN or an infinite gradient gives a non-finite norm and is left unscaled")
    func nonFiniteGradients() throws {
        let reference = try OptimizerReference.load()
        for bad in [Float.nan, .infinity, -.infinity] {
            let parameters = parametersWithGradients(reference)
            #expect(!GradientClipping.hasNonFinite(parameters))
            parameters[1].gradient!.floats[2] = bad
            #expect(GradientClipping.hasNonFinite(parameters))

            let weightBefore = parameters[0].gradient!.toArray()
            let norm = GradientClipping.clipGlobalNorm(parameters, maxNorm: 0.1)
            #expect(!norm.isFinite)
            #expect(parameters[0].gradient!.toArray() == weightBefore)
        }
    }

    @Test("parameters without a gradient count for nothing")
    func skipsMissingGradients() throws {
        let reference = try OptimizerReference.load()
        let parameters = parametersWithGradients(reference)
        let weightOnly = GradientClipping.globalNorm([parameters[0]])
        parameters[1].setGradient(nil)
        #expect(GradientClipping.globalNorm(parameters) == weightOnly)
        #expect(GradientClipping.clipGlobalNorm([], maxNorm: 1) == 0)
    }

    @Test("the norm of a gradient split into blocks equals a plain Double sum")
    func blockedNormMatchesPlainSum() {
        let count = 3 * 65_536 + 17
        let parameter = Variable(Tensor(zeros: [count]), requiresGradient: true)
        let gradient = GradientCheck.random([count], seed: 11)
        parameter.setGradient(gradient)
        var sum = 0.0
        for value in gradient.toArray() { sum += Double(value) * Double(value) }
        let norm = GradientClipping.globalNorm([parameter])
        #expect(abs(norm - sum.squareRoot()) <= 1e-12 * norm)
    }

    @Test("averaging accumulated gradients divides them by the number of micro-batches")
    func accumulationAverages() throws {
        let reference = try OptimizerReference.load()
        let parameters = reference.makeParameters()
        for step in 0..<3 {
            // Accumulate: each micro-batch's backward adds into the gradient.
            for (parameter, values) in zip(
                parameters,
                [
                    reference.gradients[step].weight, reference.gradients[step].norm!,
                ])
            {
                let storage = parameter.gradientStorage()
                for (index, value) in values.enumerated() { storage[index] += Float(value) }
            }
        }
        let sums = parameters.map { $0.gradient!.toArray() }
        GradientAccumulation.averageGradients(parameters, over: 3)
        for (parameter, sum) in zip(parameters, sums) {
            #expect(parameter.gradient!.toArray() == sum.map { $0 / 3 })
        }
    }
}
