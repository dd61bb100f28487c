import Foundation
import SwiftLMModels
import SwiftLMTokenizers

/// Why generation ended.
public enum StopReason: String, Sendable, Codable {
    /// The model produced an end-of-generation token (EOS, EOT, `<|im_end|>`...).
    case endOfGeneration = "stop"
    /// A stop string appeared in the text; it is not part of the result.
    case stopString = "stop_string"
    /// `maxTokens` tokens were produced.
    case maxTokens = "length"
    /// The KV cache is full.
    case contextFull = "context_full"
}

/// What one call to `Generator.generate` produced, with its timing.
public struct GenerationResult: Sendable {
    public var text: String
    public var tokens: [Int]
    public var stopReason: StopReason
    public var promptTokenCount: Int
    /// Leading prompt tokens whose cache was kept from the previous call, not evaluated again.
    public var reusedPromptTokenCount: Int
    public var prefillSeconds: Double
    public var decodeSeconds: Double

    /// Prompt tokens evaluated per second in the prefill.
    public var prefillTokensPerSecond: Double {
        let evaluated = promptTokenCount - reusedPromptTokenCount
        return prefillSeconds > 0 ? Double(evaluated) / prefillSeconds : 0
    }
    /// Generated tokens per second after the first (each of those costs one decode step).
    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 ? Double(max(tokens.count - 1, 0)) / decodeSeconds : 0
    }
}

/// Autoregressive generation: prefill the prompt, then sample one token at a time, streaming
/// text as soon as it forms whole characters and does not start a stop string.
public struct Generator {
    public let tokenizer: Tokenizer
    public let context: InferenceContext

    public init(tokenizer: Tokenizer, context: InferenceContext) {
        self.tokenizer = tokenizer
        self.context = context
    }

    /// Generates a continuation of `prompt` (token ids).
    ///
    /// The context keeps the cache of the longest prefix of `prompt` that it already holds, such
    /// as a chat's earlier turns, and evaluates only the rest; at least the last prompt token is
    /// evaluated, since its logits choose the first answer token.
    ///
    /// - Parameter onText: receives each new piece of text; return false to stop early.
    public func generate(
        prompt: [Int], maxTokens: Int, sampling: SamplingParameters = .greedy,
        stopStrings: [String] = [], onText: (String) -> Bool = { _ in true }
    ) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        guard context.virtualLength + prompt.count < context.contextLength else {
            throw ModelError.contextOverflow(
                tokens: context.virtualLength + prompt.count,
                contextLength: context.contextLength)
        }
        let shared = zip(context.tokens, prompt).prefix { $0 == $1 }.count
        let reused = context.reusablePrefix(min(shared, prompt.count - 1))
        context.truncate(to: reused)

        let prefillStart = Date()
        var logits = try context.evaluate(Array(prompt[reused...]))
        let prefillSeconds = Date().timeIntervalSince(prefillStart)

        var sampler = Sampler(sampling)
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var stream = StopStringFilter(stopStrings: stopStrings)
        var history = prompt
        var generated: [Int] = []
        var stopReason = StopReason.maxTokens
        let decodeStart = Date()

        while generated.count < maxTokens {
            let token = sampler.sample(logits, history: history)
            if tokenizer.isEndOfGeneration(token) {
                stopReason = .endOfGeneration
                break
            }
            generated.append(token)
            history.append(token)

            let (text, hitStop) = stream.push(decoder.append(token))
            if !text.isEmpty && !onText(text) { break }
            if hitStop {
                stopReason = .stopString
                break
            }
            guard generated.count < maxTokens else { break }
            guard context.position < context.contextLength else {
                stopReason = .contextFull
                break
            }
            logits = try context.evaluate([token])
        }

        if stopReason != .stopString {
            let rest = stream.finish(decoder.flush())
            if !rest.isEmpty { _ = onText(rest) }
        }
        return GenerationResult(
            text: stream.emitted, tokens: generated, stopReason: stopReason,
            promptTokenCount: prompt.count, reusedPromptTokenCount: reused,
            prefillSeconds: prefillSeconds,
            decodeSeconds: generated.count > 1 ? Date().timeIntervalSince(decodeStart) : 0)
    }
}

/// Holds back streamed text that might be the start of a stop string, and cuts the text where
/// a stop string appears.
public struct StopStringFilter {
    public let stopStrings: [String]
    /// Everything released so far.
    public private(set) var emitted = ""
    private var pending = ""

    public init(stopStrings: [String]) { self.stopStrings = stopStrings.filter { !$0.isEmpty } }

    /// Adds new text; returns what may be released now and whether a stop string was found.
    public mutating func push(_ text: String) -> (String, Bool) {
        pending += text
        if let cut = stopStrings.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            let ready = String(pending[..<cut])
            pending = ""
            emitted += ready
            return (ready, true)
        }

        // Keep back the longest tail of `pending` that begins some stop string.
        var keep = 0
        for stop in stopStrings {
            for length in stride(from: min(stop.count, pending.count), to: keep, by: -1)
            where pending.hasSuffix(stop.prefix(length)) {
                keep = length
                break
            }
        }
        let ready = String(pending.dropLast(keep))
        pending = String(pending.suffix(keep))
        emitted += ready
        return (ready, false)
    }

    /// Releases whatever is still held back, once no more text will come.
    public mutating func finish(_ text: String) -> String {
        let (ready, hitStop) = push(text)
        if hitStop { return ready }
        let rest = pending
        pending = ""
        emitted += rest
        return ready + rest
    }
}
