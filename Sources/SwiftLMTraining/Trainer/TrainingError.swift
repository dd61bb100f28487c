/// Why a training run cannot start or continue. Each description is one line.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidOption(String, String, String)
    case nonFiniteLoss(step: Int, loss: Float)
    case nonFiniteGradient(step: Int)
    case checkpoint(String)
    case noCheckpoint(directory: String)

    public var description: String {
        switch self {
        case .invalidOption(let option, let value, let expected):
            return "\(option) is \(value), expected \(expected)"
        case .nonFiniteLoss(let step, let loss):
            return
                "the loss became \(loss) at step \(step); stopped without saving it (the last "
                + "good checkpoint is kept). Try a lower learning rate or gradient clipping"
        case .nonFiniteGradient(let step):
            return
                "a gradient became NaN or infinite at step \(step); stopped without saving it "
                + "(the last good checkpoint is kept). Try a lower learning rate"
        case .checkpoint(let problem):
            return "checkpoint: \(problem)"
        case .noCheckpoint(let directory):
            return "--resume: no checkpoint in \(directory)"
        }
    }
}
