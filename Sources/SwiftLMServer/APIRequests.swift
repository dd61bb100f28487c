import Foundation
import SwiftLMGeneration
import SwiftLMTokenizers

/// The fields that `/v1/chat/completions` and `/v1/completions` share: the model, sampling,
/// stopping and streaming. Unknown fields are ignored, as OpenAI's own server ignores them
/// for older clients; a known field of the wrong type is refused with its name.
struct CompletionParameters: Decodable {
    var model: String?
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var temperature: Double?
    var topP: Double?
    /// llama.cpp's extensions, which its clients send.
    var topK: Int?
    var minP: Double?
    var repeatPenalty: Double?
    var seed: Int?
    var stop: [String]
    var stream: Bool
    var includeUsage: Bool
    var n: Int?
    /// Larger runs first (vLLM's extension; OpenAI has none).
    var priority: Int

    enum CodingKeys: String, CodingKey {
        case model, temperature, seed, stop, stream, n, priority
        case maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens"
        case topP = "top_p"
        case topK = "top_k"
        case minP = "min_p"
        case repeatPenalty = "repeat_penalty"
        case streamOptions = "stream_options"
    }

    struct StreamOptions: Decodable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        maxCompletionTokens = try c.decodeIfPresent(Int.self, forKey: .maxCompletionTokens)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        topK = try c.decodeIfPresent(Int.self, forKey: .topK)
        minP = try c.decodeIfPresent(Double.self, forKey: .minP)
        repeatPenalty = try c.decodeIfPresent(Double.self, forKey: .repeatPenalty)
        seed = try c.decodeIfPresent(Int.self, forKey: .seed)
        n = try c.decodeIfPresent(Int.self, forKey: .n)
        priority = try c.decodeIfPresent(Int.self, forKey: .priority) ?? 0
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream) ?? false
        includeUsage =
            try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)?.includeUsage
            ?? false
        // `stop` is a string or an array of strings.
        if let one = try? c.decodeIfPresent(String.self, forKey: .stop) {
            stop = [one]
        } else {
            stop = try c.decodeIfPresent([String].self, forKey: .stop) ?? []
        }
    }

    /// Checks the ranges OpenAI documents and builds the sampler's settings. An absent seed
    /// draws one, so unseeded requests differ as clients expect.
    func sampling() throws(APIError) -> SamplingParameters {
        if let temperature, !(0...2).contains(temperature) {
            throw .invalid(
                "temperature \(temperature) is outside 0...2", param: "temperature")
        }
        if let topP, !(0...1).contains(topP) {
            throw .invalid("top_p \(topP) is outside 0...1", param: "top_p")
        }
        if let topK, topK < 0 { throw .invalid("top_k \(topK) is negative", param: "top_k") }
        if let minP, !(0...1).contains(minP) {
            throw .invalid("min_p \(minP) is outside 0...1", param: "min_p")
        }
        if let repeatPenalty, repeatPenalty <= 0 {
            throw .invalid(
                "repeat_penalty \(repeatPenalty) must be positive", param: "repeat_penalty")
        }
        if let n, n != 1 {
            throw .invalid("unsupported: n = \(n); this server returns one choice", param: "n")
        }
        if stop.count > 4 {
            throw .invalid("stop holds \(stop.count) strings; at most 4 are allowed", param: "stop")
        }
        // OpenAI's defaults: temperature 1, no truncation of the distribution.
        return SamplingParameters(
            temperature: Float(temperature ?? 1), topK: topK ?? 0, topP: Float(topP ?? 1),
            minP: Float(minP ?? 0), repetitionPenalty: Float(repeatPenalty ?? 1),
            seed: seed.map { UInt64(bitPattern: Int64($0)) } ?? UInt64.random(in: 0...UInt64.max))
    }

    /// `max_completion_tokens` (the newer name) or `max_tokens`, if either was sent.
    var requestedMaxTokens: (value: Int, param: String)? {
        if let maxCompletionTokens { return (maxCompletionTokens, "max_completion_tokens") }
        if let maxTokens { return (maxTokens, "max_tokens") }
        return nil
    }
}

