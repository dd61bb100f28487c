import Foundation
import SwiftLM

/// `swiftlm merge`: a base model with a LoRA adapter merged into it, as one GGUF file that
/// SwiftLM and llama.cpp run without the adapter.
enum MergeCommand: Command {
    static let name = "merge"
    static let summary = "merge a LoRA adapter into its base model and write a GGUF"
    static let usage = """
        swiftlm merge [--model PATH] --adapter DIR --out FILE.gguf [--type base|f16|f32]

        Writes W + scale·B·A for every adapted weight. --type base (the default) keeps every
        matrix in the base file's type: untouched ones byte for byte, merged ones quantized
        again (F16 where SwiftLM cannot write the base's type, such as the K-quants); f16 and
        f32 write every matrix in that type. Prefix and prompt adapters are not weights and
        cannot be merged: pass them to generate, chat and perplexity with --adapter.
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv, valued: ["model", "adapter", "out", "type"], flags: [])
        let output = try arguments.requiredString("out")
        let type = arguments.string("type") ?? "base"
        guard ["base", "f16", "f32"].contains(type) else {
            throw UsageError("--type must be base, f16 or f32, got '\(type)'")
        }
        let pretrained = try ModelLocation.open(arguments)
        let adapter = try PEFTAdapterFile.read(
            directory: try arguments.requiredString("adapter"), config: pretrained.config)
        guard case .lora(_, let layers) = adapter else {
            throw UsageError(
                "a \(adapter.method) adapter has no weights to merge; use --adapter at run time")
        }

        let merged = adapter.merged(into: pretrained.model)
        let original = Dictionary(
            pretrained.model.namedTensors.map { ($0.name, $0.tensor) }
        ) { first, _ in first }
        var tensors: [(name: String, tensor: Tensor)] = []
        for (name, tensor) in merged.namedTensors {
            switch type {
            case "base" where tensor.type == .f32 && tensor.rank == 2:
                // A merged matrix goes back to the type the base stored it in.
                let baseType = original[name]!.type
                let target = Quantization.canQuantize(baseType) ? baseType : .f16
                tensors.append((name, baseType == .f32 ? tensor : tensor.quantized(to: target)))
            case "base":
                tensors.append((name, tensor))
            default:
                // F32 copies; the writer stores matrices as the requested type.
                let floats =
                    tensor.type == .f32
                    ? tensor : Tensor(shape: tensor.shape, values: tensor.toArray())
                tensors.append((name, floats))
            }
        }
        try ModelFileWriter.write(
            config: merged.config,
            name: (pretrained.file.metadata["general.name"]?.string ?? "model") + " + LoRA",
            tokenizer: ModelFileWriter.tokenizerMetadata(of: pretrained.file), tensors: tensors,
            type: type == "f16" ? .f16 : .f32,
            fileType: type == "base"
                ? pretrained.file.metadata["general.file_type"]?.int.map(UInt32.init) : nil,
            to: output)
        printError("merged \(layers.count) adapted matrices; wrote \(output)")
    }
}
