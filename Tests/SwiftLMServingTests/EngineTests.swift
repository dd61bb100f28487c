import Foundation
import SwiftLM
import SwiftLMTestSupport
import Testing

/// A tiny model written once per test, served by an engine with `options`.
private func withEngine<T>(
    _ options: Engine.Options, virtualPrefix: VirtualPrefix? = nil,
    _ body: (Engine, PretrainedModel) throws -> T
) throws -> T {
    let path = try TinyModel.write(weightType: .q8_0)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let model = try PretrainedModel(path: path)
    let engine = try Engine(
        model: model.model, tokenizer: model.tokenizer, options: options,
        virtualPrefix: virtualPrefix)
    defer { engine.shutdown(finishInFlight: false) }
    return try body(engine, model)
}

private func options(
    maxBatch: Int = 16, kvBlocks: Int = 256, blockSize: Int = 8, tokenBudget: Int = 64
) -> Engine.Options {
    var options = Engine.Options()
    options.maxBatch = maxBatch
    options.kvBlocks = kvBlocks
    options.blockSize = blockSize
    options.tokenBudget = tokenBudget
    options.threadCount = 2
    return options
}

/// Sixteen prompts of different lengths; every fourth samples with its own seed.
private func requests(_ model: PretrainedModel) -> [GenerationRequest] {
    (0..<16).map { index in
        let text = String(repeating: "abc de", count: 1 + index % 5) + " request \(index)"
        var sampling = SamplingParameters.greedy
        if index % 4 == 3 { sampling = SamplingParameters(temperature: 0.9, seed: UInt64(index)) }
        return GenerationRequest(
            prompt: model.tokenizer.encode(text), maxTokens: 12 + index % 7, sampling: sampling)
    }
}

/// Submits every request at once and waits for all of them.
private func runConcurrently(
    _ engine: Engine, _ requests: [GenerationRequest]
) throws
    -> [Completion]
{
    let group = DispatchGroup()
    let results = Results(count: requests.count)
    for (index, request) in requests.enumerated() {
        group.enter()
        try engine.submit(request) { event in
            if case .finished(let completion) = event {
                results.set(index, completion)
                group.leave()
            }
        }
    }
    group.wait()
    return results.all
}

private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var completions: [Completion?]
    init(count: Int) { completions = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ completion: Completion) {
        lock.withLock { completions[index] = completion }
    }
    var all: [Completion] { lock.withLock { completions.map { $0! } } }
}

@Suite("Continuous batching on a tiny model")
struct EngineTests {
    @Test("sixteen concurrent requests get exactly the answers each gets alone")
    func batchingChangesNoToken() throws {
        let alone = try withEngine(options(maxBatch: 1)) { engine, model in
            try requests(model).map { try engine.generate($0) }
        }
        let together = try withEngine(options(maxBatch: 16)) { engine, model in
            try runConcurrently(engine, requests(model))
        }
        #expect(together.map(\.tokens) == alone.map(\.tokens))
        #expect(together.map(\.text) == alone.map(\.text))
        #expect(alone.allSatisfy { !$0.tokens.isEmpty })
    }

    @Test("greedy answers of the engine equal the single-sequence generator's")
    func engineMatchesGenerator() throws {
        try withEngine(options()) { engine, model in
            let context = InferenceContext(model: model.model, threadCount: 2)
            let generator = Generator(tokenizer: model.tokenizer, context: context)
            for request in requests(model) where request.sampling == .greedy {
                let expected = try generator.generate(
                    prompt: request.prompt, maxTokens: request.maxTokens)
                context.reset()
                #expect(try engine.generate(request).tokens == expected.tokens)
            }
        }
    }

    @Test("sequences preempted for lack of KV blocks are recomputed to the same answers")
    func preemptionKeepsAnswers() throws {
        let reference = try withEngine(options(maxBatch: 1)) { engine, model in
            try requests(model).map { try engine.generate($0) }
        }
        // Ten blocks of eight positions: two or three sequences fit at a time.
        try withEngine(options(kvBlocks: 10)) { engine, model in
            let squeezed = try runConcurrently(engine, requests(model))
            #expect(squeezed.map(\.tokens) == reference.map(\.tokens))
            #expect(engine.currentMetrics().preemptions > 0)
            #expect(engine.currentMetrics().kvBlocksUsed == 0)
        }
    }

    @Test("a prompt that begins like an earlier one reuses its blocks and answers the same")
    func prefixCacheIsReused() throws {
        try withEngine(options(blockSize: 4)) { engine, model in
            let shared = model.tokenizer.encode("You are a helpful assistant. Answer briefly.")
            let first = GenerationRequest(prompt: shared + [65, 66, 67], maxTokens: 8)
            let second = GenerationRequest(prompt: shared + [70, 71], maxTokens: 8)
            _ = try engine.generate(first)
            let reused = try engine.generate(second)
            #expect(reused.cachedPromptTokenCount == shared.count / 4 * 4)
            #expect(engine.currentMetrics().prefixCacheHitBlocks == shared.count / 4)

            let fresh = try withEngine(options(blockSize: 4)) { other, _ in
                try other.generate(second)
            }
            #expect(fresh.cachedPromptTokenCount == 0)
            #expect(reused.tokens == fresh.tokens)
        }
    }

