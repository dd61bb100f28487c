import Foundation
import SwiftLM

/// `swiftlm perplexity`: scores a text file as llama.cpp's perplexity tool does.
enum PerplexityCommand: Command {
    static let name = "perplexity"
    static let summary = "measure the perplexity of a text file"
    static let usage = """
        swiftlm perplexity [--model PATH] [--adapter DIR] --file PATH [--context N]
                           [--threads N] [--rope-scaling KIND[:FACTOR[:ORIGINAL]]]

        Scores the file in consecutive windows of N tokens (default 512), counting the second
        half of each, like llama.cpp's perplexity tool. --rope-scaling replaces the model's RoPE
        scaling (none, linear, ntk, yarn; FACTOR default 1, ORIGINAL the model's context length)
        and lets --context run past the model's context length, to measure how a model reaches
        beyond the length it was trained on. Progress goes to stderr; the last line
        of stdout is JSON: {"tokens": n, "perplexity": x, "scored": s, "windows": w}, where n
        counts every token of the file and s the tokens whose likelihood was scored.
        --adapter DIR applies a PEFT adapter (LoRA, prefix or prompt tuning); a prefix or
        prompt adapter's virtual tokens come before every window.
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv, valued: ["model", "adapter", "file", "context", "threads", "rope-scaling"],
            flags: [])
        let path = try arguments.requiredString("file")
        let windowLength = try arguments.int("context", default: 512, range: 4...1_048_576)
        let threads = try SamplingOptions.threads(arguments)
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw UsageError("cannot read \(path): \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw UsageError("\(path) is not UTF-8 text")
        }

        let model = try LoadedModel(arguments)
        var decoder = model.model
        if let text = arguments.string("rope-scaling") {
            decoder = try rescaled(decoder, text, contextLength: windowLength)
        }
        guard windowLength <= decoder.config.contextLength else {
            throw UsageError(
                "--context \(windowLength) exceeds the model's context length "
                    + "\(decoder.config.contextLength) (--rope-scaling lets it run further)")
        }
        let tokenizer = model.tokenizer
        let tokens = tokenizer.encode(text)
        let context = try model.context(
            contextLength: windowLength, threads: threads, model: decoder)

        let windows = tokens.count / windowLength
        let bar = ProgressBar(total: windows, unit: "windows")
        let addsBOS = tokens.first == tokenizer.bosTokenID && tokenizer.bosTokenID != nil
        let result = try perplexity(
            of: tokens, windowLength: windowLength, context: context,
            bosTokenID: addsBOS ? tokenizer.bosTokenID : nil
        ) { done, _ in bar.update(done) }

        let value = String(format: "%.4f", result.perplexity)
        print(
            "{\"tokens\": \(result.tokens), \"perplexity\": \(value), "
                + "\"scored\": \(result.scored), \"windows\": \(result.windows)}")
    }

    /// The same weights with another RoPE scaling, and a context length of at least
    /// `contextLength`.
    private static func rescaled(
        _ model: LlamaModel, _ text: String, contextLength: Int
    ) throws -> LlamaModel {
        let parts = text.split(separator: ":").map(String.init)
        guard (1...3).contains(parts.count), let factor = Float(parts.count > 1 ? parts[1] : "1"),
            factor > 0
        else {
            throw UsageError("--rope-scaling must be KIND[:FACTOR[:ORIGINAL]], got '\(text)'")
        }
        var config = model.config
        let original = parts.count > 2 ? Int(parts[2]) : config.contextLength
        guard let original, original > 0 else {
            throw UsageError("--rope-scaling: ORIGINAL must be a positive integer in '\(text)'")
        }
        switch parts[0] {
        case "none": config.ropeScaling = .none
        case "linear": config.ropeScaling = .linear(factor: factor)
        case "ntk": config.ropeScaling = .ntkAware(factor: factor)
        case "yarn": config.ropeScaling = .yarn(factor: factor, originalContextLength: original)
        default:
            throw UsageError(
                "--rope-scaling kind must be none, linear, ntk or yarn, got '\(parts[0])'")
        }
        config.contextLength = max(config.contextLength, contextLength)
        try config.validate()
        return LlamaModel(
            config: config, tokenEmbedding: model.tokenEmbedding, blocks: model.blocks,
            outputNorm: model.outputNorm, output: model.output)
    }
}
