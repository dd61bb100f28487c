import Foundation
import SwiftLMServing

enum AnswerKind {
    /// `/v1/chat/completions`: `chat.completion` objects with messages and deltas.
    case chat
    /// `/v1/completions`: `text_completion` objects with text.
    case text
}

/// The JSON objects of one answer in OpenAI's shapes, whole or as stream chunks.
struct Answer: Sendable {
    let kind: AnswerKind
    let model: String
    let created: Int
    let includeUsage: Bool
    /// The prompt, for a text completion that asked for `echo`.
    let echo: String?
    let id: String

    init(kind: AnswerKind, model: String, created: Int, includeUsage: Bool, echo: String?) {
        self.kind = kind
        self.model = model
        self.created = created
        self.includeUsage = includeUsage
        self.echo = echo
        let random = (0..<24).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! }
        id = (kind == .chat ? "chatcmpl-" : "cmpl-") + String(random)
    }

    private var object: String { kind == .chat ? "chat.completion" : "text_completion" }
    private var chunkObject: String { kind == .chat ? "chat.completion.chunk" : "text_completion" }

    func whole(_ completion: Completion) -> [String: Any] {
        let choice: [String: Any]
        switch kind {
        case .chat:
            choice = [
                "index": 0, "message": ["role": "assistant", "content": completion.text],
                "finish_reason": completion.finishReason.rawValue, "logprobs": NSNull(),
            ]
        case .text:
            choice = [
                "index": 0, "text": (echo ?? "") + completion.text,
                "finish_reason": completion.finishReason.rawValue, "logprobs": NSNull(),
            ]
        }
        return [
            "id": id, "object": object, "created": created, "model": model,
            "choices": [choice], "usage": usage(completion),
            "system_fingerprint": "swiftlm",
        ]
    }

    /// The first chunk: the assistant's role for chat, the echoed prompt for text.
    func firstChunk() -> [String: Any] {
        switch kind {
        case .chat: return chunk(delta: ["role": "assistant", "content": ""], finish: nil)
        case .text: return chunk(delta: ["text": echo ?? ""], finish: nil)
        }
    }

    func chunk(text: String) -> [String: Any] {
        chunk(delta: kind == .chat ? ["content": text] : ["text": text], finish: nil)
    }

    func lastChunk(_ completion: Completion) -> [String: Any] {
        chunk(delta: kind == .chat ? [:] : ["text": ""], finish: completion.finishReason.rawValue)
    }

    /// The chunk that `stream_options.include_usage` asks for: no choices, the usage.
    func usageChunk(_ completion: Completion) -> [String: Any] {
        [
            "id": id, "object": chunkObject, "created": created, "model": model, "choices": [],
            "usage": usage(completion),
        ]
    }

    private func chunk(delta: [String: Any], finish: String?) -> [String: Any] {
        var choice: [String: Any] = [
            "index": 0, "finish_reason": finish ?? NSNull(), "logprobs": NSNull(),
        ]
        switch kind {
        case .chat: choice["delta"] = delta
        case .text: choice["text"] = delta["text"] ?? ""
        }
        var object: [String: Any] = [
            "id": id, "object": chunkObject, "created": created, "model": model,
            "choices": [choice],
        ]
        if includeUsage { object["usage"] = NSNull() }
        return object
    }

    private func usage(_ completion: Completion) -> [String: Any] {
        [
            "prompt_tokens": completion.promptTokenCount,
            "completion_tokens": completion.tokens.count,
            "total_tokens": completion.promptTokenCount + completion.tokens.count,
            "prompt_tokens_details": ["cached_tokens": completion.cachedPromptTokenCount],
        ]
    }

    /// One server-sent event.
    func event(_ object: [String: Any]) -> String {
        "data: " + String(decoding: encodeJSON(object), as: UTF8.self) + "\n\n"
    }
}
