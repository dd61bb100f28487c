import Foundation
import SwiftLMCore
import Testing

@testable import SwiftLMTraining

@Suite("Token dataset")
struct TokenDatasetTests {
    /// A dataset over ids equal to their positions, so a window shows where it was cut from.
    func positionalDataset(
        tokenCount: Int, seqLen: Int, validationFraction: Double = 0.1,
        body: (TokenDataset) throws -> Void
    ) throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let file = try scratch.tokenFile(Array(0..<tokenCount), vocabSize: tokenCount)
        try body(
            TokenDataset(file: file, seqLen: seqLen, validationFraction: validationFraction))
    }

    @Test("the last tenth of the tokens is held out for validation")
    func split() throws {
        try positionalDataset(tokenCount: 1000, seqLen: 8) { dataset in
            #expect(dataset.trainRange == 0..<900)
            #expect(dataset.validationRange == 900..<1000)
        }
        try positionalDataset(tokenCount: 1000, seqLen: 8, validationFraction: 0.25) { dataset in
            #expect(dataset.trainRange == 0..<750)
        }
    }

    @Test("a part shorter than one window of seqLen + 1 tokens is refused by name")
    func partTooSmall() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let file = try scratch.tokenFile(Array(0..<100), vocabSize: 100)

        // 10 validation tokens cannot hold a window of 11.
        let error = #expect(throws: TokenDatasetError.self) {
            try TokenDataset(file: file, seqLen: 10)
        }
        #expect(
            error
                == .partTooSmall(
                    part: "validation", tokenCount: 10, required: 11, fileTokenCount: 100))
        #expect(error?.description.contains("validation part holds 10") == true)

        #expect(
            throws: TokenDatasetError.partTooSmall(
                part: "training", tokenCount: 5, required: 11, fileTokenCount: 100)
        ) {
            try TokenDataset(file: file, seqLen: 10, validationFraction: 0.95)
        }
        #expect(try TokenDataset(file: file, seqLen: 9).validationRange.count == 10)
    }

    @Test("a validation fraction outside (0, 1) is refused")
    func invalidFraction() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let file = try scratch.tokenFile(Array(0..<100), vocabSize: 100)
        for fraction in [0, 1, -0.5, 2, .nan] {
            #expect(throws: TokenDatasetError.self) {
                try TokenDataset(file: file, seqLen: 4, validationFraction: fraction)
            }
        }
    }

    @Test("a batch is windows of the training part, targets one token after inputs")
    func batchShape() throws {
        try positionalDataset(tokenCount: 1000, seqLen: 16) { dataset in
            var random = TrainingRandom(seed: 1)
            for _ in 0..<50 {
                let batch = dataset.nextBatch(batchSize: 4, seqLen: 16, random: &random)
                #expect(batch.inputs.count == 4 * 16)
                #expect(batch.targets.count == 4 * 16)
                for row in 0..<4 {
                    let start = batch.inputs[row * 16]
                    #expect(
                        batch.inputs[(row * 16)..<(row * 16 + 16)].elementsEqual(start..<start + 16)
                    )
                    #expect(
                        batch.targets[(row * 16)..<(row * 16 + 16)].elementsEqual(
                            start + 1...start + 16))
                    // The last target must stay inside the training part.
                    #expect(start + 16 < 900)
                }
            }
        }
    }

    @Test("every window start of the training part is drawn, the last one included")
    func coverage() throws {
        try positionalDataset(tokenCount: 40, seqLen: 4, validationFraction: 0.5) { dataset in
            // 20 training tokens: starts 0...15.
            var random = TrainingRandom(seed: 7)
            var seen = Set<Int>()
            for _ in 0..<200 {
                seen.formUnion(
                    dataset.nextBatch(batchSize: 2, seqLen: 4, random: &random).inputs.enumerated()
                        .filter { $0.offset % 4 == 0 }.map(\.element))
            }
            #expect(seen == Set(0...15))
        }
    }

    @Test("the same seed draws the same batches; another seed draws others")
    func determinism() throws {
        try positionalDataset(tokenCount: 5000, seqLen: 8) { dataset in
            func draws(seed: UInt64) -> [[Int]] {
                var random = TrainingRandom(seed: seed)
                return (0..<10).map { _ in
                    dataset.nextBatch(batchSize: 3, seqLen: 8, random: &random).inputs
                }
            }
            #expect(draws(seed: 42) == draws(seed: 42))
            #expect(draws(seed: 42) != draws(seed: 43))
        }
    }

    @Test("a random state saved mid-run and restored continues with the same batches")
    func resumeMidRun() throws {
        try positionalDataset(tokenCount: 5000, seqLen: 8) { dataset in
            var random = TrainingRandom(seed: 2024)
            for _ in 0..<5 { _ = dataset.nextBatch(batchSize: 3, seqLen: 8, random: &random) }

            // Saved as a checkpoint would: through its Codable form.
            let saved = try JSONEncoder().encode(random)
            let uninterrupted = (0..<5).map { _ in
                dataset.nextBatch(batchSize: 3, seqLen: 8, random: &random).inputs
            }

            var restored = try JSONDecoder().decode(TrainingRandom.self, from: saved)
            let resumed = (0..<5).map { _ in
                dataset.nextBatch(batchSize: 3, seqLen: 8, random: &restored).inputs
            }
            #expect(resumed == uninterrupted)
        }
    }

    @Test("validation batches are consecutive windows, the same every call")
    func validationWindows() throws {
        // 100 validation tokens at 900..<1000: (100 - 1) / 8 = 12 windows, batches 5, 5, 2.
        try positionalDataset(tokenCount: 1000, seqLen: 8) { dataset in
            let batches = dataset.validationBatches(batchSize: 5, seqLen: 8)
            #expect(batches.map { $0.inputs.count / 8 } == [5, 5, 2])

            let inputs = batches.flatMap(\.inputs)
            let targets = batches.flatMap(\.targets)
            #expect(inputs == Array(900..<996))
            #expect(targets == Array(901..<997))

            let again = dataset.validationBatches(batchSize: 5, seqLen: 8)
            #expect(again.map(\.inputs) == batches.map(\.inputs))
            #expect(again.map(\.targets) == batches.map(\.targets))
        }
    }

    @Test("maxBatches keeps only the first batches")
    func validationLimit() throws {
        try positionalDataset(tokenCount: 1000, seqLen: 8) { dataset in
            let batches = dataset.validationBatches(batchSize: 5, seqLen: 8, maxBatches: 2)
            #expect(batches.count == 2)
            #expect(batches.flatMap(\.inputs) == Array(900..<980))
        }
    }

    @Test("the unigram entropy is the add-one smoothed cross-entropy on validation")
    func unigramEntropy() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }

        // Training part: eight 0s, one 1, one 2 (10 tokens); validation: 0, 3.
        let ids = [0, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 3]
        let file = try scratch.tokenFile(ids, vocabSize: 4)
        let dataset = try TokenDataset(file: file, seqLen: 1, validationFraction: 2.0 / 12)
        #expect(dataset.trainRange == 0..<10)

        // p(0) = (8 + 1) / (10 + 4), p(3) = (0 + 1) / 14.
        let expected = -(log(9.0 / 14) + log(1.0 / 14)) / 2
        #expect(abs(dataset.unigramEntropy() - expected) < 1e-12)
    }

    @Test("on evenly spread tokens the unigram entropy is near log(vocabSize)")
    func uniformEntropy() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let file = try scratch.tokenFile((0..<10_000).map { $0 % 100 }, vocabSize: 100)
        let dataset = try TokenDataset(file: file, seqLen: 16)
        #expect(abs(dataset.unigramEntropy() - log(100.0)) < 1e-9)
    }

    @Test("uniform draws cover their range evenly")
    func uniformDraws() {
        var random = TrainingRandom(seed: 5)
        var counts = [Int](repeating: 0, count: 3)
        for _ in 0..<30_000 { counts[Int(uniform(below: 3, using: &random))] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 400 })
        #expect(uniform(below: 1, using: &random) == 0)
    }
}
