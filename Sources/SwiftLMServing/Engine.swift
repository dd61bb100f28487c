import Foundation
import SwiftLMCore
import SwiftLMGeneration
import SwiftLMModels
import SwiftLMTokenizers

/// Serves many requests at once on one model: continuous batching over a paged KV cache with
/// prefix reuse. A library, usable without HTTP.
///
/// One thread runs the steps. Each step the `Scheduler` picks a token for every decoding
/// sequence and prompt chunks of others within the token budget, and one forward pass runs
/// them all (`InferenceContext.forward(_:cache:)`), so each weight is read once per step for
/// every sequence. Requests arrive and are cancelled from any thread; their owners hear of
/// them through `RequestEvent`s, sent from the engine's thread in order. The engine runs until
/// `shutdown`.
public final class Engine: @unchecked Sendable {
    public struct Options: Sendable {
        /// Sequences decoding at once at most; 1 turns batching off.
        public var maxBatch = 16
        /// Tokens (rows) of one forward pass at most: decode tokens plus prompt chunks.
        public var tokenBudget = 256
        /// Blocks of the paged KV cache, and positions per block.
        public var kvBlocks = 1024
        public var blockSize = 16
        /// Makes the whole KV budget resident at start (a server's memory is then flat and
        /// known up front); otherwise blocks take memory as they are first used.
        public var residentCache = false
        /// Positions one sequence may reach; nil: the model's context length.
        public var contextLength: Int?
        /// Requests waiting at most; `submit` refuses more (`EngineError.queueFull`).
        public var maxWaiting = 256
        public var threadCount = ThreadPool.defaultThreadCount

        public init() {}
    }

    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let options: Options
    /// Positions one sequence may reach.
    public let contextLength: Int
    public let cache: PagedKVCache

    private let context: InferenceContext
    private let scheduler: Scheduler
    private var thread: Thread?

    // Shared with submitting threads, under `condition`.
    private let condition = NSCondition()
    private var incoming: [SequenceState] = []
    private var cancellations: [Int] = []
    private var waitingCount = 0
    private var nextID = 1
    private var accepting = true
    private var stopping = false
    private var cancelEverything = false
    private var published = EngineMetrics()
    private var publishedAt = Date()
    private var stopped = false

    // The engine thread's own.
    private var metrics = EngineMetrics()
    private var rateSamples: [(time: Date, tokens: Int)] = []

    /// Positions `0..<virtualLength` of every sequence: a prefix or prompt tuning adapter's
    /// virtual tokens; 0 without one.
    public let virtualLength: Int

    /// - Parameter virtualPrefix: a prefix or prompt tuning adapter's virtual tokens, put in
    ///   front of every sequence (computed once, their blocks shared by all).
    public init(
        model: LlamaModel, tokenizer: Tokenizer, options: Options = Options(),
        virtualPrefix: VirtualPrefix? = nil
    ) throws {
        let config = model.config
        guard config.attention == .exact else {
            throw ModelError.unsupportedMetadata(
                key: "attention", value: config.attention.name,
                supported: "serving with exact attention")
        }
        precondition(options.maxBatch >= 1 && options.kvBlocks >= 1 && options.blockSize >= 1)
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        contextLength = min(options.contextLength ?? config.contextLength, config.contextLength)
        let tokenBudget = max(options.tokenBudget, options.maxBatch)
        cache = PagedKVCache(
            layerCount: config.layerCount, kvDim: config.kvDim, blockSize: options.blockSize,
            blockCount: options.kvBlocks, resident: options.residentCache)
        // The context lends its weights, buffers and pool. Its own cache holds only the
        // virtual tokens, once, on their way into the paged cache (never written otherwise,
        // it takes no resident memory).
        let virtualLength = virtualPrefix?.length ?? 0
        context = InferenceContext(
            model: model, contextLength: max(tokenBudget, virtualLength + 1),
            batchCapacity: max(tokenBudget, virtualLength), threadCount: options.threadCount)
        self.virtualLength = virtualLength
        let prefixBlocks = try Self.placeVirtualPrefix(
            virtualPrefix, context: context, cache: cache)
        scheduler = Scheduler(
            cache: cache, maxBatch: options.maxBatch, tokenBudget: tokenBudget,
            prefixBlocks: prefixBlocks)
        metrics.kvBlockCount = cache.blockCount
        metrics.kvBlockSize = cache.blockSize
        publishMetrics()

        // The thread holds the engine until `shutdown` ends it.
        let thread = Thread { self.run() }
        thread.name = "swiftlm-engine"
        thread.stackSize = 4 << 20
        self.thread = thread
        thread.start()
    }

