import Foundation
import SwiftLM

/// How each command opens its model.
enum ModelLocation {
    /// Opens `--model PATH`, or the default model with a hint when it is absent.
    static func open(_ arguments: Arguments) throws -> PretrainedModel {
        if let path = arguments.string("model") { return try PretrainedModel(path: path) }
        let path = DefaultModel.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw UsageError(
                "the default model is not at \(path); run scripts/fetch-model or pass --model PATH")
        }
        return try PretrainedModel(path: path)
    }
}

/// A model as a command runs it: the file, and its weights and virtual tokens after an
/// optional `--adapter DIR` (a PEFT folder; LoRA is merged into the weights at load).
struct LoadedModel {
    let file: PretrainedModel
    let model: LlamaModel
    let virtualPrefix: VirtualPrefix?

    var tokenizer: Tokenizer { file.tokenizer }
    var config: LlamaConfig { model.config }

    /// Opens `--model` (or the default model) and applies `--adapter` when given.
    init(_ arguments: Arguments) throws {
        file = try ModelLocation.open(arguments)
        guard let directory = arguments.string("adapter") else {
            model = file.model
            virtualPrefix = nil
            return
        }
        let adapter = try PEFTAdapterFile.read(directory: directory, config: file.config)
        model = adapter.merged(into: file.model)
        virtualPrefix = adapter.virtualPrefix
    }

    /// A context of `contextLength` positions for tokens (at most the model's), plus the
    /// adapter's virtual tokens in front of every sequence.
    func context(
        contextLength: Int, threads: Int, model: LlamaModel? = nil
    ) throws -> InferenceContext {
        let model = model ?? self.model
        let virtual = virtualPrefix?.length ?? 0
        let context = InferenceContext(
            model: model, contextLength: min(model.config.contextLength, contextLength + virtual),
            threadCount: threads)
        try context.setVirtualPrefix(virtualPrefix)
        return context
    }

    static let usage =
        "  --adapter DIR          apply a PEFT adapter (LoRA, prefix or prompt tuning)"
}
