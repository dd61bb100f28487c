import SwiftLMCore

/// One micro-batch: `[batchSize, seqLen]` input ids, row-major, and the target of each
/// position (the next token, or `Ops.ignoredTarget` where nothing is predicted).
public struct TrainingBatch: Sendable {
    public var inputs: [Int]
    public var targets: [Int]
    public var seqLen: Int

    public init(inputs: [Int], targets: [Int], seqLen: Int) {
        precondition(inputs.count == targets.count && inputs.count % seqLen == 0, "batch shape")
        self.inputs = inputs
        self.targets = targets
        self.seqLen = seqLen
    }

    public var batchSize: Int { inputs.count / seqLen }
}

/// What the trainer draws batches from: windows of a token file (`TokenDataset`) or
/// conversations with loss on the assistant's tokens only (`ChatDataset`).
public protocol TrainingData {
    /// Tokens of the training part (a resumed run checks it has the same data).
    var trainingTokenCount: Int { get }

    /// A random training batch of at most `seqLen` positions per sequence; every draw comes
    /// from `random`, so a restored run draws the batches the uninterrupted one would have.
    func trainingBatch(
        batchSize: Int, seqLen: Int, random: inout TrainingRandom
    )
        -> TrainingBatch

    /// The held-out batches, the same every call; at most `maxBatches` of them.
    func validationSet(batchSize: Int, seqLen: Int, maxBatches: Int) -> [TrainingBatch]
}

extension TokenDataset: TrainingData {
    public func trainingBatch(
        batchSize: Int, seqLen: Int, random: inout TrainingRandom
    ) -> TrainingBatch {
        let batch = nextBatch(batchSize: batchSize, seqLen: seqLen, random: &random)
        return TrainingBatch(inputs: batch.inputs, targets: batch.targets, seqLen: seqLen)
    }

    public func validationSet(batchSize: Int, seqLen: Int, maxBatches: Int) -> [TrainingBatch] {
        validationBatches(batchSize: batchSize, seqLen: seqLen, maxBatches: maxBatches).map {
            TrainingBatch(inputs: $0.inputs, targets: $0.targets, seqLen: seqLen)
        }
    }
}
