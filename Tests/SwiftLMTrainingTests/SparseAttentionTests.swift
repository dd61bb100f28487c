import Foundation
import SwiftLMCore
import Testing

@testable import SwiftLMTraining

extension PooledOpsTests {
    @Suite("Autograd: sparse causal attention")
    struct SparseAttentionTests {
        typealias Shape = AttentionOpsTests.Shape

        /// A shape and a pattern.
        struct Case: Sendable, CustomTestStringConvertible {
            var shape: Shape
            var pattern: SparseAttentionPattern

            var testDescription: String {
                "\(shape.testDescription); window \(pattern.window), "
                    + "global \(pattern.globalPositions), \(pattern.randomBlocks) random of "
                    + "\(pattern.blockSize)"
            }
        }

        /// GQA 4/2 and batch 2 throughout; 70 and 37 positions, which blocks of 4, 8 and 16 do
        /// not divide, and 10, shorter than a block. Windows from 1 (only the diagonal) to
        /// longer than a block; global positions at 0, in the middle and at the end, and more
        /// than a block of them (so global keys and rows take several gathered tiles), and one
        /// past the sequence (ignored); random blocks alone and with globals.
        static let cases: [Case] = {
            let long = Shape(batchSize: 2, seqLen: 70, headCount: 4, kvHeadCount: 2, headDim: 16)
            let short = Shape(batchSize: 2, seqLen: 37, headCount: 4, kvHeadCount: 2, headDim: 8)
            let tiny = Shape(batchSize: 2, seqLen: 10, headCount: 4, kvHeadCount: 2, headDim: 4)
            return [
                Case(shape: long, pattern: SparseAttentionPattern(window: 1, blockSize: 16)),
                Case(shape: long, pattern: SparseAttentionPattern(window: 5, blockSize: 8)),
                Case(
                    shape: long,
                    pattern: SparseAttentionPattern(
                        window: 20, globalPositions: [0], blockSize: 16)),
                Case(
                    shape: long,
                    pattern: SparseAttentionPattern(
                        window: 9, globalPositions: [33], blockSize: 8)),
                Case(
                    shape: long,
                    pattern: SparseAttentionPattern(
                        window: 3, globalPositions: [0, 17, 33, 69], blockSize: 16)),
                Case(
                    shape: long,
                    pattern: SparseAttentionPattern(
                        window: 8, randomBlocks: 2, blockSize: 8, seed: 5)),
                Case(
                    shape: long,
                    pattern: SparseAttentionPattern(
                        window: 12, globalPositions: [0, 40], randomBlocks: 1, blockSize: 8,
                        seed: 9)),
                Case(
                    shape: short,
                    pattern: SparseAttentionPattern(
                        window: 2, globalPositions: [0, 3, 5, 9, 14, 20, 21, 30, 36],
                        randomBlocks: 3, blockSize: 4, seed: 3)),
                Case(
                    shape: short,
                    pattern: SparseAttentionPattern(window: 40, globalPositions: [10])),
                Case(
                    shape: tiny,
                    pattern: SparseAttentionPattern(
                        window: 3, globalPositions: [4, 12], randomBlocks: 2, blockSize: 16)),
            ]
        }()

        /// Allowed |sparse − reference| / max(1, |reference|): F32 sums in another order.
        static let tolerance: Float = 1e-5

        static func sparse(
            _ shape: Shape, _ pattern: SparseAttentionPattern
        )
            -> ([Variable]) -> Variable
        {
            { inputs in
                Ops.sparseCausalAttention(
                    query: inputs[0], key: inputs[1], value: inputs[2],
                    batchSize: shape.batchSize, seqLen: shape.seqLen,
                    headCount: shape.headCount, kvHeadCount: shape.kvHeadCount,
                    headDim: shape.headDim, pattern: pattern)
            }
        }

        // MARK: - Against the plain and the naive attention

        @Test(
            "with a window covering the sequence it equals the plain causal attention",
            arguments: [
                SparseAttentionPattern(window: 70, blockSize: 16),
                SparseAttentionPattern(window: 1000, globalPositions: [0, 31], randomBlocks: 2),
                SparseAttentionPattern(
                    window: 70, globalPositions: [0, 5, 69], randomBlocks: 3, blockSize: 8),
            ])
        func coveringWindowMatchesPlain(pattern: SparseAttentionPattern) {
            let shape = Shape(batchSize: 2, seqLen: 70, headCount: 4, kvHeadCount: 2, headDim: 16)
            let operation = Self.sparse(shape, pattern)
            let inputs = shape.inputs(seed: 131, requiresGradient: true)
            let copies = inputs.map { Variable($0.value, requiresGradient: true) }
            #expect(
                TiledAttentionTests.difference(
                    operation(inputs).value, shape.attention(copies).value) <= Self.tolerance)

