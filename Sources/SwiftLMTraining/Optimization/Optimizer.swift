import SwiftLMCore

/// Updates parameters from their gradients, one step at a time, and saves and restores its
/// state for checkpoints.
///
/// The trainer's step is: backward, `GradientClipping.clipGlobalNorm`, `step(learningRate:)`
/// with the schedule's rate, `zeroGradients()`. Parameters are leaf variables; a parameter
/// whose `gradient` is nil in a step is left as it is, state included, as PyTorch skips
/// parameters whose `.grad` is None.
///
/// State tensors are named per parameter after PyTorch's state dict entries
/// (`<parameter name>.exp_avg`), so that a checkpoint reads like a PyTorch one and parameter
/// names must be unique.
public protocol Optimizer: AnyObject {
    /// The parameters updated, in a fixed order.
    var parameters: [Variable] { get }
    /// Steps taken since the start of training (restored from checkpoints).
    var stepCount: Int { get }

    /// Updates every parameter that has a gradient, in place, and counts one step.
    func step(learningRate: Float)

    /// The state to save in a checkpoint, named per parameter. These are the optimizer's own
    /// buffers, not copies: write them out before the next `step`.
    func stateTensors() -> [(name: String, tensor: Tensor)]

    /// Restores the state saved by `stateTensors()` (values are copied) and the step count.
    /// Checks every entry before changing anything; throws `OptimizerStateError` naming a
    /// missing, mis-shaped or invalid entry.
    func restore(stateTensors: [String: Tensor], stepCount: Int) throws
}

extension Optimizer {
    /// Forgets every parameter's gradient, ready for the next accumulation.
    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }
}

/// Why saved optimizer state could not be restored. Each description is one line that names
/// the entry.
public enum OptimizerStateError: Error, CustomStringConvertible, Equatable, Sendable {
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    case unsupportedType(tensor: String, type: String)
    case invalidStepCount(tensor: String?, value: Double)

    public var description: String {
        switch self {
        case .missingTensor(let name):
            return "optimizer state lacks the tensor '\(name)'"
        case .shapeMismatch(let tensor, let expected, let found):
            return "optimizer state '\(tensor)' has shape \(found), expected \(expected)"
        case .unsupportedType(let tensor, let type):
            return "optimizer state '\(tensor)' has type \(type), expected F32"
        case .invalidStepCount(let tensor, let value):
            let what = tensor.map { "optimizer state '\($0)'" } ?? "the optimizer step count"
            return "\(what) is \(value), expected a whole number of steps >= 0"
        }
    }
}

/// One named state tensor that `restore` expects, and the checks it makes before copying.
struct OptimizerStateEntry {
    let name: String
    let shape: [Int]

    /// Checks that `saved` holds an F32 tensor of this entry's shape.
    func validated(in saved: [String: Tensor]) throws -> Tensor {
        guard let found = saved[name] else { throw OptimizerStateError.missingTensor(name) }
        guard found.type == .f32 else {
            throw OptimizerStateError.unsupportedType(tensor: name, type: "\(found.type)")
        }
        guard found.shape == shape else {
            throw OptimizerStateError.shapeMismatch(
                tensor: name, expected: shape, found: found.shape)
        }
        return found
    }
}

enum OptimizerSupport {
    /// Overwrites `target`'s elements with those of `source` (F32, same element count). A
    /// copy, never an alias: a checkpoint's tensors may be read-only file mappings.
    static func copy(_ source: Tensor, into target: Tensor) {
        precondition(source.elementCount == target.elementCount, "copy of mismatched tensors")
        target.floats.update(from: source.floats, count: target.elementCount)
    }

    /// Below this many elements a loop runs on the calling thread: waking the pool would cost
    /// more than the work.
    static let parallelThreshold = 1 << 15

    /// Runs an elementwise `body` over `0..<count`, split across `Ops.pool` when large. Each
    /// element's result depends only on that element, so the split never changes a result.
    static func forEachChunk(_ count: Int, _ body: (Range<Int>) -> Void) {
        if count < parallelThreshold {
            body(0..<count)
        } else {
            Ops.pool.parallelFor(count, body)
        }
    }

    /// Traps unless parameter names are unique, since state is saved under them.
    static func requireUniqueNames(_ parameters: [Variable]) {
        var seen = Set<String>()
        for parameter in parameters {
            precondition(
                seen.insert(parameter.name).inserted,
                "optimizer parameters need unique names; '\(parameter.name)' appears twice")
        }
    }

    /// Throws unless `stepCount` is a count of steps.
    static func validate(stepCount: Int) throws {
        guard stepCount >= 0 else {
            throw OptimizerStateError.invalidStepCount(tensor: nil, value: Double(stepCount))
        }
    }
}
