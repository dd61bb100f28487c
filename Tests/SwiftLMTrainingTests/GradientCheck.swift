import SwiftLMCore
import Testing

@testable import SwiftLMTraining

/// Finite-difference gradient checks: the analytic gradient of every input of an operation
/// against central differences of a scalar loss, in double-precision sums over F32 values.
enum GradientCheck {
    /// A deterministic pseudo-random tensor in [-scale, scale).
    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        for index in 0..<count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            values[index] = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
        return Tensor(shape: shape, values: values)
    }

    /// Checks d(loss)/d(input) for every input, where loss = Σ output ⊙ probe with a fixed
    /// random `probe`, so every output element contributes with a distinct weight.
    ///
    /// - Parameters:
    ///   - inputs: the operation's inputs; all are perturbed and checked.
    ///   - step: the finite-difference step.
    ///   - tolerance: allowed |analytic − numeric| / max(1, |numeric|).
    static func check(
        _ inputs: [Variable], step: Float = 1e-2, tolerance: Float = 2e-3,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ operation: ([Variable]) -> Variable
    ) {
        let probeShape = operation(inputs).shape
        let probe = random(probeShape, seed: 977)
        func loss() -> Double {
            let output = GradientRecording.withoutRecording { operation(inputs) }
            var sum = 0.0
            for index in 0..<output.elementCount {
                sum += Double(output.value.floats[index]) * Double(probe.floats[index])
            }
            return sum
        }

        // Analytic: seed the output gradient with the probe and run backward.
        for input in inputs { input.zeroGradient() }
        let output = operation(inputs)
        output.gradientStorage().update(from: probe.floats, count: probe.elementCount)
        output.backward(seededGradient: ())

        for (which, input) in inputs.enumerated() where input.requiresGradient {
            let values = input.value.floats
            for index in 0..<input.elementCount {
                let saved = values[index]
                values[index] = saved + step
                let plus = loss()
                values[index] = saved - step
                let minus = loss()
                values[index] = saved
                let numeric = Float((plus - minus) / (2 * Double(step)))
                let analytic = input.gradient?.floats[index] ?? 0
                let error = abs(analytic - numeric) / max(1, abs(numeric))
                #expect(
                    error <= tolerance,
                    "input \(which) element \(index): analytic \(analytic), numeric \(numeric)",
                    sourceLocation: sourceLocation)
                if error > tolerance { return }
            }
        }
    }
}
