import Foundation
import SwiftLM

/// `swiftlm attention-bench`: time and memory of one attention layer, forward and backward,
/// for one kind and one sequence length. `bench/attention-scaling` sweeps it.
enum AttentionBenchCommand: Command {
    static let name = "attention-bench"
    static let summary = "time one attention layer forward and backward"
    static let usage = """
        swiftlm attention-bench --kind KIND --seq-len N [--batch-size N] [--heads N]
                                [--kv-heads N] [--head-dim N] [--repetitions N] [--threads N]
                                [--json]
               swiftlm attention-bench --list-kinds

        KIND: naive (the plain form that keeps the seqLen x seqLen probabilities), tiled (exact
        attention in tiles with an online softmax), sparse (a 256-token sliding window and one
        global token, block-sparse) or performer (FAVOR+ with 256 random features).
        Runs the forward and the backward of one causal grouped-query attention on random
        inputs `--repetitions` times (default 3) after one warm-up, and reports the median
        seconds of forward, of forward plus backward, and the peak bytes owned by tensors
        beyond the inputs (TensorMemory). With --json the last stdout line is
        {"kind", "seq_len", "forward_seconds", "total_seconds", "peak_mb", ...}.
        """

    /// The attention kinds this command can time, by name.
    static let kinds: [String: AttentionKernel] = [
        "naive": { q, k, v, shape in
            Ops.causalAttention(
                query: q, key: k, value: v, batchSize: shape.batchSize, seqLen: shape.seqLen,
                headCount: shape.headCount, kvHeadCount: shape.kvHeadCount,
                headDim: shape.headDim)
        },
        "tiled": { q, k, v, shape in
            Ops.tiledCausalAttention(
                query: q, key: k, value: v, batchSize: shape.batchSize, seqLen: shape.seqLen,
                headCount: shape.headCount, kvHeadCount: shape.kvHeadCount,
                headDim: shape.headDim)
        },
        // A 256-token window with one global token at position 0.
        "sparse": { q, k, v, shape in
            Ops.sparseCausalAttention(
                query: q, key: k, value: v, batchSize: shape.batchSize, seqLen: shape.seqLen,
                headCount: shape.headCount, kvHeadCount: shape.kvHeadCount,
                headDim: shape.headDim,
                pattern: SparseAttentionPattern(window: 256, globalPositions: [0]))
        },
        // 256 random features.
        "performer": { q, k, v, shape in
            Ops.performerCausalAttention(
                query: q, key: k, value: v, batchSize: shape.batchSize, seqLen: shape.seqLen,
                headCount: shape.headCount, kvHeadCount: shape.kvHeadCount,
                headDim: shape.headDim,
                features: RandomFeatures(featureCount: 256, headDim: shape.headDim, seed: 1))
        },
    ]

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv,
            valued: [
                "kind", "seq-len", "batch-size", "heads", "kv-heads", "head-dim", "repetitions",
                "threads",
            ],
            flags: ["json", "list-kinds"])
        if arguments.flag("list-kinds") {
            print(kinds.keys.sorted().joined(separator: "\n"))
            return
        }
        let kindName = try arguments.requiredString("kind")
        guard let kernel = kinds[kindName] else {
            throw UsageError(
                "--kind must be one of \(kinds.keys.sorted().joined(separator: ", ")), got "
                    + "'\(kindName)'")
        }
        let shape = BenchShape(
            batchSize: try arguments.int("batch-size", default: 1, range: 1...1024),
            seqLen: try arguments.int("seq-len", default: 1024, range: 1...1 << 20),
            headCount: try arguments.int("heads", default: 8, range: 1...1024),
            kvHeadCount: try arguments.int("kv-heads", default: 2, range: 1...1024),
            headDim: try arguments.int("head-dim", default: 64, range: 2...4096))
        guard shape.headCount % shape.kvHeadCount == 0 else {
            throw UsageError("--kv-heads must divide --heads")
        }
        let repetitions = try arguments.int("repetitions", default: 3, range: 1...1000)
        Ops.pool = ThreadPool(threadCount: try SamplingOptions.threads(arguments))

        var random = TrainingRandom(seed: 1)
        func input(_ width: Int) -> Variable {
            let tensor = Tensor(zeros: [shape.batchSize * shape.seqLen, width])
            for index in 0..<tensor.elementCount {
                tensor.floats[index] = random.nextNormal()
            }
            return Variable(tensor, requiresGradient: true)
        }
        let query = input(shape.headCount * shape.headDim)
        let key = input(shape.kvHeadCount * shape.headDim)
        let value = input(shape.kvHeadCount * shape.headDim)

        // One warm-up, then the timed repetitions; the upstream gradient is all ones.
        var forwardTimes: [Double] = []
        var totalTimes: [Double] = []
        var peakBytes = 0
        for repetition in 0...repetitions {
            for variable in [query, key, value] { variable.zeroGradient() }
            let base = TensorMemory.liveBytes
            TensorMemory.resetPeak()
            let start = Date()
            let output = kernel(query, key, value, shape)
            let forwardEnd = Date()
            let upstream = output.gradientStorage()
            upstream.update(repeating: 1, count: output.elementCount)
            output.backwardFromStoredGradient()
            let end = Date()
            guard repetition > 0 else { continue }
            forwardTimes.append(forwardEnd.timeIntervalSince(start))
            totalTimes.append(end.timeIntervalSince(start))
            peakBytes = max(peakBytes, TensorMemory.peakBytes - base)
        }

        let forward = median(forwardTimes)
        let total = median(totalTimes)
        let peak = Double(peakBytes) / 1_048_576
        printError(
            String(
                format: "%@ seqLen %d: forward %.4f s, forward+backward %.4f s, peak %.1f MB",
                kindName, shape.seqLen, forward, total, peak))
        if arguments.flag("json") {
            let summary: [String: Any] = [
                "kind": kindName, "seq_len": shape.seqLen, "batch_size": shape.batchSize,
                "heads": shape.headCount, "kv_heads": shape.kvHeadCount,
                "head_dim": shape.headDim, "forward_seconds": forward, "total_seconds": total,
                "peak_mb": peak, "threads": Ops.pool.threadCount, "repetitions": repetitions,
            ]
            let json = try JSONSerialization.data(withJSONObject: summary, options: .sortedKeys)
            print(String(decoding: json, as: UTF8.self))
        }
    }

    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

/// The sizes of one benchmarked attention layer.
struct BenchShape: Sendable {
    var batchSize: Int
    var seqLen: Int
    var headCount: Int
    var kvHeadCount: Int
    var headDim: Int
}

/// Query, key, value and the shape -> the attention output.
typealias AttentionKernel = @Sendable (Variable, Variable, Variable, BenchShape) -> Variable