    /// Computes an adapter's virtual tokens in the context (which also keeps prefix tuning's
    /// gates for attention) and copies their keys and values into blocks of their own.
    private static func placeVirtualPrefix(
        _ prefix: VirtualPrefix?, context: InferenceContext, cache: PagedKVCache
    ) throws -> [Int] {
        guard let prefix else { return [] }
        try context.setVirtualPrefix(prefix)
        var blocks: [Int] = []
        for _ in 0..<cache.blocksNeeded(prefix.length) {
            guard let block = cache.allocate() else {
                throw EngineError.promptExceedsCache(
                    blocks: cache.blocksNeeded(prefix.length), blockCount: cache.blockCount)
            }
            blocks.append(block)
        }
        let storage = cache.storage
        for position in 0..<prefix.length {
            let slot = blocks.withUnsafeBufferPointer {
                cache.slot(of: position, in: $0.baseAddress!)
            }
            for layer in 0..<storage.layerCount {
                storage.keys(layer: layer, position: slot).update(
                    from: context.cache.keys(layer: layer, position: position),
                    count: storage.kvDim)
                storage.values(layer: layer, position: slot).update(
                    from: context.cache.values(layer: layer, position: position),
                    count: storage.kvDim)
            }
        }
        return blocks
    }

    // MARK: - Requests

    /// Queues a request; `onEvent` hears its text and its end on the engine's thread (it must
    /// not block). Returns the id that `cancel` takes. Throws for a request that can never run.
    @discardableResult
    public func submit(
        _ request: GenerationRequest, onEvent: @escaping @Sendable (RequestEvent) -> Void
    ) throws -> Int {
        try validate(request)
        condition.lock()
        defer { condition.unlock() }
        guard accepting else { throw EngineError.shuttingDown }
        guard waitingCount + incoming.count < options.maxWaiting else {
            throw EngineError.queueFull(capacity: options.maxWaiting)
        }
        let id = nextID
        nextID += 1
        incoming.append(
            SequenceState(
                id: id, request: request, tokenizer: tokenizer, virtualLength: virtualLength,
                onEvent: onEvent))
        condition.signal()
        return id
    }

    /// Cancels a request: its blocks return to the cache before the next step, and it
    /// finishes with `.cancelled` (unless it had finished already).
    public func cancel(_ id: Int) {
        condition.lock()
        cancellations.append(id)
        condition.signal()
        condition.unlock()
    }

    /// Runs a request to its end and returns the whole answer (blocks the caller).
    public func generate(_ request: GenerationRequest) throws -> Completion {
        let done = DispatchSemaphore(value: 0)
        let result = ResultBox()
        try submit(request) { event in
            if case .finished(let completion) = event {
                result.completion = completion
                done.signal()
            }
        }
        done.wait()
        return result.completion!
    }

    /// Throws when `request` could never run here.
    public func validate(_ request: GenerationRequest) throws {
        guard !request.prompt.isEmpty else { throw EngineError.emptyPrompt }
        guard virtualLength + request.prompt.count < contextLength else {
            throw EngineError.promptTooLong(
                tokens: virtualLength + request.prompt.count, contextLength: contextLength)
        }
        let vocabSize = model.config.vocabSize
        if let bad = request.prompt.first(where: { $0 < 0 || $0 >= vocabSize }) {
            throw EngineError.tokenOutOfRange(id: bad, vocabSize: vocabSize)
        }
        guard (1...contextLength).contains(request.maxTokens) else {
            throw EngineError.maxTokensOutOfRange(request.maxTokens, allowed: 1...contextLength)
        }
        let blocks = cache.blocksNeeded(virtualLength + request.prompt.count + 1)
        guard blocks <= cache.blockCount else {
            throw EngineError.promptExceedsCache(blocks: blocks, blockCount: cache.blockCount)
        }
    }

    /// A snapshot of the counters, as of the last step.
    public func currentMetrics() -> EngineMetrics {
        condition.lock()
        defer { condition.unlock() }
        var metrics = published
        // An idle engine publishes nothing, so its last rate would stand forever.
        if Date().timeIntervalSince(publishedAt) > 5 { metrics.tokensPerSecond = 0 }
        return metrics
    }

    /// Stops taking requests and ends the engine's thread: after the requests in flight
    /// finish, or at once with every one of them cancelled. Safe to call twice.
    public func shutdown(finishInFlight: Bool) {
        condition.lock()
        accepting = false
        stopping = true
        if !finishInFlight { cancelEverything = true }
        condition.signal()
        while !stopped && thread != nil { condition.wait() }
        condition.unlock()
    }

    // MARK: - The engine's thread

