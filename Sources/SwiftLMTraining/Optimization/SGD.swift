import SwiftLMCore

/// Stochastic gradient descent with momentum, step for step as `torch.optim.SGD` with
/// `dampening = 0` (Sutskever et al., "On the importance of initialization and momentum in deep
/// learning", 2013, in PyTorch's formulation):
///
///     g ← g + λ·p                      decayed parameters only (L2 decay, not decoupled)
///     b ← μ·b + g                      b = g on the first step
///     p ← p − lr·(g + μ·b)             Nesterov
///     p ← p − lr·b                     otherwise (p − lr·g when μ = 0)
///
/// PyTorch's first step sets `b = g`; a buffer that starts at zero gives the same `μ·0 + g`,
/// so it is allocated up front.
public final class SGD: Optimizer {
    public let parameters: [Variable]
    public private(set) var stepCount = 0

    /// PyTorch's `momentum`, `nesterov` and `weight_decay`, as Doubles like its Python floats.
    public let momentum: Double
    public let nesterov: Bool
    public let weightDecay: Double
    /// Whether each parameter (in `parameters` order) is decayed.
    public let decays: [Bool]

    /// PyTorch's `momentum_buffer` of each parameter; none when `momentum` is 0.
    private let momentumBuffers: [Tensor]

    /// - Parameters:
    ///   - parameters: leaf variables with unique names (state is saved under them).
    ///   - momentum, nesterov, weightDecay: as in PyTorch; Nesterov needs a momentum.
    ///   - decays: whether a parameter is decayed; by default, tensors of rank 2 or more.
    public init(
        parameters: [Variable], momentum: Double = 0, nesterov: Bool = false,
        weightDecay: Double = 0, decays: (Variable) -> Bool = { $0.value.rank >= 2 }
    ) {
        precondition(momentum >= 0 && weightDecay >= 0, "momentum and weight decay are >= 0")
        precondition(!nesterov || momentum > 0, "Nesterov momentum needs a momentum > 0")
        OptimizerSupport.requireUniqueNames(parameters)
        self.parameters = parameters
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.decays = parameters.map(decays)
        momentumBuffers = momentum > 0 ? parameters.map { Tensor(zeros: $0.shape) } : []
    }

    public func step(learningRate: Float) {
        stepCount += 1
        for index in parameters.indices {
            guard let gradient = parameters[index].gradient else { continue }
            update(index, gradient: gradient, learningRate: learningRate)
        }
    }

    /// One parameter's step. Each PyTorch `add(..., alpha:)` is one fused multiply-add, as in
    /// its vector kernel; `mul_` then `add_` are two roundings. A zero decay adds exactly 0·p.
    /// The three variants are separate loops so that each vectorizes without a branch.
    private func update(_ index: Int, gradient: Tensor, learningRate: Float) {
        let decay = decays[index] ? Float(weightDecay) : 0
        let momentum = Float(self.momentum)
        let negativeRate = -learningRate
        let parameter = parameters[index].value.floats
        let grad = gradient.floats
        let count = parameters[index].elementCount

        guard !momentumBuffers.isEmpty else {
            OptimizerSupport.forEachChunk(count) { range in
                for i in range {
                    let direction = grad[i].addingProduct(decay, parameter[i])
                    parameter[i] = parameter[i].addingProduct(negativeRate, direction)
                }
            }
            return
        }
        let buffer = momentumBuffers[index].floats
        if nesterov {
            OptimizerSupport.forEachChunk(count) { range in
                for i in range {
                    let decayed = grad[i].addingProduct(decay, parameter[i])
                    let average = buffer[i] * momentum + decayed
                    buffer[i] = average
                    let direction = decayed.addingProduct(momentum, average)
                    parameter[i] = parameter[i].addingProduct(negativeRate, direction)
                }
            }
        } else {
            OptimizerSupport.forEachChunk(count) { range in
                for i in range {
                    let decayed = grad[i].addingProduct(decay, parameter[i])
                    let average = buffer[i] * momentum + decayed
                    buffer[i] = average
                    parameter[i] = parameter[i].addingProduct(negativeRate, average)
                }
            }
        }
    }

    /// `<name>.momentum_buffer` for every parameter; nothing without momentum.
    public func stateTensors() -> [(name: String, tensor: Tensor)] {
        zip(parameters, momentumBuffers).map { parameter, buffer in
            (name: parameter.name + ".momentum_buffer", tensor: buffer)
        }
    }

    public func restore(stateTensors saved: [String: Tensor], stepCount: Int) throws {
        // Check everything first, so that a bad checkpoint leaves the optimizer untouched.
        try OptimizerSupport.validate(stepCount: stepCount)
        let sources = try zip(parameters, momentumBuffers).map { parameter, buffer in
            try OptimizerStateEntry(name: parameter.name + ".momentum_buffer", shape: buffer.shape)
                .validated(in: saved)
        }

        for (source, target) in zip(sources, momentumBuffers) {
            OptimizerSupport.copy(source, into: target)
        }
        self.stepCount = stepCount
    }
}
