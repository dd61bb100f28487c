import Foundation
import SwiftLMCore
import SwiftLMModels

/// What the training loop reports; the CLI draws it (library code never prints).
public enum TrainingEvent: Sendable {
    /// The run starts (or resumes) after `step` of `totalSteps` completed steps.
    case started(step: Int, totalSteps: Int)
    /// A finished optimizer step.
    case step(TrainingStepReport)
    /// A validation loss.
    case evaluation(step: Int, loss: Double)
    /// A checkpoint was written.
    case checkpoint(step: Int, path: String)
}

public struct TrainingStepReport: Sendable {
    public var step: Int
    public var totalSteps: Int
    public var loss: Double
    public var learningRate: Float
    /// The global gradient norm before clipping.
    public var gradientNorm: Float
    public var tokensPerSecond: Double
}

/// The training loop: micro-batches from a `TokenDataset`, forward and backward through
/// `TrainableLlama`, gradient accumulation, clipping, the optimizer and the learning-rate
/// schedule; validation loss, metrics and atomic checkpoints every so many steps.
///
/// Every random draw (data windows, dropout masks) comes from one `TrainingRandom` whose state
/// is checkpointed with the weights and the optimizer, so a resumed run repeats exactly the
/// steps the uninterrupted run would have taken.
public final class Trainer {
    public let model: TrainableLlama
    public let dataset: any TrainingData
    public let options: TrainingOptions
    public let directory: String
    public let optimizer: any Optimizer
    public private(set) var step = 0
    public private(set) var random: TrainingRandom
    public private(set) var lastValidationLoss: Double?
    private let schedule: LearningRateSchedule
    private var metrics: MetricsLog!

