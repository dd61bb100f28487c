import SwiftLM

/// `swiftlm generate`: continues a prompt and prints only the continuation.
enum GenerateCommand: Command {
    static let name = "generate"
    static let summary = "continue a prompt"
    static let usage = """
        swiftlm generate [--model PATH] --prompt TEXT [options]

        Prints only the generated continuation of TEXT to stdout, token by token.

          --prompt TEXT          the text to continue (special tokens such as <|im_start|> allowed)
        \(SamplingOptions.usage)
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv, valued: SamplingOptions.valued.union(["prompt"]), flags: ["verbose"])
        let prompt = try arguments.requiredString("prompt")
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        let sampling = try SamplingOptions.sampling(arguments)
        let maxTokens = try SamplingOptions.maxTokens(arguments)
        let threads = try SamplingOptions.threads(arguments)

        let model = try LoadedModel(arguments)
        let tokens = model.tokenizer.encode(prompt)
        guard !tokens.isEmpty else { throw ModelError.emptyPrompt }
        let context = try SamplingOptions.context(
            for: model, promptTokens: tokens.count, maxTokens: maxTokens, threads: threads)

        let generator = Generator(tokenizer: model.tokenizer, context: context)
        _ = try SamplingOptions.streamAnswer(
            generator, prompt: tokens, maxTokens: maxTokens, sampling: sampling,
            arguments: arguments)
    }
}
