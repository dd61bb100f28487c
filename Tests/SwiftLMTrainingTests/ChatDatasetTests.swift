import Foundation
import SwiftLMCore
import SwiftLMTokenizers
import Testing

@testable import SwiftLMTraining

@Suite("Chat data: loss on the assistant's tokens only")
struct ChatDatasetTests {
    /// ChatML, the template family of the default model.
    static let template = try! ChatTemplate(
        source: """
            {% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + \
            message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt \
            %}{{ '<|im_start|>assistant\\n' }}{% endif %}
            """)
    static let tokenizer = try! Tokenizer(vocabulary: .byteLevel())

    static func text(_ ids: [Int]) -> String {
        String(decoding: ids.map { UInt8($0) }, as: UTF8.self)
    }

    @Test("only the replies and their end-of-turn marks are trained, in every turn")
    func assistantMask() throws {
        let messages = [
            ChatMessage(role: "system", content: "Be brief."),
            ChatMessage(role: "user", content: "Hi"),
            ChatMessage(role: "assistant", content: "Hello"),
            ChatMessage(role: "user", content: "Bye"),
            ChatMessage(role: "assistant", content: "Ciao"),
        ]
        let example = try ChatExample.encode(
            messages, template: Self.template, tokenizer: Self.tokenizer)
        // The byte-level tokenizer makes one token per byte, so the text shows the mask.
        #expect(
            Self.text(example.tokens)
                == (try Self.template.render(
                    messages: messages, addGenerationPrompt: false)))
        let trained = Self.text(zip(example.tokens, example.trained).filter(\.1).map(\.0))
        #expect(trained == "Hello<|im_end|>\nCiao<|im_end|>\n")

        // Target t is token t + 1 where that one is trained, ignored elsewhere and in padding.
        let short = ChatExample(tokens: [5, 6, 7], trained: [false, false, true])
        let batch = ChatDataset.batch([example, short], seqLen: 1000)
        #expect(batch.seqLen == example.tokens.count - 1)
        let second = Array(batch.targets[batch.seqLen...])
        #expect(second[0] == Ops.ignoredTarget && second[1] == 7)
        #expect(second[2...].allSatisfy { $0 == Ops.ignoredTarget })
        #expect(batch.targets.filter { $0 != Ops.ignoredTarget }.count == trained.utf8.count + 1)
    }

    static func error(_ lines: [String]) -> String {
        let path = NSTemporaryDirectory() + "chat-\(UUID().uuidString).jsonl"
        _ = FileManager.default.createFile(
            atPath: path, contents: Data(lines.joined(separator: "\n").utf8))
        do {
            _ = try ChatDataset(path: path, template: template, tokenizer: tokenizer)
            return "no error"
        } catch {
            return "\(error)".replacingOccurrences(of: path, with: "FILE")
        }
    }

    @Test("malformed lines are reported with their line number")
    func malformedLines() {
        let good =
            #"{"messages": [{"role": "user", "content": "a"}, "#
            + #"{"role": "assistant", "content": "b"}]}"#
        #expect(Self.error([good, good, "{oops"]) == "FILE:3: not valid JSON")
        #expect(Self.error([good, "", #"{"text": "x"}"#]) == #"FILE:3: no "messages" key"#)
        #expect(
            Self.error([#"{"messages": [{"role": "user"}]}"#])
                == #"FILE:1: message 0 needs string "role" and "content""#)
        #expect(
            Self.error([good, #"{"messages": [{"role": "user", "content": "only a question"}]}"#])
                == "FILE:2: no assistant message, so nothing to learn")
        #expect(
            Self.error([#"{"messages": [{"role": "robot", "content": "x"}]}"#])
                == "FILE:1: message 0 has role 'robot' (system, user or assistant)")
        #expect(Self.error([good]).contains("holds 1 conversation(s)"))
        #expect(Self.error([good, good]) == "no error")
    }
}
