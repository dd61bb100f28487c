import Foundation
import SwiftLMCore

/// Virtual tokens that a prefix or prompt tuning adapter puts before every sequence.
public enum VirtualPrefix: Sendable {
    /// `[length, layerCount * 2 * kvDim]`: each layer's key (after RoPE) and value per position
    /// (the layout of `Adapter.prefix`), and the heads' gates `[layerCount, headCount]` on
    /// them (nil: all 1).
    case keysAndValues(Tensor, gates: Tensor?)
    /// `[length, hidden]` input embeddings.
    case embeddings(Tensor)

    public var length: Int {
        switch self {
        case .keysAndValues(let table, _), .embeddings(let table): return table.shape[0]
        }
    }
}

/// Which rows of logits `InferenceContext.evaluate` returns.
public enum LogitsRequest: Sendable {
    /// Only the last token's: what generation samples from.
    case last
    /// Every token's, `[tokenCount, vocabSize]`: what perplexity and logit checks read.
    case all
}

/// A model with the state of one sequence: its KV cache, the thread pool and scratch buffers.
///
/// `evaluate` appends tokens to the sequence and returns logits. Inputs longer than
/// `batchCapacity` are evaluated in consecutive chunks of that many tokens.
public final class InferenceContext: @unchecked Sendable {
    public let model: LlamaModel
    public let cache: KVCache
    public let pool: ThreadPool
    /// Tokens evaluated in one forward pass at most.
    public let batchCapacity: Int

    let buffers: ForwardBuffers
    /// Per layer, the running state of Performer attention; empty for other kinds.
    let performerStates: [PerformerState]
    /// The RoPE angles of a scaled model (linear, NTK-aware, YaRN), built once; nil for an
    /// unscaled one, which keeps the kernel that matches llama.cpp's plain RoPE.
    let ropeTable: RoPETable?
    /// The pool work of attention, made once (it refers back to this context).
    lazy var attention = AttentionWork(self)

    /// - Parameters:
    ///   - contextLength: positions the KV cache holds; at most the model's context length.
    ///   - threadCount: threads of the pool (the caller's thread included).
    public init(
        model: LlamaModel, contextLength: Int? = nil, batchCapacity: Int = 512,
        threadCount: Int = ThreadPool.defaultThreadCount
    ) {
        let config = model.config
        let capacity = min(contextLength ?? config.contextLength, config.contextLength)
        self.model = model
        self.batchCapacity = max(1, min(batchCapacity, capacity))
        cache = KVCache(
            layerCount: config.layerCount, kvDim: config.kvDim, capacity: capacity,
            retention: Self.retention(
                config.attention, capacity: capacity, batchCapacity: self.batchCapacity))
        ropeTable =
            config.ropeScaling.kind == .none
            ? nil
            : RoPETable(dims: config.ropeDims, base: config.ropeBase, scaling: config.ropeScaling)
        if case .performer(let features, _) = config.attention {
            performerStates = (0..<config.layerCount).map { layer in
                PerformerState(
                    headCount: config.headCount, kvHeadCount: config.kvHeadCount,
                    features: .layer(
                        layer, draw: config.performerDraw, featureCount: features,
                        headDim: config.headDim))
            }
        } else {
            performerStates = []
        }
        pool = ThreadPool(threadCount: threadCount)
        buffers = ForwardBuffers(model: model, batchCapacity: self.batchCapacity, pool: pool)
        tokens.reserveCapacity(capacity)
    }

    /// Positions held so far, the virtual prefix's included: the position of the next token.
    public var position: Int { cache.count }
    public var contextLength: Int { cache.capacity }

    /// The tokens whose keys and values the cache holds, in order (after the virtual prefix).
    public private(set) var tokens: [Int] = []

    /// Positions `0..<virtualLength` of every sequence that hold a prefix or prompt tuning
    /// adapter's virtual tokens rather than real ones; 0 without such an adapter.
    public private(set) var virtualLength = 0
    /// Prefix tuning's gates as `log g`, `[layerCount * headCount]`; nil when all are 1.
    private(set) var prefixLogGates: [Float]?