            let sparse = TiledAttentionTests.gradients(inputs, operation)
            let plain = TiledAttentionTests.gradients(copies, shape.attention)
            for (which, (actual, expected)) in zip(sparse, plain).enumerated() {
                let difference = TiledAttentionTests.difference(actual, expected)
                #expect(difference <= Self.tolerance, "input \(which): \(difference)")
            }
        }

        @Test("output and gradients equal the naive masked attention", arguments: cases)
        func matchesNaive(_ testCase: Case) {
            let (shape, pattern) = (testCase.shape, testCase.pattern)
            let inputs = shape.inputs(seed: 141, requiresGradient: true)
            let output = Self.sparse(shape, pattern)(inputs)
            let probe = GradientCheck.random(output.shape, seed: 61)
            output.gradientStorage().update(from: probe.floats, count: probe.elementCount)
            output.backward(seededGradient: ())

            let reference = NaiveMaskedAttention(
                shape: shape, pattern: pattern, query: inputs[0].value, key: inputs[1].value,
                value: inputs[2].value, outputGradient: probe)
            #expect(Self.difference(output.value, reference.output) <= Self.tolerance)
            let expected = [
                reference.queryGradient, reference.keyGradient, reference.valueGradient,
            ]
            for (which, (input, expected)) in zip(inputs, expected).enumerated() {
                let difference = Self.difference(input.gradient!, expected)
                #expect(difference <= Self.tolerance, "input \(which): \(difference)")
            }
        }

        static func difference(_ actual: Tensor, _ expected: [Double]) -> Float {
            zip(actual.toArray(), expected)
                .map { Float(abs(Double($0) - $1) / max(1, abs($1))) }.max()!
        }

        @Test("gradients match finite differences on a small case")
        func finiteDifferences() {
            let shape = Shape(batchSize: 2, seqLen: 11, headCount: 4, kvHeadCount: 2, headDim: 4)
            let pattern = SparseAttentionPattern(
                window: 2, globalPositions: [0, 6], randomBlocks: 1, blockSize: 2, seed: 4)
            GradientCheck.check(
                shape.inputs(seed: 151, requiresGradient: true), Self.sparse(shape, pattern))
        }

        @Test("a query or key/value constant gets no gradient and the others stay right")
        func partialGradients() {
            let shape = Shape(batchSize: 1, seqLen: 9, headCount: 4, kvHeadCount: 2, headDim: 4)
            let pattern = SparseAttentionPattern(
                window: 2, globalPositions: [3], randomBlocks: 1, blockSize: 2, seed: 1)
            let operation = Self.sparse(shape, pattern)
            var inputs = shape.inputs(seed: 161, requiresGradient: true)
            inputs[0] = Variable(inputs[0].value)
            GradientCheck.check(inputs, operation)
            #expect(inputs[0].gradient == nil)

            inputs = shape.inputs(seed: 162, requiresGradient: true)
            inputs[1] = Variable(inputs[1].value)
            inputs[2] = Variable(inputs[2].value)
            GradientCheck.check(inputs, operation)
            #expect(inputs[1].gradient == nil && inputs[2].gradient == nil)
        }

        // MARK: - Cost

        @Test("visited key tiles grow linearly with seqLen for a fixed window")
        func linearCost() {
            let pattern = SparseAttentionPattern(
                window: 256, globalPositions: [0], randomBlocks: 2, blockSize: 64, seed: 7)
            let lengths = [1024, 2048, 4096, 8192, 16384]
            let counts = lengths.map {
                SparseAttentionPlan(pattern: pattern, seqLen: $0).visitedTileCount(tileSize: 64)
            }

            // Past the first window every query tile visits the same number of tiles: 5 of the
            // band, 2 random and 1 of the global key, so doubling the length adds 8 per tile.
            for index in 1..<lengths.count {
                let addedTiles = (lengths[index] - lengths[index - 1]) / 64
                #expect(counts[index] - counts[index - 1] == 8 * addedTiles)
            }
            // The exact causal attention visits every tile up to the diagonal.
            let tiles = 16384 / 64
            #expect(counts.last! * 16 < tiles * (tiles + 1) / 2)
        }

