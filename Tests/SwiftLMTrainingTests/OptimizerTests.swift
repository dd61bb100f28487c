import Foundation
import SwiftLMCore
import Testing

@testable import SwiftLMTraining

/// optimizer_reference.json, written by scripts/reference/make_optimizer_reference.py: two
/// parameters (a decayed 2-D weight, an undecayed 1-D norm), six gradients (none for the norm
/// in the fourth step), and what PyTorch computes from them.
struct OptimizerReference: Decodable {
    struct ShapedValues: Decodable {
        let shape: [Int]
        let values: [Double]
    }
    struct Initial: Decodable {
        let weight: ShapedValues
        let norm: ShapedValues
    }
    struct Gradients: Decodable {
        let weight: [Double]
        let norm: [Double]?
    }
    struct Parameters: Decodable {
        let weight: [Double]
        let norm: [Double]
    }
    struct AdamWRun: Decodable {
        let learningRates: [Double]
        let beta1: Double
        let beta2: Double
        let epsilon: Double
        let weightDecay: Double
        let steps: [Parameters]
    }
    struct SGDRun: Decodable {
        let learningRates: [Double]
        let momentum: Double
        let weightDecay: Double
        let nesterov: Bool
        let decaysNorm: Bool
        let steps: [Parameters]
    }
    struct Clip: Decodable {
        let maxNorm: Double
        let norm: Double
        let weight: [Double]
        let normGradient: [Double]
    }
    struct Schedule: Decodable {
        let peak: Double
        let warmupSteps: Int
        let totalSteps: Int
        let minimum: Double
        let learningRates: [Double]
    }

    let initial: Initial
    let gradients: [Gradients]
    let adamw: AdamWRun
    let sgd: SGDRun
    let sgdNesterov: SGDRun
    let clip: [Clip]
    let schedule: Schedule

    struct MissingFixture: Error, CustomStringConvertible {
        var description: String {
            "optimizer_reference.json is missing; run scripts/reference/make_optimizer_reference.py"
        }
    }

    static func load() throws -> OptimizerReference {
        guard
            let url = Bundle.module.url(
                forResource: "optimizer_reference", withExtension: "json",
                subdirectory: "Fixtures")
        else { throw MissingFixture() }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(OptimizerReference.self, from: Data(contentsOf: url))
    }

    /// Fresh parameters `weight` and `norm` holding the initial values.
    func makeParameters() -> [Variable] {
        [("weight", initial.weight), ("norm", initial.norm)].map { name, tensor in
            Variable(
                Tensor(shape: tensor.shape, values: tensor.values.map { Float($0) }),
                requiresGradient: true, name: name)
        }
    }

    /// Sets the gradients of step `step` (nil for a missing one).
    func setGradients(of parameters: [Variable], step: Int) {
        for (parameter, values) in zip(parameters, [gradients[step].weight, gradients[step].norm]) {
            parameter.setGradient(
                values.map { Tensor(shape: parameter.shape, values: $0.map { Float($0) }) })
        }
    }
}

/// Agreement with PyTorch's float32 results: a few units in the last place after six steps.
let optimizerTolerance = 1e-6

/// Expects |actual − expected| <= tolerance · |expected| elementwise, reporting the worst.
func expectClose(
    _ actual: Tensor, _ expected: [Double], tolerance: Double = optimizerTolerance,
    _ label: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    let actual = actual.toArray()
    #expect(
        actual.count == expected.count, "\(label): element count", sourceLocation: sourceLocation)
    var worst = 0.0
    for (a, e) in zip(actual, expected) {
        worst = max(worst, abs(Double(a) - e) / max(abs(e), 1e-30))
    }
    #expect(
        worst <= tolerance, "\(label): worst relative error \(worst)",
        sourceLocation: sourceLocation)
}

@Suite("Optimizers: AdamW and SGD against PyTorch")
struct OptimizerTests {
    /// Runs `optimizer` over the fixture's gradients and compares every step with `expected`.
    func checkRun(
        _ optimizer: Optimizer, reference: OptimizerReference, rates: [Double],
        expected: [OptimizerReference.Parameters], label: String
    ) {
        for step in expected.indices {
            reference.setGradients(of: optimizer.parameters, step: step)
            optimizer.step(learningRate: Float(rates[step]))
            expectClose(
                optimizer.parameters[0].value, expected[step].weight, "\(label) \(step) weight")
            expectClose(optimizer.parameters[1].value, expected[step].norm, "\(label) \(step) norm")
        }
        #expect(optimizer.stepCount == expected.count)
    }

