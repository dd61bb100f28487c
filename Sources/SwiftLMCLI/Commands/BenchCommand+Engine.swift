import Foundation
import SwiftLM

extension BenchCommand {
    /// `--sequences N`: the serving engine without HTTP. N requests with distinct synthetic
    /// prompts arrive at once and each generates `genTokens` greedily; the line reports the
    /// generated tokens per second of all of them together (wall time from the first
    /// submission to the last answer, prefill included), the median over repetitions.
    static func engineThroughput(
        model: PretrainedModel, sequences: Int, promptTokens: Int, genTokens: Int,
        repetitions: Int, threads: Int
    ) throws -> [Double] {
        var options = Engine.Options()
        options.maxBatch = sequences
        options.threadCount = threads
        options.kvBlocks = sequences * ((promptTokens + genTokens) / options.blockSize + 2)
        let engine = try Engine(model: model.model, tokenizer: model.tokenizer, options: options)
        defer { engine.shutdown(finishInFlight: false) }
        let vocabSize = model.config.vocabSize

        var rates: [Double] = []
        for repetition in 0...repetitions {
            // Distinct prompts, so that no request finds another's blocks.
            let requests = (0..<sequences).map { index in
                GenerationRequest(
                    prompt: (0..<promptTokens).map {
                        ($0 * 7919 + (repetition * sequences + index) * 104_729) % vocabSize
                    },
                    maxTokens: genTokens)
            }
            let group = DispatchGroup()
            let counter = TokenCounter()
            let start = Date()
            for request in requests {
                group.enter()
                try engine.submit(request) { event in
                    guard case .finished(let completion) = event else { return }
                    counter.add(completion.tokens.count)
                    group.leave()
                }
            }
            group.wait()
            let rate = Double(counter.total) / Date().timeIntervalSince(start)
            // Repetition 0 warms up (pages in the weights) and is not counted.
            guard repetition > 0 else { continue }
            rates.append(rate)
            printError(
                "repetition \(repetition)/\(repetitions): \(sequences) sequences, "
                    + "\(format(rate)) generated tokens/s")
        }
        return rates
    }
}

private final class TokenCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ tokens: Int) { lock.withLock { count += tokens } }
    var total: Int { lock.withLock { count } }
}
