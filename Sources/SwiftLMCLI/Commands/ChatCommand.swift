import Foundation
import SwiftLM

/// `swiftlm chat`: a conversation rendered with the model's own chat template.
enum ChatCommand: Command {
    static let name = "chat"
    static let summary = "chat with the model (interactive, or one turn from a pipe)"
    static let usage = """
        swiftlm chat [--model PATH] [--system TEXT] [options]

        On a terminal, reads user turns line by line until end of input or /exit. From a pipe,
        reads all of stdin as one user turn and prints the answer.

          --system TEXT          the system prompt
          --context N            positions the conversation may fill (default: the model's
                                 context length, at most 4096)
          --batch FILE           answer every conversation of a JSONL file of {"messages":
                                 [...]} (the format finetune reads) and print one JSON line
                                 each: {"line", "answer", "expected"}, where expected is the
                                 conversation's final assistant message, left out of the
                                 prompt (null when it ends with the user)
        \(SamplingOptions.usage)
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv, valued: SamplingOptions.valued.union(["system", "context", "batch"]),
            flags: ["verbose"])
        let sampling = try SamplingOptions.sampling(arguments)
        let maxTokens = try SamplingOptions.maxTokens(arguments)
        let threads = try SamplingOptions.threads(arguments)
        let model = try LoadedModel(arguments)
        let template = try model.file.chatTemplate()

        var messages: [ChatMessage] = []
        if let system = arguments.string("system") {
            messages.append(ChatMessage(role: "system", content: system))
        }
        let contextLength = try arguments.int(
            "context", default: min(4096, model.config.contextLength),
            range: 16...model.config.contextLength)
        let context = try model.context(contextLength: contextLength, threads: threads)
        let generator = Generator(tokenizer: model.tokenizer, context: context)

        if let path = arguments.string("batch") {
            try answerAll(path, model, template, generator, sampling, maxTokens)
            return
        }
        let interactive = isatty(STDIN_FILENO) != 0
        if !interactive {
            let input = String(
                decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            let turn = input.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !turn.isEmpty else { throw ModelError.emptyPrompt }
            messages.append(ChatMessage(role: "user", content: turn))
            _ = try answer(messages, model, template, generator, sampling, maxTokens, arguments)
            return
        }

        printError(
            "Chatting with \(model.file.file.metadata["general.name"]?.string ?? "the model"). "
                + "End with Ctrl-D or /exit.")
        while true {
            printError("> ", terminator: "")
            guard let line = readLine(), line != "/exit" else { break }
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            messages.append(ChatMessage(role: "user", content: line))
            let reply = try answer(
                messages, model, template, generator, sampling, maxTokens, arguments)
            messages.append(ChatMessage(role: "assistant", content: reply))
        }
    }

    /// `--batch`: one answer per conversation of a JSONL file, greedy or sampled as asked,
    /// each printed as a JSON line when it is done.
    private static func answerAll(
        _ path: String, _ model: LoadedModel, _ template: ChatTemplate, _ generator: Generator,
        _ sampling: SamplingParameters, _ maxTokens: Int
    ) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("cannot read --batch \(path)")
        }
        let lines = String(decoding: data, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() {
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            var messages = try ChatDataset.messages(in: line, path: path, line: index + 1)
            let expected = messages.last?.role == "assistant" ? messages.removeLast().content : nil
            let tokens = model.tokenizer.encode(
                try template.render(messages: messages, addGenerationPrompt: true))
            let room =
                generator.context.contextLength - generator.context.virtualLength
                - tokens.count
            guard room > 0 else {
                throw UsageError("\(path):\(index + 1): the prompt does not fit the context")
            }
            let result = try generator.generate(
                prompt: tokens, maxTokens: min(maxTokens, room), sampling: sampling)
            let record: [String: Any] = [
                "line": index + 1, "answer": result.text, "expected": expected ?? NSNull(),
            ]
            let json = try JSONSerialization.data(withJSONObject: record, options: .sortedKeys)
            printStreamed(String(decoding: json, as: UTF8.self) + "\n")
        }
    }

    /// Renders the conversation, streams the assistant's answer to stdout and returns it.
    private static func answer(
        _ messages: [ChatMessage], _ model: LoadedModel, _ template: ChatTemplate,
        _ generator: Generator, _ sampling: SamplingParameters, _ maxTokens: Int,
        _ arguments: Arguments
    ) throws -> String {
        let prompt = try template.render(messages: messages, addGenerationPrompt: true)
        let tokens = model.tokenizer.encode(prompt)
        let room = generator.context.contextLength - tokens.count
        guard room > 0 else {
            throw ModelError.contextOverflow(
                tokens: tokens.count, contextLength: generator.context.contextLength)
        }
        return try SamplingOptions.streamAnswer(
            generator, prompt: tokens, maxTokens: min(maxTokens, room), sampling: sampling,
            arguments: arguments
        ).text
    }
}
