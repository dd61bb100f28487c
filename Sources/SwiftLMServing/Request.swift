import Foundation
import SwiftLMGeneration

/// What a client asks the engine for: a continuation of `prompt` (token ids).
public struct GenerationRequest: Sendable {
    public var prompt: [Int]
    /// Tokens generated at most.
    public var maxTokens: Int
    /// Temperature, top-k/p, min-p, repetition penalty and seed, per request.
    public var sampling: SamplingParameters
    /// Strings that end the answer where they appear (they are not part of it).
    public var stopStrings: [String]
    /// Larger runs first; when memory runs out, the lowest is preempted first.
    public var priority: Int

    public init(
        prompt: [Int], maxTokens: Int, sampling: SamplingParameters = .greedy,
        stopStrings: [String] = [], priority: Int = 0
    ) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopStrings = stopStrings
        self.priority = priority
    }
}

/// Why a request ended; the raw values are the OpenAI API's `finish_reason`.
public enum FinishReason: String, Sendable, Codable {
    /// An end-of-generation token or a stop string.
    case stop
    /// `maxTokens` reached, or the sequence filled the context.
    case length
    /// Cancelled by the client (or by a shutdown) before it finished.
    case cancelled
}

/// The whole answer to a request.
public struct Completion: Sendable {
    public var text: String
    public var tokens: [Int]
    public var finishReason: FinishReason
    public var promptTokenCount: Int
    /// Prompt tokens whose keys and values came from the prefix cache.
    public var cachedPromptTokenCount: Int
    /// Seconds from submission to the first generated token (nil when none was generated).
    public var timeToFirstToken: Double?
    /// Times the request was preempted and its cache recomputed.
    public var preemptionCount: Int
}

/// What the engine tells a request's owner, in order, from the engine's thread: pieces of
/// text as they form, then exactly one `finished`.
public enum RequestEvent: Sendable {
    case text(String)
    case finished(Completion)
}

/// Why the engine refused a request.
public enum EngineError: Error, Equatable, CustomStringConvertible {
    case emptyPrompt
    case promptTooLong(tokens: Int, contextLength: Int)
    case tokenOutOfRange(id: Int, vocabSize: Int)
    case maxTokensOutOfRange(Int, allowed: ClosedRange<Int>)
    /// The prompt needs more KV blocks than the whole cache has.
    case promptExceedsCache(blocks: Int, blockCount: Int)
    case queueFull(capacity: Int)
    case shuttingDown

    public var description: String {
        switch self {
        case .emptyPrompt:
            return "the prompt is empty"
        case .promptTooLong(let tokens, let contextLength):
            return "the prompt has \(tokens) tokens; the context holds \(contextLength), "
                + "including at least one generated token"
        case .tokenOutOfRange(let id, let vocabSize):
            return "token id \(id) is outside the vocabulary (0..<\(vocabSize))"
        case .maxTokensOutOfRange(let value, let allowed):
            return "max_tokens \(value) is outside \(allowed.lowerBound)...\(allowed.upperBound)"
        case .promptExceedsCache(let blocks, let blockCount):
            return "the prompt needs \(blocks) KV blocks; the cache has \(blockCount)"
        case .queueFull(let capacity):
            return "the queue is full (\(capacity) requests waiting); try again later"
        case .shuttingDown:
            return "the server is shutting down"
        }
    }
}