/// `POST /v1/chat/completions`.
struct ChatCompletionBody: Decodable {
    var messages: [ChatMessage]
    var parameters: CompletionParameters

    enum CodingKeys: String, CodingKey { case messages }

    struct Message: Decodable {
        var role: String
        var content: String

        enum CodingKeys: String, CodingKey { case role, content }
        struct Part: Decodable {
            var type: String
            var text: String?
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            // Content is a string, or an array of parts of which only text is understood.
            if let text = try? c.decodeIfPresent(String.self, forKey: .content) {
                content = text
            } else if let parts = try c.decodeIfPresent([Part].self, forKey: .content) {
                guard parts.allSatisfy({ $0.type == "text" }) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: .content, in: c,
                        debugDescription: "unsupported: content parts other than text")
                }
                content = parts.compactMap(\.text).joined()
            } else {
                content = ""
            }
        }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = try c.decode([Message].self, forKey: .messages).map {
            ChatMessage(role: $0.role, content: $0.content)
        }
        parameters = try CompletionParameters(from: decoder)
    }
}

/// `POST /v1/completions`: the prompt is a string, a one-element array of strings, or an
/// array of token ids.
struct CompletionBody: Decodable {
    enum Prompt {
        case text(String)
        case tokens([Int])
    }
    var prompt: Prompt
    var echo: Bool
    var parameters: CompletionParameters

    enum CodingKeys: String, CodingKey { case prompt, echo }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try? c.decode(String.self, forKey: .prompt) {
            prompt = .text(text)
        } else if let tokens = try? c.decode([Int].self, forKey: .prompt) {
            prompt = .tokens(tokens)
        } else if let texts = try? c.decode([String].self, forKey: .prompt) {
            guard texts.count == 1 else {
                throw DecodingError.dataCorruptedError(
                    forKey: .prompt, in: c,
                    debugDescription: "unsupported: \(texts.count) prompts in one request")
            }
            prompt = .text(texts[0])
        } else {
            throw DecodingError.dataCorruptedError(
                forKey: .prompt, in: c,
                debugDescription: "must be a string or an array of token ids")
        }
        echo = try c.decodeIfPresent(Bool.self, forKey: .echo) ?? false
        parameters = try CompletionParameters(from: decoder)
    }
}

/// Decodes a request body, turning JSON and type errors into one-line API errors that name
/// the field.
func decodeBody<Body: Decodable>(_ type: Body.Type, from data: Data) throws(APIError) -> Body {
    do {
        return try JSONDecoder().decode(type, from: data)
    } catch let error as DecodingError {
        throw describe(error)
    } catch {
        throw .invalid("malformed JSON: \(error.localizedDescription)")
    }
}

private func describe(_ error: DecodingError) -> APIError {
    func field(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            .trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }
    switch error {
    case .typeMismatch(let type, let context):
        let name = field(context.codingPath)
        return .invalid(
            "'\(name)' has the wrong type: expected \(jsonName(type))", param: name)
    case .valueNotFound(let type, let context):
        let name = field(context.codingPath)
        return .invalid("'\(name)' is null: expected \(jsonName(type))", param: name)
    case .keyNotFound(let key, let context):
        let name = field(context.codingPath + [key])
        return .invalid("'\(name)' is required", param: name)
    case .dataCorrupted(let context):
        if context.codingPath.isEmpty {
            return .invalid("malformed JSON: the body is not a JSON object")
        }
        let name = field(context.codingPath)
        return .invalid("'\(name)': \(context.debugDescription)", param: name)
    @unknown default:
        return .invalid("malformed request")
    }
}

private func jsonName(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: return "a string"
    case is Int.Type: return "an integer"
    case is Double.Type: return "a number"
    case is Bool.Type: return "a boolean"
    case is [Any].Type: return "an array"
    default: return "an object"
    }
}
