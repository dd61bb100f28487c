import SwiftLMCore

/// A node of the reverse-mode autograd graph: a float `Tensor` value, the gradient of the loss
/// with respect to it, and how to pass that gradient on to the variables it was computed from.
///
/// Values and gradients are the project's one `Tensor` type (F32); there is no second tensor
/// system. Parameters are leaf variables with `requiresGradient`; every operation in `Ops`
/// returns a new variable whose `backward` closure adds its inputs' gradient contributions.
public final class Variable: @unchecked Sendable {
    /// The value, computed in the forward pass. Optimizers update parameters in place.
    public let value: Tensor
    /// dLoss/dValue, zeroed the first time a gradient reaches this variable in a step and
    /// summed over every use; nil while none has (an optimizer skips such parameters).
    public var gradient: Tensor? { hasGradient ? gradientBuffer : nil }
    /// The gradient's memory, kept across steps so that a parameter's gradient is zeroed in
    /// place rather than reallocated (for a large embedding, fresh pages cost more than the
    /// step's arithmetic).
    private var gradientBuffer: Tensor?
    private var hasGradient = false
    /// Whether gradients flow to this variable: true for parameters and for any result that
    /// depends on one.
    public let requiresGradient: Bool
    /// A name for reports and checkpoints (parameters only), such as `blk.0.attn_q.weight`.
    public var name: String

    /// The variables this one was computed from; empty for leaves.
    let inputs: [Variable]
    /// Adds this variable's `gradient` into its inputs' gradients.
    let backwardStep: ((Variable) -> Void)?

    /// A leaf: a parameter (`requiresGradient: true`) or a constant input.
    ///
    /// A constant may hold a quantized tensor: the frozen base weights of QLoRA stay in their
    /// GGUF type, and `Ops.linear` and `Ops.embedding` dequantize them as they go. Every
    /// other operation takes F32 only.
    public init(_ value: Tensor, requiresGradient: Bool = false, name: String = "") {
        precondition(
            value.type == .f32 || !requiresGradient,
            "autograd differentiates F32 tensors, got a trainable \(value.type)")
        self.value = value
        self.requiresGradient = requiresGradient
        self.name = name
        inputs = []
        backwardStep = nil
    }

    /// The result of an operation. Records `backward` only while gradients are recorded and
    /// some input requires them; otherwise the result is a constant and the inputs may be
    /// freed as soon as the caller drops them.
    init(_ value: Tensor, inputs: [Variable], backward: @escaping (Variable) -> Void) {
        precondition(value.type == .f32, "autograd works on F32 tensors, got \(value.type)")
        self.value = value
        name = ""
        if GradientRecording.isEnabled && inputs.contains(where: \.requiresGradient) {
            requiresGradient = true
            self.inputs = inputs
            backwardStep = backward
        } else {
            requiresGradient = false
            self.inputs = []
            backwardStep = nil
        }
    }

    public var shape: [Int] { value.shape }
    public var elementCount: Int { value.elementCount }

    /// The gradient buffer, zeroed on first use in a step; operations add into it.
    public func gradientStorage() -> UnsafeMutablePointer<Float> {
        if !hasGradient {
            if let buffer = gradientBuffer {
                buffer.floats.update(repeating: 0, count: buffer.elementCount)
            } else {
                gradientBuffer = Tensor(zeros: value.shape)
            }
            hasGradient = true
        }
        return gradientBuffer!.floats
    }

    /// Forgets the gradient before the next step; the memory is kept for reuse.
    public func zeroGradient() { hasGradient = false }

    /// Forgets the gradient and frees its memory (intermediate results once passed on).
    func releaseGradient() {
        hasGradient = false
        gradientBuffer = nil
    }

    /// Sets the gradient outright, e.g. to restore an accumulated gradient.
    public func setGradient(_ tensor: Tensor?) {
        precondition(tensor == nil || tensor!.shape == value.shape, "gradient shape mismatch")
        gradientBuffer = tensor
        hasGradient = tensor != nil
    }

    /// Backpropagates from this scalar: seeds dLoss/dLoss = 1, then runs every recorded
    /// operation in reverse topological order. Gradients accumulate into parameters (call
    /// `zeroGradient` between steps); intermediate results release theirs as soon as they
    /// have been passed on.
    public func backward() {
        precondition(elementCount == 1, "backward() starts from a scalar, got \(shape)")
        guard requiresGradient else { return }
        gradientStorage()[0] += 1
        backward(seededGradient: ())
    }

    /// Backpropagates from a result of any shape whose gradient the caller has already written
    /// through `gradientStorage()` (benchmarks and tests of a single operation).
    public func backwardFromStoredGradient() {
        guard requiresGradient else { return }
        backward(seededGradient: ())
    }

    /// Backpropagates a gradient already stored in `gradient` (used by checkpointing, which
    /// seeds a block's output with the gradient that reached it).
    func backward(seededGradient: Void) {
        for node in topologicalOrder().reversed() {
            guard let step = node.backwardStep, node.gradient != nil else { continue }
            step(node)
            // Intermediate gradients are not needed once passed on.
            node.releaseGradient()
        }
    }

    /// Every recorded node reachable from this one, each after all of its inputs.
    private func topologicalOrder() -> [Variable] {
        var order: [Variable] = []
        var visited = Set<ObjectIdentifier>()
        // Iterative depth-first search: a deep model would overflow a recursive one.
        var stack: [(Variable, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded {
                order.append(node)
                continue
            }
            guard visited.insert(ObjectIdentifier(node)).inserted else { continue }
            stack.append((node, true))
            for input in node.inputs where input.requiresGradient {
                if !visited.contains(ObjectIdentifier(input)) { stack.append((input, false)) }
            }
        }
        return order
    }
}

/// Whether operations record the graph for a backward pass. Turned off for evaluation and for
/// the first forward of a checkpointed block.
///
/// The setting belongs to the current thread (a task-local value), so two models trained or
/// evaluated on different threads never switch each other's recording.
public enum GradientRecording {
    @TaskLocal static var enabled = true

    public static var isEnabled: Bool { enabled }

    /// Runs `body` with recording on (a checkpointed block's recomputation inside a backward).
    static func withRecording<Result>(_ body: () throws -> Result) rethrows -> Result {
        try $enabled.withValue(true, operation: body)
    }

    /// Runs `body` without recording; results are constants.
    public static func withoutRecording<Result>(_ body: () throws -> Result) rethrows -> Result {
        try $enabled.withValue(false, operation: body)
    }
}