        @Test("every tile pair the pattern allows is visited, and nothing else")
        func planCoversThePattern() {
            for testCase in Self.cases {
                let (seqLen, pattern) = (testCase.shape.seqLen, testCase.pattern)
                let plan = SparseAttentionPlan(pattern: pattern, seqLen: seqLen)
                let blockSize = pattern.blockSize
                for query in 0..<seqLen where !pattern.isGlobal(query) {
                    let queryTile = query / blockSize
                    var seen = Set<Int>()
                    for keyTile in plan.keyTiles[queryTile] {
                        let mask = SparseTileMask(
                            queryStart: queryTile * blockSize, keyStart: keyTile * blockSize,
                            window: keyTile < plan.bandStarts[queryTile] ? .max : pattern.window,
                            isGlobal: plan.isGlobal)
                        let columns = min(blockSize, seqLen - keyTile * blockSize)
                        let visible = mask.visibleColumns(
                            row: query - queryTile * blockSize, columns: columns)
                        for column in visible { seen.insert(keyTile * blockSize + column) }
                    }
                    let mask = GlobalKeyMask(
                        queryStart: queryTile * blockSize, chunkStart: 0, plan: plan)
                    let globalColumns = mask.visibleColumns(
                        row: query - queryTile * blockSize,
                        columns: plan.globalKeyCounts[queryTile])
                    for column in globalColumns {
                        #expect(seen.insert(plan.globalPositions[column]).inserted)
                    }
                    let allowed = Set((0...query).filter { pattern.allows(query: query, key: $0) })
                    #expect(seen == allowed, "\(testCase), query \(query)")
                }
            }
        }

        // MARK: - The pattern

        @Test("the rule: causal, the window, global positions both ways, random blocks")
        func allowsRule() {
            let pattern = SparseAttentionPattern(
                window: 3, globalPositions: [2, 20], randomBlocks: 1, blockSize: 4, seed: 11)
            #expect(!pattern.allows(query: 5, key: 6))
            #expect(pattern.allows(query: 9, key: 7) && !pattern.allows(query: 9, key: 6))
            #expect(pattern.allows(query: 30, key: 2) && !pattern.allows(query: 1, key: 2))
            #expect((0...20).allSatisfy { pattern.allows(query: 20, key: $0) })
            #expect(!pattern.allows(query: 21, key: 20 - 4))

            let queryBlock = 10
            let random = pattern.randomKeyBlocks(queryBlock: queryBlock)
            #expect(random.count == 1)
            for key in random[0] * 4..<(random[0] + 1) * 4 {
                #expect(pattern.allows(query: queryBlock * 4, key: key))
            }
        }

