import SwiftLM

/// The options shared by the commands that generate text.
enum SamplingOptions {
    static let valued: Set<String> = [
        "model", "max-tokens", "temperature", "top-k", "top-p", "min-p", "repeat-penalty", "seed",
        "threads", "stop", "adapter",
    ]

    static let usage = [
        "  --model PATH           GGUF model file (default: the default model)",
        LoadedModel.usage,
        "  --max-tokens N         tokens to generate at most (default 128)",
        "  --temperature T        0 is greedy (default 0.8)",
        "  --top-k K              keep the K most likely tokens, 0 keeps all (default 40)",
        "  --top-p P              nucleus sampling threshold (default 0.95)",
        "  --min-p P              drop tokens below P times the top probability (default 0.05)",
        "  --repeat-penalty R     penalty on the last 64 tokens, 1 is off (default 1.0)",
        "  --seed S               random seed of the sampler (default 0)",
        "  --stop TEXT            stop when TEXT appears (not printed)",
        "  --threads N            threads to use (default: all cores)",
        "  --verbose              print prefill and decode speed to stderr",
    ].joined(separator: "\n")

    static func sampling(_ arguments: Arguments) throws -> SamplingParameters {
        SamplingParameters(
            temperature: try arguments.float("temperature", default: 0.8, range: 0...100),
            topK: try arguments.int("top-k", default: 40, range: 0...Int(Int32.max)),
            topP: try arguments.float("top-p", default: 0.95, range: 0...1),
            minP: try arguments.float("min-p", default: 0.05, range: 0...1),
            repetitionPenalty: try arguments.float("repeat-penalty", default: 1, range: 0.01...100),
            seed: UInt64(try arguments.int("seed", default: 0, range: 0...Int.max)))
    }

    static func maxTokens(_ arguments: Arguments) throws -> Int {
        try arguments.int("max-tokens", default: 128, range: 1...1_000_000)
    }

    static func threads(_ arguments: Arguments) throws -> Int {
        try arguments.int("threads", default: ThreadPool.defaultThreadCount, range: 1...512)
    }

    /// An inference context with room for the prompt and the answer, within the model's context.
    static func context(
        for model: LoadedModel, promptTokens: Int, maxTokens: Int, threads: Int
    ) throws -> InferenceContext {
        let contextLength = model.config.contextLength - (model.virtualPrefix?.length ?? 0)
        guard promptTokens < contextLength else {
            throw ModelError.contextOverflow(tokens: promptTokens, contextLength: contextLength)
        }
        return try model.context(
            contextLength: min(contextLength, promptTokens + maxTokens), threads: threads)
    }

    /// Generates an answer to `prompt`, streaming it to stdout, then a newline, and the speed
    /// to stderr with `--verbose`. The generate and chat commands share it.
    static func streamAnswer(
        _ generator: Generator, prompt: [Int], maxTokens: Int, sampling: SamplingParameters,
        arguments: Arguments
    ) throws -> GenerationResult {
        let result = try generator.generate(
            prompt: prompt, maxTokens: maxTokens, sampling: sampling,
            stopStrings: arguments.string("stop").map { [$0] } ?? []
        ) { text in
            printStreamed(text)
            return true
        }
        printStreamed("\n")
        if arguments.flag("verbose") { reportSpeed(result) }
        return result
    }

    static func reportSpeed(_ result: GenerationResult) {
        let prefill = String(format: "%.1f", result.prefillTokensPerSecond)
        let decode = String(format: "%.1f", result.decodeTokensPerSecond)
        printError(
            "prefill: \(result.promptTokenCount) tokens "
                + "(\(result.reusedPromptTokenCount) reused from the cache), \(prefill) tokens/s; "
                + "decode: \(result.tokens.count) tokens, \(decode) tokens/s; "
                + "stop: \(result.stopReason.rawValue)")
    }
}
