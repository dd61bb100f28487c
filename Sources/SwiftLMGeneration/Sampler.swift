import Foundation

/// How the next token is chosen from the logits.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 means greedy: always the most likely token.
    public var temperature: Float = 0.8
    /// Keep only the `topK` most likely tokens; 0 keeps all.
    public var topK: Int = 40
    /// Keep the smallest set of tokens whose probabilities add up to at least `topP`.
    public var topP: Float = 0.95
    /// Drop tokens less likely than `minP` times the most likely one.
    public var minP: Float = 0.05
    /// Divide positive logits (multiply negative ones) of recently seen tokens by this; 1 is off.
    public var repetitionPenalty: Float = 1.0
    /// How many recent tokens the repetition penalty looks at.
    public var repetitionWindow: Int = 64
    /// Makes sampled runs reproducible.
    public var seed: UInt64 = 0

    public init(
        temperature: Float = 0.8, topK: Int = 40, topP: Float = 0.95, minP: Float = 0.05,
        repetitionPenalty: Float = 1.0, repetitionWindow: Int = 64, seed: UInt64 = 0
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionWindow = repetitionWindow
        self.seed = seed
    }

    /// Greedy decoding: the most likely token every time.
    public static let greedy = SamplingParameters(temperature: 0)
}

/// A small, fast, seedable generator (SplitMix64), so a seed gives the same run everywhere.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Picks tokens from logits: repetition penalty, then temperature, top-k, top-p and min-p, in
/// llama.cpp's default order of samplers.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: SeededGenerator

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        random = SeededGenerator(seed: parameters.seed)
    }

    /// `[vocabSize] -> token`. `history` is the tokens so far, for the repetition penalty.
    public mutating func sample(_ logits: [Float], history: [Int] = []) -> Int {
        var logits = logits
        applyRepetitionPenalty(&logits, history: history)

        if parameters.temperature <= 0 { return argmax(logits) }

        var candidates = logits.indices.map { Candidate(token: $0, logit: logits[$0]) }
        candidates.sort { $0.logit > $1.logit }
        if parameters.topK > 0 && parameters.topK < candidates.count {
            candidates.removeSubrange(parameters.topK...)
        }

        // Probabilities at the chosen temperature, most likely first.
        let maximum = candidates[0].logit
        var probabilities = candidates.map { expf(($0.logit - maximum) / parameters.temperature) }
        let total = probabilities.reduce(0, +)
        for i in probabilities.indices { probabilities[i] /= total }

        var keep = candidates.count
        if parameters.topP < 1 {
            var cumulative: Float = 0
            for i in probabilities.indices {
                cumulative += probabilities[i]
                if cumulative >= parameters.topP {
                    keep = i + 1
                    break
                }
            }
        }
        if parameters.minP > 0 {
            let floor = probabilities[0] * parameters.minP
            keep = min(keep, max(1, probabilities.prefix(keep).filter { $0 >= floor }.count))
        }

        let kept = probabilities.prefix(keep)
        var target = Float(Double(random.next() >> 11) / Double(1 << 53)) * kept.reduce(0, +)
        for (i, probability) in kept.enumerated() {
            target -= probability
            if target <= 0 { return candidates[i].token }
        }
        return candidates[keep - 1].token
    }

    private func applyRepetitionPenalty(_ logits: inout [Float], history: [Int]) {
        let penalty = parameters.repetitionPenalty
        guard penalty != 1, parameters.repetitionWindow > 0 else { return }
        for token in Set(history.suffix(parameters.repetitionWindow)) where logits.indices ~= token
        {
            logits[token] = logits[token] > 0 ? logits[token] / penalty : logits[token] * penalty
        }
    }

    private struct Candidate {
        var token: Int
        var logit: Float
    }
}

/// The index of the largest logit; the first one on ties, as llama.cpp's greedy sampler.
public func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    for i in logits.indices where logits[i] > logits[best] { best = i }
    return best
}

/// The index of the largest logit; the first one on ties.
public func argmax(_ logits: [Float]) -> Int {
    logits.withUnsafeBufferPointer { argmax($0) }
}