    private func run() {
        while true {
            condition.lock()
            while incoming.isEmpty && cancellations.isEmpty && scheduler.isIdle && !stopping {
                condition.wait()
            }
            let arrived = incoming
            let cancelled = cancellations
            let cancelAll = cancelEverything
            let stop = stopping
            incoming.removeAll()
            cancellations.removeAll()
            condition.unlock()

            for sequence in arrived {
                scheduler.enqueue(sequence)
                metrics.promptTokens += sequence.promptCount
            }
            for id in cancelled {
                if let sequence = scheduler.remove(id: id) { finish(sequence, .cancelled) }
            }
            if cancelAll {
                for sequence in scheduler.running + scheduler.waiting {
                    scheduler.remove(id: sequence.id)
                    finish(sequence, .cancelled)
                }
            }
            if stop && scheduler.isIdle { break }

            step()
            publishMetrics()
        }

        publishMetrics()
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// Schedules, runs one forward pass and samples a token for each sequence whose pending
    /// tokens all ran.
    private func step() {
        let plan = scheduler.schedule()
        for (sequence, reason) in scheduler.takeStalled() { finish(sequence, reason) }
        guard !plan.isEmpty else { return }

        var batch = PagedBatch()
        for (index, (sequence, count)) in plan.enumerated() {
            batch.blockTables.append(sequence.blockTable)
            for token in sequence.computed..<sequence.computed + count {
                batch.rows.append(
                    PagedRow(
                        token: sequence.tokens[token], position: sequence.position(of: token),
                        sequence: index, promptOrder: sequence.isPromptToken(token),
                        wantsLogits: token == sequence.tokens.count - 1))
            }
        }
        let logits = context.forward(batch, cache: cache)
        metrics.steps += 1

        let vocabSize = model.config.vocabSize
        var logitRow = 0
        for (sequence, count) in plan {
            scheduler.advance(sequence, by: count)
            guard sequence.pending == 0 else { continue }
            let row = Array(logits[logitRow * vocabSize..<(logitRow + 1) * vocabSize])
            logitRow += 1
            accept(sequence.sampler.sample(row, history: sequence.tokens), for: sequence)
        }
    }

    /// Appends a sampled token, streams its text and ends the sequence where it should end.
    private func accept(_ token: Int, for sequence: SequenceState) {
        let now = Date()
        if let last = sequence.lastTokenTime {
            metrics.interTokenLatency.observe(now.timeIntervalSince(last))
        } else {
            sequence.firstTokenTime = now
            metrics.timeToFirstToken.observe(now.timeIntervalSince(sequence.submitted))
        }
        sequence.lastTokenTime = now

        if tokenizer.isEndOfGeneration(token) {
            finish(sequence, .stop)
            return
        }
        sequence.tokens.append(token)
        metrics.generatedTokens += 1
        let (text, hitStop) = sequence.stopFilter.push(sequence.decoder.append(token))
        if !text.isEmpty { sequence.onEvent(.text(text)) }
        if hitStop {
            finish(sequence, .stop, flush: false)
        } else if sequence.generatedCount >= sequence.request.maxTokens
            || sequence.position(of: sequence.tokens.count) > contextLength
        {
            finish(sequence, .length)
        }
    }

    /// Frees the sequence's blocks and sends its last text and its completion.
    private func finish(_ sequence: SequenceState, _ reason: FinishReason, flush: Bool = true) {
        scheduler.remove(id: sequence.id)
        if flush && reason != .cancelled {
            let rest = sequence.stopFilter.finish(sequence.decoder.flush())
            if !rest.isEmpty { sequence.onEvent(.text(rest)) }
        }
        metrics.requestsFinished[reason, default: 0] += 1
        // Whoever hears of the end sees the blocks already free in the metrics.
        publishMetrics()
        sequence.onEvent(
            .finished(
                Completion(
                    text: sequence.stopFilter.emitted,
                    tokens: Array(sequence.tokens[sequence.promptCount...]),
                    finishReason: reason, promptTokenCount: sequence.promptCount,
                    cachedPromptTokenCount: sequence.cachedPromptTokenCount,
                    timeToFirstToken: sequence.firstTokenTime.map {
                        $0.timeIntervalSince(sequence.submitted)
                    },
                    preemptionCount: sequence.preemptionCount)))
    }

    private func publishMetrics() {
        metrics.waitingRequests = scheduler.waiting.count
        metrics.runningRequests = scheduler.running.count
        metrics.kvBlocksUsed = cache.usedBlockCount
        metrics.kvBlocksFree = cache.availableBlockCount
        metrics.kvBlocksCached = cache.cachedBlockCount
        metrics.prefixCacheHitBlocks = cache.prefixHitBlocks
        metrics.preemptions = scheduler.preemptionCount

        // The generation rate over the last five seconds or so.
        let now = Date()
        rateSamples.append((now, metrics.generatedTokens))
        rateSamples.removeAll { now.timeIntervalSince($0.time) > 5 }
        if let first = rateSamples.first, now.timeIntervalSince(first.time) > 0 {
            metrics.tokensPerSecond =
                Double(metrics.generatedTokens - first.tokens) / now.timeIntervalSince(first.time)
        }

        condition.lock()
        waitingCount = scheduler.waiting.count
        published = metrics
        publishedAt = now
        condition.unlock()
    }
}

/// Carries a completion from the engine's thread to a waiting caller (the semaphore orders
/// the write before the read).
private final class ResultBox: @unchecked Sendable {
    var completion: Completion?
}