    func makeAdamW(_ reference: OptimizerReference) -> AdamW {
        let run = reference.adamw
        return AdamW(
            parameters: reference.makeParameters(), beta1: run.beta1, beta2: run.beta2,
            epsilon: run.epsilon, weightDecay: run.weightDecay)
    }

    func makeSGD(_ reference: OptimizerReference, _ run: OptimizerReference.SGDRun) -> SGD {
        SGD(
            parameters: reference.makeParameters(), momentum: run.momentum,
            nesterov: run.nesterov, weightDecay: run.weightDecay,
            decays: { run.decaysNorm || $0.value.rank >= 2 })
    }

    @Test("AdamW matches torch.optim.AdamW with decay groups, varied rates and a skipped gradient")
    func adamWMatchesPyTorch() throws {
        let reference = try OptimizerReference.load()
        let optimizer = makeAdamW(reference)
        #expect(optimizer.decays == [true, false])
        checkRun(
            optimizer, reference: reference, rates: reference.adamw.learningRates,
            expected: reference.adamw.steps, label: "AdamW step")
    }

    @Test("SGD with momentum and weight decay matches torch.optim.SGD")
    func sgdMatchesPyTorch() throws {
        let reference = try OptimizerReference.load()
        checkRun(
            makeSGD(reference, reference.sgd), reference: reference,
            rates: reference.sgd.learningRates, expected: reference.sgd.steps, label: "SGD step")
    }

    @Test("SGD with Nesterov momentum matches torch.optim.SGD(nesterov=True)")
    func nesterovMatchesPyTorch() throws {
        let reference = try OptimizerReference.load()
        let run = reference.sgdNesterov
        checkRun(
            makeSGD(reference, run), reference: reference, rates: run.learningRates,
            expected: run.steps, label: "Nesterov step")
    }

    /// Steps `first` and a twin restored from its state after `split` steps through the rest of
    /// the fixture, and expects parameters and state to agree bit for bit.
    func checkRestoreContinues(
        _ makeOptimizer: () -> Optimizer, reference: OptimizerReference, rates: [Double],
        split: Int
    ) throws {
        let first = makeOptimizer()
        for step in 0..<split {
            reference.setGradients(of: first.parameters, step: step)
            first.step(learningRate: Float(rates[step]))
        }
        let second = makeOptimizer()
        for (target, source) in zip(second.parameters, first.parameters) {
            OptimizerSupport.copy(source.value, into: target.value)
        }
        let saved = Dictionary(
            uniqueKeysWithValues: first.stateTensors().map { ($0.name, $0.tensor) })
        try second.restore(stateTensors: saved, stepCount: first.stepCount)
        #expect(second.stepCount == split)

        for step in split..<rates.count {
            for optimizer in [first, second] {
                reference.setGradients(of: optimizer.parameters, step: step)
                optimizer.step(learningRate: Float(rates[step]))
            }
        }
        for (a, b) in zip(first.parameters, second.parameters) {
            #expect(a.value.toArray().map(\.bitPattern) == b.value.toArray().map(\.bitPattern))
        }
        for (a, b) in zip(first.stateTensors(), second.stateTensors()) {
            #expect(a.name == b.name)
            #expect(a.tensor.toArray().map(\.bitPattern) == b.tensor.toArray().map(\.bitPattern))
        }
    }

    @Test("AdamW restored from its state tensors continues bit-identically")
    func adamWRestoreContinues() throws {
        let reference = try OptimizerReference.load()
        // After four steps the norm has taken three: its own step count must be restored.
        try checkRestoreContinues(
            { makeAdamW(reference) }, reference: reference,
            rates: reference.adamw.learningRates, split: 4)
    }

    @Test("SGD restored from its momentum buffers continues bit-identically")
    func sgdRestoreContinues() throws {
        let reference = try OptimizerReference.load()
        try checkRestoreContinues(
            { makeSGD(reference, reference.sgdNesterov) }, reference: reference,
            rates: reference.sgdNesterov.learningRates, split: 3)
    }

