import Foundation
import SwiftLMCore

extension InferenceContext {
    /// Throws for attention kinds that inference cannot run yet, naming what is missing.
    static func checkInferenceSupport(_ attention: AttentionKind) throws {
        switch attention {
        case .exact:
            return
        case .slidingWindow(_, _, let randomBlocks):
            guard randomBlocks == 0 else {
                throw ModelError.unsupportedMetadata(
                    key: LlamaConfig.attentionKey, value: "random_blocks \(randomBlocks)",
                    supported: "sliding windows without random blocks in inference")
            }
        case .performer:
            return
        }
    }

    /// Calls `body(index, p)` for the positions p that the token at `position` attends to under
    /// a causal sliding window with global tokens, in this order: every earlier global position
    /// before the window (ascending), then the `window` positions ending at itself; every
    /// earlier position at all when the token itself is global. The rule of
    /// `SparseAttentionPattern.allows` in training, without random blocks. Allocates nothing.
    ///
    /// - Parameter globals: the global positions, ascending and without repeats.
    @inline(__always)
    static func forEachVisible(
        position: Int, window: Int, globals: [Int], _ body: (Int, Int) -> Void
    ) {
        var index = 0
        if globals.contains(position) {
            for earlier in 0...position {
                body(index, earlier)
                index += 1
            }
            return
        }
        let first = max(0, position - window + 1)
        for global in globals {
            guard global < first else { break }
            body(index, global)
            index += 1
        }
        for earlier in first...position {
            body(index, earlier)
            index += 1
        }
    }

    /// Items `items` (token × head) of sliding-window attention over the cache, each query
    /// seeing only its window and the global positions (`AttentionWork`).
    ///
    /// Plain F32 arithmetic (no F16 rounding of the query or the weights): llama.cpp has no
    /// such attention to agree with. The cache keeps only the window, the chunk and the global
    /// positions where it can (`InferenceContext.retention`).
    func attendSlidingWindow(
        _ items: Range<Int>, thread: Int, layer: Int, window: Int, globals: [Int]
    ) {
        let config = model.config
        let headDim = config.headDim
        let queryDim = config.headCount * headDim
        let groupSize = config.headCount / config.kvHeadCount
        let scale = 1 / Float(headDim).squareRoot()
        let firstPosition = cache.count
        let b = buffers
        let cache = cache
        let scores = b.scores + thread * b.scoresStride

        for item in items {
            let token = item / config.headCount
            let head = item % config.headCount
            let kvOffset = (head / groupSize) * headDim
            let query = b.query + token * queryDim + head * headDim
            let position = firstPosition + token

            var visible = 0
            Self.forEachVisible(position: position, window: window, globals: globals) {
                index, earlier in
                let key = cache.keys(layer: layer, position: earlier) + kvOffset
                scores[index] = FloatKernels.dotF32(query, key, count: headDim) * scale
                visible = index + 1
            }
            FloatKernels.softmax(scores, count: visible)

            let output = b.attention + token * queryDim + head * headDim
            output.update(repeating: 0, count: headDim)
            Self.forEachVisible(position: position, window: window, globals: globals) {
                index, earlier in
                let value = cache.values(layer: layer, position: earlier) + kvOffset
                let weight = scores[index]
                for dimension in 0..<headDim {
                    output[dimension] += weight * Float(value[dimension])
                }
            }
        }
    }
}

extension InferenceContext {
    /// Causal Performer attention of this chunk's queries, token by token through each layer's
    /// running sums: `[tokenCount, headCount * headDim] -> [tokenCount, headCount * headDim]`.
    /// Keys and values go into the sums, never into the cache, so a token costs the same at
    /// any position. F32 throughout (the keys are not rounded to F16), as in training.
    func attendPerformer(layer: Int, tokenCount: Int) {
        let config = model.config
        let queryDim = config.headCount * config.headDim
        let state = performerStates[layer]
        let b = buffers
        for token in 0..<tokenCount {
            state.append(
                key: b.key + token * config.kvDim, value: b.value + token * config.kvDim)
            state.attend(query: b.query + token * queryDim, into: b.attention + token * queryDim)
        }
    }
}