    @Test("a cancelled request ends as cancelled and its blocks are free at once")
    func cancellationFreesBlocks() throws {
        try withEngine(options()) { engine, model in
            let finished = DispatchSemaphore(value: 0)
            let reason = Results(count: 1)
            let started = DispatchSemaphore(value: 0)
            let request = GenerationRequest(
                prompt: model.tokenizer.encode("abc de abc de"), maxTokens: 100,
                sampling: SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1))
            let id = try engine.submit(request) { event in
                switch event {
                case .text: started.signal()
                case .finished(let completion):
                    reason.set(0, completion)
                    finished.signal()
                }
            }
            started.wait()
            engine.cancel(id)
            finished.wait()
            #expect(reason.all[0].finishReason == .cancelled)
            #expect(engine.currentMetrics().kvBlocksUsed == 0)
            #expect(engine.currentMetrics().runningRequests == 0)
        }
    }

    @Test(
        "with an adapter's virtual tokens, batched answers equal the single-sequence generator's",
        arguments: ["prefix", "prompt"])
    func virtualPrefixIsServed(kind: String) throws {
        // Five virtual tokens: the last of their blocks (of eight positions) is shared by every
        // sequence and copied on its first write.
        let length = 5
        let prefix: VirtualPrefix
        if kind == "prefix" {
            let width = TinyModel.layerCount * 2 * TinyModel.kvHeadCount * TinyModel.headDim
            let gates = Tensor(
                shape: [TinyModel.layerCount, TinyModel.headCount],
                values: TinyModel.values(seed: 7, count: TinyModel.layerCount * TinyModel.headCount)
                    .map { 0.5 + abs($0) })
            prefix = .keysAndValues(
                Tensor(
                    shape: [length, width], values: TinyModel.values(seed: 5, count: length * width)
                ),
                gates: gates)
        } else {
            prefix = .embeddings(
                Tensor(
                    shape: [length, TinyModel.hidden],
                    values: TinyModel.values(seed: 6, count: length * TinyModel.hidden)))
        }
        try withEngine(options(), virtualPrefix: prefix) { engine, model in
            let greedy = requests(model).filter { $0.sampling == .greedy }
            let served = try runConcurrently(engine, greedy)
            let context = InferenceContext(model: model.model, threadCount: 2)
            try context.setVirtualPrefix(prefix)
            let generator = Generator(tokenizer: model.tokenizer, context: context)
            for (request, answer) in zip(greedy, served) {
                context.reset()
                let expected = try generator.generate(
                    prompt: request.prompt, maxTokens: request.maxTokens)
                #expect(answer.tokens == expected.tokens)
            }
            // Only the virtual tokens' own blocks stay in use.
            #expect(engine.currentMetrics().kvBlocksUsed == 1)
        }
    }

    @Test("requests that can never run are refused with the reason")
    func badRequestsAreRefused() throws {
        try withEngine(options(kvBlocks: 4)) { engine, model in
            let prompt = model.tokenizer.encode("abc")
            #expect(throws: EngineError.emptyPrompt) {
                try engine.validate(GenerationRequest(prompt: [], maxTokens: 4))
            }
            #expect(throws: EngineError.promptTooLong(tokens: 128, contextLength: 128)) {
                try engine.validate(
                    GenerationRequest(prompt: Array(repeating: 65, count: 128), maxTokens: 4))
            }
            #expect(throws: EngineError.maxTokensOutOfRange(0, allowed: 1...128)) {
                try engine.validate(GenerationRequest(prompt: prompt, maxTokens: 0))
            }
            #expect(throws: EngineError.tokenOutOfRange(id: 999, vocabSize: 260)) {
                try engine.validate(GenerationRequest(prompt: [999], maxTokens: 4))
            }
            #expect(throws: EngineError.promptExceedsCache(blocks: 6, blockCount: 4)) {
                try engine.validate(
                    GenerationRequest(prompt: Array(repeating: 65, count: 40), maxTokens: 4))
            }
        }
    }

    @Test("a full queue refuses new requests")
    func fullQueueRefuses() throws {
        var small = options(maxBatch: 1)
        small.maxWaiting = 2
        try withEngine(small) { engine, model in
            let request = GenerationRequest(prompt: model.tokenizer.encode("abc"), maxTokens: 50)
            var refused = false
            for _ in 0..<20 {
                do { try engine.submit(request) { _ in } } catch EngineError.queueFull {
                    refused = true
                }
            }
            #expect(refused)
        }
    }
}