    /// Puts an adapter's virtual tokens in front of every sequence from now on (nil removes
    /// them) and forgets the current sequence. Prefix tuning's keys and values go into the
    /// cache as they are; prompt tuning's embeddings run through the model like tokens.
    /// Throws when they do not fit the context or the attention kind keeps no full cache.
    public func setVirtualPrefix(_ prefix: VirtualPrefix?) throws {
        tokens.removeAll()
        cache.truncate(to: 0)
        virtualLength = 0
        prefixLogGates = nil
        guard let prefix else { return }
        guard model.config.attention == .exact else {
            throw ModelError.unsupportedMetadata(
                key: "attention", value: model.config.attention.name,
                supported: "prefix and prompt tuning with exact attention")
        }
        guard prefix.length < contextLength, prefix.length <= batchCapacity else {
            throw ModelError.contextOverflow(tokens: prefix.length, contextLength: contextLength)
        }

        switch prefix {
        case .keysAndValues(let table, let gates):
            let config = model.config
            // A gate scales the prefix's weights before the softmax: log g added to the
            // score (log 0 = -infinity, a closed gate).
            prefixLogGates = gates.map { $0.toArray().map { log($0) } }
            let width = table.shape[1]
            for position in 0..<prefix.length {
                for layer in 0..<config.layerCount {
                    let row = table.floats + position * width + 2 * layer * config.kvDim
                    let keys = cache.keys(layer: layer, position: position)
                    let values = cache.values(layer: layer, position: position)
                    for i in 0..<config.kvDim {
                        keys[i] = Float16(row[i])
                        values[i] = Float16(row[config.kvDim + i])
                    }
                }
            }
            cache.count = prefix.length
        case .embeddings(let table):
            forward(embeddings: table.floats, count: prefix.length)
        }
        virtualLength = prefix.length
    }

    /// Forgets the sequence, keeping the allocations and the virtual prefix.
    public func reset() { truncate(to: 0) }

    /// Forgets every token from `count` on and keeps the cache of the ones before it.
    /// `count` must be `reusablePrefix(count)`: 0, or a prefix that the cache still holds.
    public func truncate(to count: Int) {
        cache.truncate(to: virtualLength + count)
        tokens.removeSubrange(count...)
        if count == 0 { for state in performerStates { state.reset() } }
    }

    /// `length` when the first `length` tokens can be kept by `truncate(to:)`, else 0: a
    /// sliding-window cache may have overwritten what a shorter prefix needs, and Performer's
    /// running sums cannot be rewound.
    public func reusablePrefix(_ length: Int) -> Int {
        max(0, cache.reusablePrefix(virtualLength + length) - virtualLength)
    }

    /// What the KV cache keeps for `attention`: a sliding window needs only its window, the
    /// chunk being evaluated and the global positions, unless a global position lies past the
    /// window (such a token attends to every earlier one, so every position is kept), or the
    /// ring would not be smaller than the whole context. Performer keeps no keys at all.
    static func retention(
        _ attention: AttentionKind, capacity: Int, batchCapacity: Int
    ) -> KVCache.Retention {
        switch attention {
        case .exact:
            return .all
        case .slidingWindow(let window, let globalPositions, let randomBlocks):
            let ring = window + batchCapacity - 1
            guard randomBlocks == 0, globalPositions.allSatisfy({ $0 < window }),
                ring + globalPositions.count < capacity
            else { return .all }
            return .window(window: window, ringSize: ring, globalPositions: globalPositions)
        case .performer:
            return .countOnly
        }
    }