    @Test("AdamW's state is named per parameter, as PyTorch's state dict")
    func adamWStateNames() throws {
        let optimizer = makeAdamW(try OptimizerReference.load())
        #expect(
            optimizer.stateTensors().map(\.name) == [
                "weight.exp_avg", "weight.exp_avg_sq", "weight.step",
                "norm.exp_avg", "norm.exp_avg_sq", "norm.step",
            ])
    }

    @Test("restore names a missing or mis-shaped entry and changes nothing")
    func restoreRejectsBadState() throws {
        let reference = try OptimizerReference.load()
        let optimizer = makeAdamW(reference)
        reference.setGradients(of: optimizer.parameters, step: 0)
        optimizer.step(learningRate: 0.01)
        let before = optimizer.stateTensors().map { $0.tensor.toArray() }
        // Different moments, so that a partial restore would show.
        var saved = Dictionary(
            uniqueKeysWithValues: optimizer.stateTensors().map { entry in
                let values = entry.tensor.toArray()
                let changed = entry.name.hasSuffix(".step") ? values : values.map { $0 + 1 }
                return (entry.name, Tensor(shape: entry.tensor.shape, values: changed))
            })

        saved["norm.exp_avg_sq"] = nil
        #expect(throws: OptimizerStateError.missingTensor("norm.exp_avg_sq")) {
            try optimizer.restore(stateTensors: saved, stepCount: 1)
        }

        saved["norm.exp_avg_sq"] = Tensor(zeros: [3])
        #expect(
            throws: OptimizerStateError.shapeMismatch(
                tensor: "norm.exp_avg_sq", expected: [7], found: [3])
        ) { try optimizer.restore(stateTensors: saved, stepCount: 1) }

        saved["norm.exp_avg_sq"] = Tensor(zeros: [7])
        saved["weight.step"] = Tensor(shape: [1], values: [2.5])
        #expect(throws: OptimizerStateError.invalidStepCount(tensor: "weight.step", value: 2.5)) {
            try optimizer.restore(stateTensors: saved, stepCount: 3)
        }
        #expect(throws: OptimizerStateError.invalidStepCount(tensor: nil, value: -1)) {
            try optimizer.restore(stateTensors: saved, stepCount: -1)
        }

        #expect(optimizer.stateTensors().map { $0.tensor.toArray() } == before)
        #expect(optimizer.stepCount == 1)
    }

    @Test("a parameter without a gradient is left as it is")
    func skipsMissingGradients() throws {
        let reference = try OptimizerReference.load()
        let optimizers: [Optimizer] = [
            makeAdamW(reference), makeSGD(reference, reference.sgd),
        ]
        for optimizer in optimizers {
            let before = optimizer.parameters[1].value.toArray()
            reference.setGradients(of: optimizer.parameters, step: 0)
            optimizer.parameters[1].setGradient(nil)
            optimizer.step(learningRate: 0.01)
            #expect(optimizer.parameters[1].value.toArray() == before)
            #expect(
                optimizer.parameters[0].value.toArray()
                    != reference.initial.weight.values.map { Float($0) })
        }
    }

    @Test("a large parameter, split across threads, steps as its elements do one by one")
    func parallelStepMatchesSerial() {
        let count = 2 * OptimizerSupport.parallelThreshold + 3
        let values = GradientCheck.random([count], seed: 7).toArray()
        let gradients = GradientCheck.random([count], seed: 8).toArray()
        let large = Variable(Tensor(shape: [count], values: values), requiresGradient: true)
        let elements = (0..<count).map { index in
            Variable(
                Tensor(shape: [1], values: [values[index]]), requiresGradient: true,
                name: "\(index)")
        }
        let wholeOptimizer = AdamW(parameters: [large], decays: { _ in true })
        let elementOptimizer = AdamW(parameters: elements, decays: { _ in true })

        for _ in 0..<2 {
            large.setGradient(Tensor(shape: [count], values: gradients))
            for (element, gradient) in zip(elements, gradients) {
                element.setGradient(Tensor(shape: [1], values: [gradient]))
            }
            wholeOptimizer.step(learningRate: 0.1)
            elementOptimizer.step(learningRate: 0.1)
        }
        #expect(large.value.toArray() == elements.map { $0.value.floats[0] })
    }
}
