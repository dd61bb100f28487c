import Foundation

/// The learning rate of each optimizer step. Codable, so a checkpoint stores the schedule it
/// was trained with and a resumed run continues on the same curve.
public enum LearningRateSchedule: Codable, Equatable, Sendable {
    /// The same rate at every step.
    case constant(Float)
    /// A linear warmup to `peak` over `warmupSteps` steps, then a half cosine down to `minimum`
    /// at `totalSteps` (Loshchilov and Hutter, "SGDR", 2017; the schedule of nanoGPT's
    /// `get_lr`), and `minimum` after it.
    case warmupCosine(peak: Float, warmupSteps: Int, totalSteps: Int, minimum: Float)

    /// The rate of step `step` (0 for the first step):
    ///
    ///     peak · (step + 1) / warmupSteps                                  step < warmupSteps
    ///     minimum + ½ (peak − minimum)(1 + cos(π · progress))              after,
    ///
    /// with progress = (step − warmupSteps) / (totalSteps − warmupSteps), clamped to [0, 1].
    /// Computed in Double. A schedule read from a file cannot trap here: no warmup skips
    /// the warmup, and `totalSteps <= warmupSteps` stays at `minimum` after the warmup.
    public func learningRate(atStep step: Int) -> Float {
        precondition(step >= 0, "steps count from 0, got \(step)")
        switch self {
        case .constant(let rate):
            return rate

        case .warmupCosine(let peak, let warmupSteps, let totalSteps, let minimum):
            let peak = Double(peak)
            let minimum = Double(minimum)
            if step < warmupSteps {
                return Float(peak * Double(step + 1) / Double(warmupSteps))
            }
            let decaySteps = totalSteps - max(warmupSteps, 0)
            let progress =
                decaySteps > 0 ? min(1, Double(step - max(warmupSteps, 0)) / Double(decaySteps)) : 1
            return Float(minimum + 0.5 * (peak - minimum) * (1 + cos(Double.pi * progress)))
        }
    }
}