    /// Appends `tokens` to the sequence and returns their logits.
    ///
    /// `[tokenCount] -> [vocabSize]` for `.last`, `[tokenCount, vocabSize]` for `.all`.
    public func evaluate(_ tokens: [Int], logits request: LogitsRequest = .last) throws -> [Float] {
        let vocabSize = model.config.vocabSize
        try check(tokens)

        var result: [Float] = []
        result.reserveCapacity(request == .all ? tokens.count * vocabSize : vocabSize)
        var start = 0
        while start < tokens.count {
            let chunk = tokens[start..<min(start + batchCapacity, tokens.count)]
            let isLastChunk = start + chunk.count == tokens.count
            let wantRows = request == .all ? chunk.count : (isLastChunk ? 1 : 0)
            forward(chunk, logitRows: wantRows)
            self.tokens.append(contentsOf: chunk)
            result.append(
                contentsOf: UnsafeBufferPointer(start: buffers.logits, count: wantRows * vocabSize))
            start += chunk.count
        }
        return result
    }

    /// Appends one token and returns its logits, `[vocabSize]`, as a view of the context's own
    /// buffer: valid until the next call that evaluates tokens. A decode step this way
    /// allocates nothing (a test counts it), where `evaluate` returns a new array.
    public func decode(_ token: Int) throws -> UnsafeBufferPointer<Float> {
        try check(CollectionOfOne(token))
        tokens.append(token)
        forward(tokens[(tokens.count - 1)...], logitRows: 1)
        return UnsafeBufferPointer(start: buffers.logits, count: model.config.vocabSize)
    }

    /// Throws unless `tokens` fit in the context, are valid ids, and the attention kind runs.
    private func check<Tokens: Collection<Int>>(_ tokens: Tokens) throws {
        let vocabSize = model.config.vocabSize
        guard !tokens.isEmpty else { throw ModelError.emptyPrompt }
        guard position + tokens.count <= contextLength else {
            throw ModelError.contextOverflow(
                tokens: position + tokens.count, contextLength: contextLength)
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= vocabSize }) {
            throw ModelError.tokenOutOfRange(id: bad, vocabSize: vocabSize)
        }
        try Self.checkInferenceSupport(model.config.attention)
    }
}

/// Scratch memory of one forward pass, sized once for `batchCapacity` tokens.
final class ForwardBuffers {
    let x, normed, query, key, value, attention, projection, gate, up, logits,
        scores: UnsafeMutablePointer<Float>
    let activations: UnsafeMutableRawPointer
    /// The work object of every product, reused so that products allocate nothing.
    let product = MatrixProduct()
    /// Floats reserved per thread for attention: `scoresCapacity` scores (the context, padded
    /// to a multiple of 16 as the softmax reads it), one query, and the 64 lanes of sums of
    /// `FloatKernels.weightedSumLanes64`.
    let scoresStride: Int
    let scoresCapacity: Int

    init(model: LlamaModel, batchCapacity tokens: Int, pool: ThreadPool) {
        let config = model.config
        // Left unwritten: every element is written before it is read, and pages that are
        // never written (the logits of rows nobody asks for: 100 MB for a chunk of 512 at the
        // default model's vocabulary) then cost no resident memory.
        func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
            .allocate(capacity: max(count, 1))
        }
        let queryDim = config.headCount * config.headDim
        x = floats(tokens * config.hidden)
        normed = floats(tokens * config.hidden)
        query = floats(tokens * queryDim)
        key = floats(tokens * config.kvDim)
        value = floats(tokens * config.kvDim)
        attention = floats(tokens * queryDim)
        projection = floats(tokens * config.hidden)
        gate = floats(tokens * config.intermediate)
        up = floats(tokens * config.intermediate)
        logits = floats(tokens * config.vocabSize)
        scoresCapacity = (config.contextLength + 15) / 16 * 16
        scoresStride = scoresCapacity + config.headDim + 64 * config.headDim
        scores = floats(pool.threadCount * scoresStride)

        let scratchBytes = model.weightMatrices.map { $0.scratchBytes(rowCount: tokens) }.max()!
        activations = .allocate(byteCount: scratchBytes, alignment: 64)
    }

    deinit {
        for buffer in [
            x, normed, query, key, value, attention, projection, gate, up, logits, scores,
        ] {
            buffer.deallocate()
        }
        activations.deallocate()
    }
}
