import Foundation
import SwiftLM
import Testing

@Suite("Sampling")
struct SamplerTests {
    let logits: [Float] = [1.0, 3.0, 2.5, -1.0, 0.5, 2.9]

    @Test("temperature 0 is greedy and picks the first of equal maxima")
    func greedyPicksArgmax() {
        var sampler = Sampler(.greedy)
        #expect(sampler.sample(logits) == 1)
        #expect(argmax([2, 5, 5, 1]) == 1)
    }

    @Test("the same seed gives the same tokens, another seed other tokens")
    func seedMakesRunsReproducible() {
        let parameters = SamplingParameters(temperature: 1.5, topK: 0, topP: 1, minP: 0, seed: 42)
        var first = Sampler(parameters)
        var second = Sampler(parameters)
        var other = Sampler(
            SamplingParameters(temperature: 1.5, topK: 0, topP: 1, minP: 0, seed: 7))
        let a = (0..<200).map { _ in first.sample(logits) }
        let b = (0..<200).map { _ in second.sample(logits) }
        let c = (0..<200).map { _ in other.sample(logits) }
        #expect(a == b)
        #expect(a != c)
    }

    @Test("top-k 2 only ever returns the two most likely tokens")
    func topKLimitsCandidates() {
        var sampler = Sampler(
            SamplingParameters(temperature: 5, topK: 2, topP: 1, minP: 0, seed: 1))
        let seen = Set((0..<500).map { _ in sampler.sample(logits) })
        #expect(seen == [1, 5])
    }

    @Test("top-p keeps the smallest set reaching the probability mass")
    func topPLimitsCandidates() {
        // Probabilities at temperature 1: token 1 ≈ 0.36, token 5 ≈ 0.33, token 2 ≈ 0.22.
        var sampler = Sampler(
            SamplingParameters(temperature: 1, topK: 0, topP: 0.6, minP: 0, seed: 3))
        let seen = Set((0..<500).map { _ in sampler.sample(logits) })
        #expect(seen == [1, 5])
    }

    @Test("min-p drops tokens far less likely than the best")
    func minPLimitsCandidates() {
        var sampler = Sampler(
            SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0.5, seed: 9))
        let seen = Set((0..<500).map { _ in sampler.sample(logits) })
        #expect(seen == [1, 2, 5])
    }

    @Test("the repetition penalty lowers tokens already seen")
    func repetitionPenalty() {
        var sampler = Sampler(SamplingParameters(temperature: 0, repetitionPenalty: 2))
        #expect(sampler.sample(logits, history: [1]) == 5)
        #expect(sampler.sample(logits, history: [1, 5]) == 2)
    }

    @Test("sampled frequencies follow the softmax of the logits")
    func frequenciesFollowSoftmax() {
        let logits: [Float] = [0, log(3)]  // probabilities 1/4 and 3/4
        var sampler = Sampler(
            SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0, seed: 5))
        let ones = (0..<20_000).filter { _ in sampler.sample(logits) == 1 }.count
        #expect(abs(Double(ones) / 20_000 - 0.75) < 0.015)
    }
}

@Suite("Stop strings while streaming")
struct StopStringFilterTests {
    @Test("text that may start a stop string is held back until it is decided")
    func holdsBackPossiblePrefix() {
        var filter = StopStringFilter(stopStrings: ["\nUser:"])
        #expect(filter.push("Hello") == ("Hello", false))
        #expect(filter.push("\nUs") == ("", false))
        #expect(filter.push("ually") == ("\nUsually", false))
    }

    @Test("the stop string and what follows it are cut")
    func cutsAtStopString() {
        var filter = StopStringFilter(stopStrings: ["END", "\n\n"])
        #expect(filter.push("one two E") == ("one two ", false))
        #expect(filter.push("ND three") == ("", true))
        #expect(filter.emitted == "one two ")
    }

    @Test("held-back text is released at the end")
    func releasesAtFinish() {
        var filter = StopStringFilter(stopStrings: ["STOP"])
        #expect(filter.push("go ST") == ("go ", false))
        #expect(filter.finish("") == "ST")
        #expect(filter.emitted == "go ST")
    }
}
