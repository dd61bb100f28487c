import Foundation
import SwiftLMCore
import SwiftLMTokenizers

/// One conversation as the model sees it: token ids, and which of them the loss counts (the
/// assistant's replies, each with its end-of-turn token, so the model learns to stop).
public struct ChatExample: Sendable, Equatable {
    public var tokens: [Int]
    /// `trained[t]`: token `t` is one the model must predict.
    public var trained: [Bool]

    /// Renders `messages` with the model's chat template and tokenizes it turn by turn: the
    /// text before each assistant reply (rendered with the generation prompt, exactly what
    /// inference feeds) is context, the reply is trained.
    public static func encode(
        _ messages: [ChatMessage], template: ChatTemplate, tokenizer: Tokenizer
    ) throws -> ChatExample {
        var example = ChatExample(tokens: [], trained: [])
        var covered = ""
        func append(_ text: Substring, trained: Bool) {
            let ids = tokenizer.encode(String(text), addSpecial: example.tokens.isEmpty)
            example.tokens += ids
            example.trained += Array(repeating: trained, count: ids.count)
        }

        for index in messages.indices where messages[index].role == "assistant" {
            let before = try template.render(
                messages: Array(messages[..<index]), addGenerationPrompt: true)
            let through = try template.render(
                messages: Array(messages[...index]), addGenerationPrompt: false)
            guard before.hasPrefix(covered), through.hasPrefix(before) else {
                throw ChatDataError.templateNotIncremental
            }
            append(before.dropFirst(covered.count), trained: false)
            append(through.dropFirst(before.count), trained: true)
            covered = through
        }
        return example
    }
}

/// Supervised chat data: a JSONL file with one conversation per line,
/// `{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", ...}]}`, the
/// format of OpenAI's fine-tuning files and of Hugging Face TRL's `messages` datasets.
///
/// The last `validationFraction` of the conversations (at least one) are held out. A batch
/// pads its sequences to the longest one it holds (at most `seqLen + 1` tokens, longer ones are
/// cut), and padding predicts nothing.
public struct ChatDataset: TrainingData, Sendable {
    public let training: [ChatExample]
    public let validation: [ChatExample]

    public var trainingTokenCount: Int { training.reduce(0) { $0 + $1.tokens.count } }

    public init(training: [ChatExample], validation: [ChatExample]) {
        self.training = training
        self.validation = validation
    }

    /// Reads and encodes the file at `path`. Throws naming the line of the first malformed
    /// conversation.
    public init(
        path: String, template: ChatTemplate, tokenizer: Tokenizer,
        validationFraction: Double = 0.1
    ) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ChatDataError.unreadable(path: path)
        }
        var examples: [ChatExample] = []
        let lines = String(decoding: data, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() {
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            let messages = try Self.messages(in: line, path: path, line: index + 1)
            do {
                examples.append(
                    try ChatExample.encode(messages, template: template, tokenizer: tokenizer))
            } catch let error as ChatTemplateError {
                throw ChatDataError.malformed(
                    path: path, line: index + 1, reason: "the chat template failed: \(error)")
            }
        }
        guard examples.count >= 2 else {
            throw ChatDataError.tooFew(path: path, count: examples.count)
        }
        let held = min(examples.count - 1, max(1, Int(Double(examples.count) * validationFraction)))
        training = Array(examples.dropLast(held))
        validation = Array(examples.suffix(held))
    }

    /// The messages of one JSONL line.
    public static func messages(
        in line: Substring, path: String, line number: Int
    ) throws
        -> [ChatMessage]
    {
        func fail(_ reason: String) -> ChatDataError {
            .malformed(path: path, line: number, reason: reason)
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        } catch {
            throw fail("not valid JSON")
        }
        guard let record = object as? [String: Any] else { throw fail("not a JSON object") }
        guard let list = record["messages"] else { throw fail("no \"messages\" key") }
        guard let entries = list as? [Any], !entries.isEmpty else {
            throw fail("\"messages\" is not a non-empty array")
        }
        let messages = try entries.enumerated().map { index, entry in
            guard let message = entry as? [String: Any], let role = message["role"] as? String,
                let content = message["content"] as? String
            else {
                throw fail("message \(index) needs string \"role\" and \"content\"")
            }
            guard ["system", "user", "assistant"].contains(role) else {
                throw fail("message \(index) has role '\(role)' (system, user or assistant)")
            }
            return ChatMessage(role: role, content: content)
        }
        guard messages.contains(where: { $0.role == "assistant" }) else {
            throw fail("no assistant message, so nothing to learn")
        }
        return messages
    }

    /// Conversations longer than `seqLen + 1` tokens, which batches cut.
    public func truncatedCount(seqLen: Int) -> Int {
        (training + validation).filter { $0.tokens.count > seqLen + 1 }.count
    }

    public func trainingBatch(
        batchSize: Int, seqLen: Int, random: inout TrainingRandom
    ) -> TrainingBatch {
        let picks = (0..<batchSize).map { _ in
            training[Int(uniform(below: UInt64(training.count), using: &random))]
        }
        return Self.batch(picks, seqLen: seqLen)
    }

    public func validationSet(batchSize: Int, seqLen: Int, maxBatches: Int) -> [TrainingBatch] {
        stride(from: 0, to: validation.count, by: batchSize).prefix(maxBatches).map { first in
            Self.batch(
                Array(validation[first..<min(first + batchSize, validation.count)]),
                seqLen: seqLen)
        }
    }

    /// `[count, length]` inputs and targets, `length` the longest example's (at most
    /// `seqLen`); target `t` is token `t + 1` where that token is trained.
    static func batch(_ examples: [ChatExample], seqLen: Int) -> TrainingBatch {
        let length = max(1, min(seqLen, examples.map { $0.tokens.count - 1 }.max() ?? 1))
        var inputs = [Int](repeating: 0, count: examples.count * length)
        var targets = [Int](repeating: Ops.ignoredTarget, count: examples.count * length)
        for (row, example) in examples.enumerated() {
            for position in 0..<min(length, example.tokens.count) {
                inputs[row * length + position] = example.tokens[position]
                let next = position + 1
                if next < example.tokens.count && example.trained[next] {
                    targets[row * length + position] = example.tokens[next]
                }
            }
        }
        return TrainingBatch(inputs: inputs, targets: targets, seqLen: length)
    }
}

/// Why chat data could not be used; one line naming the file and line.
public enum ChatDataError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String)
    case malformed(path: String, line: Int, reason: String)
    case tooFew(path: String, count: Int)
    case templateNotIncremental

    public var description: String {
        switch self {
        case .unreadable(let path):
            return "cannot read the chat data file \(path)"
        case .malformed(let path, let line, let reason):
            return "\(path):\(line): \(reason)"
        case .tooFew(let path, let count):
            return "\(path) holds \(count) conversation(s); training and validation need 2"
        case .templateNotIncremental:
            return "the chat template renders a conversation differently from its start, so "
                + "the assistant's tokens cannot be told apart"
        }
    }
}
