import Foundation
import SwiftLM

/// `swiftlm info`: what a model file holds, in a short table.
enum InfoCommand: Command {
    static let name = "info"
    static let summary = "show a model's architecture, sizes, tensor types and template"
    static let usage = """
        swiftlm info [--model PATH] [--json]

          --model PATH     GGUF model file (default: the default model)
          --json           print one JSON object instead of the table
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(argv, valued: ["model"], flags: ["json"])
        let model = try ModelLocation.open(arguments)
        let config = model.config
        let file = model.file

        var typeCounts: [String: Int] = [:]
        for tensor in file.tensors { typeCounts["\(tensor.type)", default: 0] += 1 }
        let types = typeCounts.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }
        let parameters = file.tensors.reduce(0) { $0 + $1.elementCount }
        let fileBytes =
            (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0
        let template = model.chatTemplateSource.map { templateFamily($0) } ?? "none"

        let rows: [(String, String)] = [
            ("name", file.metadata["general.name"]?.string ?? "?"),
            ("architecture", file.architecture ?? "?"),
            ("GGUF version", "\(file.version)"),
            ("file size", String(format: "%.1f MB", Double(fileBytes) / 1e6)),
            ("parameters", String(format: "%.1f M", Double(parameters) / 1e6)),
            ("layers", "\(config.layerCount)"),
            ("hidden", "\(config.hidden)"),
            ("intermediate", "\(config.intermediate)"),
            ("heads", "\(config.headCount) query, \(config.kvHeadCount) key/value"),
            ("head dim", "\(config.headDim)"),
            ("context length", "\(config.contextLength)"),
            ("RoPE", "base \(config.ropeBase), \(config.ropeDims) dims" + scalingNote(config)),
            (
                "vocabulary",
                "\(config.vocabSize) tokens, "
                    + (file.metadata["tokenizer.ggml.model"]?.string ?? "?") + " / "
                    + (file.metadata["tokenizer.ggml.pre"]?.string ?? "default")
            ),
            ("embeddings", config.tiedEmbeddings ? "tied" : "separate output head"),
            ("tensor types", types.joined(separator: ", ")),
            ("chat template", template),
        ]
        if arguments.flag("json") {
            let object: [String: Any] = [
                "name": file.metadata["general.name"]?.string ?? "",
                "architecture": file.architecture ?? "",
                "gguf_version": file.version,
                "file_bytes": fileBytes,
                "parameters": parameters,
                "layer_count": config.layerCount,
                "hidden": config.hidden,
                "intermediate": config.intermediate,
                "head_count": config.headCount,
                "kv_head_count": config.kvHeadCount,
                "head_dim": config.headDim,
                "context_length": config.contextLength,
                "rope_base": config.ropeBase,
                "rope_scaling": config.ropeScaling.kind.rawValue,
                "rope_scaling_factor": config.ropeScaling.factor,
                "vocab_size": config.vocabSize,
                "tied_embeddings": config.tiedEmbeddings,
                "tensor_types": typeCounts,
                "chat_template": template,
            ]
            let data = try JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for (key, value) in rows {
            print(key.padding(toLength: 16, withPad: " ", startingAt: 0) + value)
        }
    }

    /// A name for the template's family, by the markers it writes.
    private static func templateFamily(_ source: String) -> String {
        if source.contains("<|im_start|>") { return "ChatML" }
        if source.contains("[INST]") { return "Llama-2 / Mistral [INST]" }
        if source.contains("<|start_header_id|>") { return "Llama-3" }
        if source.contains("<start_of_turn>") { return "Gemma" }
        return "custom"
    }

    /// ", linear ×4" or ", yarn ×4 from 4096", or nothing for unscaled RoPE.
    private static func scalingNote(_ config: LlamaConfig) -> String {
        let scaling = config.ropeScaling
        switch scaling.kind {
        case .none: return ""
        case .linear, .ntkAware: return ", \(scaling.kind.rawValue) ×\(scaling.factor)"
        case .yarn:
            return ", yarn ×\(scaling.factor) from \(scaling.originalContextLength)"
        }
    }
}
