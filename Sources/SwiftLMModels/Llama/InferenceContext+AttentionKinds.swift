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

    /// The positions that the token at `position` attends to under a causal sliding window
    /// with global tokens: the `window` positions ending at itself, every earlier global
    /// position, and every earlier position at all when the token itself is global. The same
    /// rule as `SparseAttentionPattern.allows` in training, without random blocks.
    static func slidingWindowPositions(
        position: Int, window: Int, globalPositions: [Int]
    ) -> [Int] {
        if globalPositions.contains(position) { return Array(0...position) }
        let first = max(0, position - window + 1)
        let globals = globalPositions.filter { $0 < first }.sorted()
        return globals + Array(first...position)
    }

    /// Causal grouped-query attention of this chunk's queries over the cache, each query
    /// seeing only its sliding window and the global positions:
    /// `[tokenCount, headCount * headDim] -> [tokenCount, headCount * headDim]`.
    ///
    /// Plain F32 arithmetic (no F16 rounding of the query or the weights): llama.cpp has no
    /// such attention to agree with. The cache keeps only the window, the chunk and the global
    /// positions where it can (`InferenceContext.retention`).
    func attendSlidingWindow(
        layer: Int, tokenCount: Int, window: Int, globalPositions: [Int]
    ) {
        let config = model.config
        let headDim = config.headDim
        let queryDim = config.headCount * headDim
        let groupSize = config.headCount / config.kvHeadCount
        let scale = 1 / Float(headDim).squareRoot()
        let firstPosition = cache.count
        let b = buffers
        let cache = cache
        let visibleByToken = (0..<tokenCount).map {
            Self.slidingWindowPositions(
                position: firstPosition + $0, window: window, globalPositions: globalPositions)
        }

        pool.parallelFor(tokenCount * config.headCount) { items, thread in
            let scores = b.scores + thread * b.scoresStride
            for item in items {
                let token = item / config.headCount
                let head = item % config.headCount
                let kvOffset = (head / groupSize) * headDim
                let query = b.query + token * queryDim + head * headDim
                let visible = visibleByToken[token]

                for (index, position) in visible.enumerated() {
                    let key = cache.keys(layer: layer, position: position) + kvOffset
                    scores[index] = FloatKernels.dotF32(query, key, count: headDim) * scale
                }
                FloatKernels.softmax(scores, count: visible.count)

                let output = b.attention + token * queryDim + head * headDim
                output.update(repeating: 0, count: headDim)
                for (index, position) in visible.enumerated() {
                    let value = cache.values(layer: layer, position: position) + kvOffset
                    let weight = scores[index]
                    for dimension in 0..<headDim {
                        output[dimension] += weight * Float(value[dimension])
                    }
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
