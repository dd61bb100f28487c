/// Gradient accumulation: several micro-batches' backward passes add into the same gradients,
/// and one optimizer step follows, as if the micro-batches were one batch.
///
/// Each backward adds the gradient of its micro-batch's mean loss, so after `n` micro-batches
/// the gradients hold the sum of `n` means; `averageGradients` divides by `n` to give the mean
/// over the whole batch. nanoGPT divides each micro-batch's loss by `n` instead, which gives
/// the same gradients up to rounding; do one or the other, not both.
public enum GradientAccumulation {
    /// Divides every gradient by `microBatchCount`, before clipping and the optimizer step.
    public static func averageGradients(_ parameters: [Variable], over microBatchCount: Int) {
        precondition(microBatchCount >= 1, "at least one micro-batch, got \(microBatchCount)")
        guard microBatchCount > 1 else { return }
        let divisor = Float(microBatchCount)
        for parameter in parameters {
            guard let gradient = parameter.gradient else { continue }
            let values = gradient.floats
            OptimizerSupport.forEachChunk(gradient.elementCount) { range in
                for i in range { values[i] /= divisor }
            }
        }
    }
}
