import Foundation
import SwiftLMCore
import SwiftLMFormats
import SwiftLMModels

/// Everything a run needs to continue exactly where it stopped, in one safetensors file
/// (`DIR/checkpoint.safetensors`): the weights (`model.<GGUF name>`), the optimizer's state
/// (`optimizer.<name>`), and in the metadata the step, the random generator's state, the model
/// configuration and the training options.
///
/// One file, written to a temporary name, synced and renamed over the old one, so a run killed
/// at any moment leaves either the previous checkpoint or the new one, never half of either.
public struct TrainingCheckpoint {
    public static let fileName = "checkpoint.safetensors"
    static let stateKey = "swiftlm.training_state"

    /// The JSON in the metadata.
    public struct State: Codable, Equatable, Sendable {
        public var formatVersion = 1
        /// Optimizer steps completed.
        public var step: Int
        public var optimizerSteps: Int
        public var random: TrainingRandom
        public var config: LlamaConfig
        public var options: TrainingOptions
        /// Tokens in the training data, to refuse resuming on different data.
        public var dataTokens: Int
        /// The best validation loss so far, and the last one.
        public var lastValidationLoss: Double?
        /// What a fine-tuning run adapts (nil: every weight trains).
        public var adaptation: Adaptation?
    }

    public var state: State
    public var modelTensors: [String: Tensor]
    public var optimizerTensors: [String: Tensor]

    public static func path(in directory: String) -> String {
        (directory as NSString).appendingPathComponent(fileName)
    }

    /// Writes atomically (temporary file, fsync, rename).
    public static func write(
        state: State, model: [(name: String, tensor: Tensor)],
        optimizer: [(name: String, tensor: Tensor)], to path: String
    ) throws {
        let json = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        let tensors =
            model.map { ("model." + $0.name, $0.tensor) }
            + optimizer.map { ("optimizer." + $0.name, $0.tensor) }
        try SafeTensorsWriter.write(tensors, metadata: [stateKey: json], to: path)
    }

    /// Reads and checks a checkpoint; a damaged file throws naming what is wrong.
    public init(path: String) throws {
        let file = try SafeTensorsFile(path: path)
        guard let json = file.metadata[Self.stateKey] else {
            throw TrainingError.checkpoint("\(path) has no \(Self.stateKey) metadata")
        }
        do {
            state = try JSONDecoder().decode(State.self, from: Data(json.utf8))
        } catch {
            throw TrainingError.checkpoint("\(path): unreadable training state (\(error))")
        }
        var model: [String: Tensor] = [:]
        var optimizer: [String: Tensor] = [:]
        for name in file.names {
            if name.hasPrefix("model.") {
                model[String(name.dropFirst(6))] = try file.floatTensor(name)
            } else if name.hasPrefix("optimizer.") {
                optimizer[String(name.dropFirst(10))] = try file.floatTensor(name)
            }
        }
        modelTensors = model
        optimizerTensors = optimizer
    }
}