    /// A new run, or with `resume` the continuation of the checkpoint in `directory`.
    ///
    /// On resume the model, optimizer state, step and random state come from the checkpoint;
    /// `model` must have the checkpoint's configuration (its weights are overwritten).
    public init(
        model: TrainableLlama, dataset: any TrainingData, options: TrainingOptions,
        directory: String, resume: Bool
    ) throws {
        try options.validate()
        guard options.seqLen <= model.config.contextLength else {
            throw TrainingError.invalidOption(
                "seq-len", "\(options.seqLen)",
                "at most the model's context length \(model.config.contextLength)")
        }
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true)
        self.model = model
        self.dataset = dataset
        self.options = options
        self.directory = directory
        random = TrainingRandom(seed: options.seed ^ 0x5EED)
        schedule = .warmupCosine(
            peak: options.learningRate, warmupSteps: options.resolvedWarmupSteps,
            totalSteps: options.steps, minimum: options.resolvedMinLearningRate)
        optimizer = Self.makeOptimizer(options, parameters: model.trainableParameters)
        if resume { try restore() }
        // Lines logged after the checkpoint belong to steps that will run again.
        metrics = try MetricsLog(directory: directory, resumingFrom: resume ? step : nil)
    }

    /// Runs the remaining steps. Throws on a NaN or infinite loss or gradient without writing
    /// a checkpoint, so the last good one stays on disk.
    public func run(events: (TrainingEvent) -> Void = { _ in }) throws {
        try runUntil(step: options.steps, events: events)
    }

    /// Runs steps until `last` (at most `options.steps`) is done: `run` stopped early, as a
    /// test interrupts a run.
    public func runUntil(step last: Int, events: (TrainingEvent) -> Void = { _ in }) throws {
        events(.started(step: step, totalSteps: options.steps))
        var windowStart = Date()
        var windowTokens = 0

        while step < min(last, options.steps) {
            let (loss, gradientNorm, tokens) = try trainStep()
            step += 1
            windowTokens += tokens
            let elapsed = Date().timeIntervalSince(windowStart)
            let report = TrainingStepReport(
                step: step, totalSteps: options.steps, loss: loss,
                learningRate: schedule.learningRate(atStep: step - 1), gradientNorm: gradientNorm,
                tokensPerSecond: elapsed > 0 ? Double(windowTokens) / elapsed : 0)
            events(.step(report))

            let isLast = step == options.steps
            var validationLoss: Double?
            if options.evalEvery > 0 && (step % options.evalEvery == 0 || isLast) {
                validationLoss = evaluate()
                lastValidationLoss = validationLoss
                events(.evaluation(step: step, loss: validationLoss!))
            }
            if step % options.logEvery == 0 || validationLoss != nil || isLast {
                try metrics.append(
                    MetricsRecord(
                        step: step, loss: loss, validationLoss: validationLoss,
                        tokensPerSecond: report.tokensPerSecond,
                        learningRate: Double(report.learningRate)))
                windowStart = Date()
                windowTokens = 0
            }
            if step % options.checkpointEvery == 0 || isLast {
                try saveCheckpoint()
                events(.checkpoint(step: step, path: TrainingCheckpoint.path(in: directory)))
            }
        }
    }

    /// One optimizer step over `accumulationSteps` micro-batches: returns the mean loss, the
    /// gradient norm before clipping and the positions trained on.
    func trainStep() throws -> (loss: Double, gradientNorm: Float, tokens: Int) {
        if case .performer(_, let redrawEvery) = model.config.attention, redrawEvery > 0 {
            model.performerDraw = step / redrawEvery
        }
        let parameters = model.trainableParameters
        for parameter in parameters { parameter.zeroGradient() }
        var lossSum = 0.0
        var tokens = 0
        for _ in 0..<options.accumulationSteps {
            let batch = dataset.trainingBatch(
                batchSize: options.batchSize, seqLen: options.seqLen, random: &random)
            let forward = ForwardOptions(
                checkpointing: options.checkpointing, dropout: options.dropout,
                dropoutSeed: random.next(), training: true)
            let loss = model.loss(
                tokens: batch.inputs, targets: batch.targets, batchSize: batch.batchSize,
                seqLen: batch.seqLen, options: forward)
            tokens += batch.inputs.count
            let value = loss.value.floats[0]
            guard value.isFinite else {
                throw TrainingError.nonFiniteLoss(step: step + 1, loss: value)
            }
            lossSum += Double(value)
            loss.backward()
        }

        if options.accumulationSteps > 1 {
            GradientAccumulation.averageGradients(
                parameters, over: options.accumulationSteps)
        }
        let gradientNorm =
            options.gradientClip > 0
            ? GradientClipping.clipGlobalNorm(parameters, maxNorm: options.gradientClip)
            : Float(GradientClipping.globalNorm(parameters))
        guard gradientNorm.isFinite else { throw TrainingError.nonFiniteGradient(step: step + 1) }
        optimizer.step(learningRate: schedule.learningRate(atStep: step))
        return (lossSum / Double(options.accumulationSteps), gradientNorm, tokens)
    }

    /// Mean loss over the first `evalBatches` validation batches, without recording.
    public func evaluate() -> Double {
        GradientRecording.withoutRecording {
            let batches = dataset.validationSet(
                batchSize: options.batchSize, seqLen: options.seqLen,
                maxBatches: options.evalBatches)
            guard !batches.isEmpty else { return .nan }
            var sum = 0.0
            for batch in batches {
                let loss = model.loss(
                    tokens: batch.inputs, targets: batch.targets, batchSize: batch.batchSize,
                    seqLen: batch.seqLen)
                sum += Double(loss.value.floats[0])
            }
            return sum / Double(batches.count)
        }
    }

    private func saveCheckpoint() throws {
        let state = TrainingCheckpoint.State(
            step: step, optimizerSteps: optimizer.stepCount, random: random,
            config: model.config, options: options, dataTokens: dataset.trainingTokenCount,
            lastValidationLoss: lastValidationLoss, adaptation: model.adapter?.adaptation)
        // Only what trains: a frozen base comes back from its own file.
        let trained = model.trainableParameters.map { ($0.name, $0.value) }
        try TrainingCheckpoint.write(
            state: state, model: trained, optimizer: optimizer.stateTensors(),
            to: TrainingCheckpoint.path(in: directory))
    }

    private func restore() throws {
        let path = TrainingCheckpoint.path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError.noCheckpoint(directory: directory)
        }
        let checkpoint = try TrainingCheckpoint(path: path)
        let state = checkpoint.state
        guard state.config == model.config else {
            throw TrainingError.checkpoint("its model configuration differs from this run's")
        }
        guard state.adaptation == model.adapter?.adaptation else {
            throw TrainingError.checkpoint("its adapter settings differ from this run's")
        }
        guard state.dataTokens == dataset.trainingTokenCount else {
            throw TrainingError.checkpoint(
                "it was trained on \(state.dataTokens) tokens, this data has "
                    + String(dataset.trainingTokenCount))
        }
        for parameter in model.trainableParameters {
            guard let saved = checkpoint.modelTensors[parameter.name],
                saved.shape == parameter.shape
            else { throw TrainingError.checkpoint("missing or mis-shaped \(parameter.name)") }
            parameter.value.floats.update(from: saved.floats, count: parameter.elementCount)
        }
        try optimizer.restore(
            stateTensors: checkpoint.optimizerTensors, stepCount: state.optimizerSteps)
        step = state.step
        random = state.random
        lastValidationLoss = state.lastValidationLoss
    }

    private static func makeOptimizer(
        _ options: TrainingOptions, parameters: [Variable]
    ) -> any Optimizer {
        switch options.optimizer {
        case "sgd":
            return SGD(parameters: parameters, momentum: options.momentum)
        default:
            return AdamW(
                parameters: parameters, beta1: options.beta1, beta2: options.beta2,
                epsilon: options.epsilon, weightDecay: options.weightDecay)
        }
    }
}