        @Test("random blocks are distinct, before the window, free of globals, and reproducible")
        func randomBlocks() {
            let pattern = SparseAttentionPattern(
                window: 10, globalPositions: [0, 13, 14, 40], randomBlocks: 3, blockSize: 4,
                seed: 21)
            var drawn = Set<[Int]>()
            for queryBlock in 0..<40 {
                let blocks = pattern.randomKeyBlocks(queryBlock: queryBlock)
                let farBlocks = max(0, queryBlock * 4 - 10 + 1) / 4
                let candidates = (0..<farBlocks).filter { ![0, 3, 10].contains($0) }
                #expect(blocks.count == min(3, candidates.count))
                #expect(blocks == blocks.sorted() && Set(blocks).count == blocks.count)
                #expect(blocks.allSatisfy(candidates.contains))
                #expect(blocks == pattern.randomKeyBlocks(queryBlock: queryBlock))
                drawn.insert(blocks)
            }
            #expect(drawn.count > 20, "draws should differ between query blocks")

            let reseeded = SparseAttentionPattern(
                window: 10, globalPositions: [0, 13, 14, 40], randomBlocks: 3, blockSize: 4,
                seed: 22)
            #expect(
                (0..<40).contains {
                    pattern.randomKeyBlocks(queryBlock: $0)
                        != reseeded.randomKeyBlocks(queryBlock: $0)
                })
        }

        @Test("a pattern round-trips through JSON and decodes with defaults")
        func codable() throws {
            let pattern = SparseAttentionPattern(
                window: 256, globalPositions: [0, 7], randomBlocks: 3, blockSize: 32, seed: 99)
            let data = try JSONEncoder().encode(pattern)
            #expect(try JSONDecoder().decode(SparseAttentionPattern.self, from: data) == pattern)

            let minimal = try JSONDecoder().decode(
                SparseAttentionPattern.self, from: Data(#"{"window": 128}"#.utf8))
            #expect(minimal == SparseAttentionPattern(window: 128))
        }

        @Test(
            "a pattern out of range fails to decode, naming the field",
            arguments: [
                (#"{"window": 0}"#, "window"),
                (#"{"window": 4, "blockSize": 0}"#, "blockSize"),
                (#"{"window": 4, "randomBlocks": -1}"#, "randomBlocks"),
                (#"{"window": 4, "globalPositions": [3, 3]}"#, "globalPositions"),
                (#"{"window": 4, "globalPositions": [-1]}"#, "globalPositions"),
            ])
        func decodingRejects(json: String, field: String) {
            let error = #expect(throws: DecodingError.self) {
                try JSONDecoder().decode(SparseAttentionPattern.self, from: Data(json.utf8))
            }
            #expect(error.map { "\($0)".contains(field) } == true, "\(String(describing: error))")
        }
    }
}

/// Masked attention by its definition in Double, forward and backward, for loss =
/// Σ output ⊙ `outputGradient`: one (batch, head, query) at a time over the keys `allows`
/// admits. The backward is the softmax gradient of Dao et al. 2022 (appendix B.2) written out
/// per element.
struct NaiveMaskedAttention {
    var output: [Double]
    var queryGradient: [Double]
    var keyGradient: [Double]
    var valueGradient: [Double]

    init(
        shape: PooledOpsTests.AttentionOpsTests.Shape, pattern: SparseAttentionPattern,
        query: Tensor,
        key: Tensor, value: Tensor, outputGradient: Tensor
    ) {
        let (seqLen, headDim) = (shape.seqLen, shape.headDim)
        let queryWidth = shape.headCount * headDim
        let kvWidth = shape.kvHeadCount * headDim
        let group = shape.headCount / shape.kvHeadCount
        let scale = 1 / Double(headDim).squareRoot()
        let (q, k, v, dO) = (
            query.toArray().map(Double.init), key.toArray().map(Double.init),
            value.toArray().map(Double.init), outputGradient.toArray().map(Double.init)
        )
        output = [Double](repeating: 0, count: q.count)
        queryGradient = [Double](repeating: 0, count: q.count)
        keyGradient = [Double](repeating: 0, count: k.count)
        valueGradient = [Double](repeating: 0, count: v.count)

        for batch in 0..<shape.batchSize {
            for head in 0..<shape.headCount {
                let kvColumn = head / group * headDim
                for i in 0..<seqLen {
                    let queryRow = (batch * seqLen + i) * queryWidth + head * headDim
                    let keys = (0...i).filter { pattern.allows(query: i, key: $0) }
                    let keyRows = keys.map { (batch * seqLen + $0) * kvWidth + kvColumn }
                    func dot(_ a: [Double], _ aRow: Int, _ b: [Double], _ bRow: Int) -> Double {
                        (0..<headDim).reduce(0.0) { $0 + a[aRow + $1] * b[bRow + $1] }
                    }

                    let scores = keyRows.map { dot(q, queryRow, k, $0) * scale }
                    let weights = scores.map { exp($0 - scores.max()!) }
                    let total = weights.reduce(0, +)
                    let p = weights.map { $0 / total }
                    for (j, row) in keyRows.enumerated() {
                        for d in 0..<headDim { output[queryRow + d] += p[j] * v[row + d] }
                    }

                    // dP = dO · V, D = Σ P ⊙ dP, dS = P ⊙ (dP − D).
                    let dP = keyRows.map { dot(dO, queryRow, v, $0) }
                    let rowDot = zip(p, dP).reduce(0.0) { $0 + $1.0 * $1.1 }
                    for (j, row) in keyRows.enumerated() {
                        let dS = p[j] * (dP[j] - rowDot)
                        for d in 0..<headDim {
                            valueGradient[row + d] += p[j] * dO[queryRow + d]
                            queryGradient[queryRow + d] += scale * dS * k[row + d]
                            keyGradient[row + d] += scale * dS * q[queryRow + d]
                        }
                    }
                }
            }
        }
    }
}
