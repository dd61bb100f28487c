import SwiftLMCore

extension Ops {
    /// Gradient checkpointing (Chen et al., 2016, "Training Deep Nets with Sublinear Memory
    /// Cost"): runs `body` on `inputs` without recording, so none of its intermediate
    /// activations outlive the forward; the backward runs `body` again with recording on and
    /// backpropagates through that copy.
    ///
    /// `parameters` are the trainable variables that `body` uses (a transformer block's
    /// weights); their gradients accumulate during the recomputation exactly as in a plain
    /// run, so the gradients are identical. `body` must be deterministic (dropout takes its
    /// mask from a seed for this reason).
    public static func checkpoint(
        _ inputs: [Variable], parameters: [Variable],
        _ body: @escaping ([Variable]) -> Variable
    ) -> Variable {
        let value = GradientRecording.withoutRecording { body(inputs).value }

        return Variable(value, inputs: inputs + parameters) { output in
            // Leaves over the same storage as the inputs: the recomputation starts here.
            let detached = inputs.map { Variable($0.value, requiresGradient: $0.requiresGradient) }
            let recomputed = GradientRecording.withRecording { body(detached) }
            guard recomputed.requiresGradient else { return }
            recomputed.setGradient(output.gradient)
            recomputed.backward(seededGradient: ())

            for (input, copy) in zip(inputs, detached) where input.requiresGradient {
                guard let gradient = copy.gradient else { continue }
                let target = input.gradientStorage()
                let source = gradient.floats
                for index in 0..<input.elementCount { target[index] += source[index] }
            }
        }
    }
}
