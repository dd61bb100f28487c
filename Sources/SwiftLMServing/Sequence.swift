import Foundation
import SwiftLMGeneration
import SwiftLMTokenizers

/// A request inside the engine: its tokens so far, how many of them the cache holds, its
/// block table and its sampling and text state. Owned by the engine's thread.
final class SequenceState {
    let id: Int
    let request: GenerationRequest
    let onEvent: @Sendable (RequestEvent) -> Void
    let submitted: Date

    /// The prompt, then every generated token.
    var tokens: [Int]
    var promptCount: Int { request.prompt.count }
    var generatedCount: Int { tokens.count - promptCount }
    /// Tokens whose keys and values are in the cache: `tokens[..<computed]`. Token `i` sits at
    /// position `virtualLength + i`, after an adapter's virtual tokens.
    var computed = 0
    let virtualLength: Int
    var blockTable: [Int] = []
    /// Leading blocks of `blockTable` registered for prefix reuse.
    var registeredBlocks = 0

    var sampler: Sampler
    var decoder: StreamingDecoder
    var stopFilter: StopStringFilter
    var cachedPromptTokenCount = 0
    var firstTokenTime: Date?
    var lastTokenTime: Date?
    var preemptionCount = 0

    init(
        id: Int, request: GenerationRequest, tokenizer: Tokenizer, virtualLength: Int,
        onEvent: @escaping @Sendable (RequestEvent) -> Void
    ) {
        self.id = id
        self.virtualLength = virtualLength
        self.request = request
        self.onEvent = onEvent
        submitted = Date()
        tokens = request.prompt
        sampler = Sampler(request.sampling)
        decoder = StreamingDecoder(tokenizer: tokenizer)
        stopFilter = StopStringFilter(stopStrings: request.stopStrings)
    }

    /// Tokens still to run through the model before the next one can be sampled.
    var pending: Int { tokens.count - computed }

    /// The position of token `index` in the sequence.
    func position(of index: Int) -> Int { virtualLength + index }

    /// Whether the token at `index` is a prompt token: it then takes the prompt's order of
    /// sums in attention, generated tokens the decode step's, also when a preempted
    /// sequence recomputes them.
    func isPromptToken(_ index: Int) -> Bool { index < promptCount }
}
