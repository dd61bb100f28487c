import Foundation
import SwiftLMCore

/// Adam with decoupled weight decay (Loshchilov and Hutter, "Decoupled Weight Decay
/// Regularization", 2019), step for step as `torch.optim.AdamW` (single-tensor path):
///
///     p ← p · (1 − lr·λ)                       decayed parameters only
///     m ← m + (1 − β₁)·(g − m)                 = β₁·m + (1 − β₁)·g, as torch's lerp
///     v ← β₂·v + (1 − β₂)·g²
///     p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// where `t` counts the steps this parameter has taken. The elementwise arithmetic is done in
/// PyTorch's order, one rounding per PyTorch operation, so results agree with PyTorch's to a
/// few units in the last place (Tests/SwiftLMTrainingTests/OptimizerTests.swift).
///
/// Which parameters decay is chosen once, by a filter: by default matrices decay and vectors
/// (norm weights, biases) do not, as in nanoGPT's `configure_optimizers` and most LLM recipes.
public final class AdamW: Optimizer {
    public let parameters: [Variable]
    public private(set) var stepCount = 0

    // Hyperparameters are Doubles, as PyTorch's are Python floats, so that the constants
    // derived from them (1 − β₂, the bias corrections) round to the same Floats as PyTorch's.
    public let beta1: Double
    public let beta2: Double
    public let epsilon: Double
    public let weightDecay: Double
    /// Whether each parameter (in `parameters` order) is decayed.
    public let decays: [Bool]

    /// PyTorch's `exp_avg` (m) and `exp_avg_sq` (v) of each parameter. They start at zero, as
    /// PyTorch's do on a parameter's first step, so they can be allocated up front.
    private let firstMoments: [Tensor]
    private let secondMoments: [Tensor]
    /// Steps taken by each parameter. PyTorch counts per parameter, so one that had no
    /// gradient in some step has its own bias correction.
    private var parameterSteps: [Int]

    /// - Parameters:
    ///   - parameters: leaf variables with unique names (state is saved under them).
    ///   - beta1, beta2, epsilon, weightDecay: PyTorch's `betas`, `eps` and `weight_decay`,
    ///     with PyTorch's defaults.
    ///   - decays: whether a parameter is decayed; by default, tensors of rank 2 or more.
    public init(
        parameters: [Variable], beta1: Double = 0.9, beta2: Double = 0.999,
        epsilon: Double = 1e-8, weightDecay: Double = 0.01,
        decays: (Variable) -> Bool = { $0.value.rank >= 2 }
    ) {
        precondition((0..<1).contains(beta1) && (0..<1).contains(beta2), "betas in [0, 1)")
        precondition(epsilon >= 0 && weightDecay >= 0, "epsilon and weight decay are >= 0")
        OptimizerSupport.requireUniqueNames(parameters)
        self.parameters = parameters
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decays = parameters.map(decays)
        firstMoments = parameters.map { Tensor(zeros: $0.shape) }
        secondMoments = parameters.map { Tensor(zeros: $0.shape) }
        parameterSteps = Array(repeating: 0, count: parameters.count)
    }

    public func step(learningRate: Float) {
        stepCount += 1
        for index in parameters.indices {
            guard let gradient = parameters[index].gradient else { continue }
            parameterSteps[index] += 1
            update(index, gradient: gradient, learningRate: Double(learningRate))
        }
    }

    /// One parameter's step: the four lines of the type's comment, fused into one pass.
    ///
    /// On Linux this loop stays scalar: `squareRoot()` keeps a libm call for negative inputs
    /// (which sets errno), and the vectorizer cannot widen a call. Building the module with
    /// `-Xcc -fno-math-errno` lets it use 8-wide `vsqrtps`, with the same results.
    private func update(_ index: Int, gradient: Tensor, learningRate: Double) {
        // The scalars, in Double as PyTorch computes them, each rounded once to Float.
        let t = Double(parameterSteps[index])
        let decayFactor = decays[index] ? Float(1 - learningRate * weightDecay) : 1
        let firstWeight = Float(1 - beta1)
        let secondDecay = Float(beta2)
        let secondWeight = Float(1 - beta2)
        let negativeStepSize = Float(-(learningRate / (1 - pow(beta1, t))))
        let secondCorrectionRoot = Float((1 - pow(beta2, t)).squareRoot())
        let epsilon = Float(self.epsilon)

        let parameter = parameters[index].value.floats
        let grad = gradient.floats
        let m = firstMoments[index].floats
        let v = secondMoments[index].floats
        OptimizerSupport.forEachChunk(parameters[index].elementCount) { range in
            for i in range {
                let g = grad[i]
                // torch.lerp's vector kernel: one fused multiply-add.
                let mean = m[i].addingProduct(firstWeight, g - m[i])
                // mul_ then addcmul_: (v·β₂) + ((1 − β₂)·g)·g.
                let variance = v[i] * secondDecay + secondWeight * g * g
                let denominator = variance.squareRoot() / secondCorrectionRoot + epsilon
                // mul_ then addcdiv_: p + (−stepSize·m) / denominator.
                parameter[i] = parameter[i] * decayFactor + negativeStepSize * mean / denominator
                m[i] = mean
                v[i] = variance
            }
        }
    }

    /// `<name>.exp_avg`, `<name>.exp_avg_sq` and `<name>.step` (a one-element F32 tensor, as
    /// PyTorch stores `step`; exact up to 2²⁴ steps) for every parameter.
    public func stateTensors() -> [(name: String, tensor: Tensor)] {
        parameters.indices.flatMap { index in
            let name = parameters[index].name
            let stepTensor = Tensor(shape: [1], values: [Float(parameterSteps[index])])
            return [
                (name: name + ".exp_avg", tensor: firstMoments[index]),
                (name: name + ".exp_avg_sq", tensor: secondMoments[index]),
                (name: name + ".step", tensor: stepTensor),
            ]
        }
    }

    public func restore(stateTensors saved: [String: Tensor], stepCount: Int) throws {
        // Check everything first, so that a bad checkpoint leaves the optimizer untouched.
        try OptimizerSupport.validate(stepCount: stepCount)
        var restoredSteps: [Int] = []
        var copies: [(source: Tensor, target: Tensor)] = []
        for index in parameters.indices {
            let name = parameters[index].name
            for (suffix, state) in [(".exp_avg", firstMoments), (".exp_avg_sq", secondMoments)] {
                let entry = OptimizerStateEntry(name: name + suffix, shape: state[index].shape)
                copies.append((try entry.validated(in: saved), state[index]))
            }
            let stepEntry = OptimizerStateEntry(name: name + ".step", shape: [1])
            let steps = Double(try stepEntry.validated(in: saved).floats[0])
            guard steps >= 0, steps <= Double(stepCount), steps == steps.rounded() else {
                throw OptimizerStateError.invalidStepCount(tensor: name + ".step", value: steps)
            }
            restoredSteps.append(Int(steps))
        }

        for (source, target) in copies { OptimizerSupport.copy(source, into: target) }
        parameterSteps = restoredSteps
        self.stepCount = stepCount
    }
}
