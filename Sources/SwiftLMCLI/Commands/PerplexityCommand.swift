import Foundation
import SwiftLM

/// `swiftlm perplexity`: scores a text file as llama.cpp's perplexity tool does.
enum PerplexityCommand: Command {
    static let name = "perplexity"
    static let summary = "measure the perplexity of a text file"
    static let usage = """
        swiftlm perplexity [--model PATH] --file PATH [--context N] [--threads N]

        Scores the file in consecutive windows of N tokens (default 512), counting the second
        half of each, like llama.cpp's perplexity tool. Progress goes to stderr; the last line
        of stdout is JSON: {"tokens": n, "perplexity": x, "scored": s, "windows": w}, where n
        counts every token of the file and s the tokens whose likelihood was scored.
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv, valued: ["model", "file", "context", "threads"], flags: [])
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

        let model = try ModelLocation.open(arguments)
        guard windowLength <= model.config.contextLength else {
            throw UsageError(
                "--context \(windowLength) exceeds the model's context length "
                    + "\(model.config.contextLength)")
        }
        let tokenizer = model.tokenizer
        let tokens = tokenizer.encode(text)
        let context = InferenceContext(
            model: model.model, contextLength: windowLength, threadCount: threads)

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
}
