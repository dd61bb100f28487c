import Foundation
import SwiftLM

/// `swiftlm bench`: prefill and decode speed on a synthetic prompt, in the manner of llama.cpp's
/// llama-bench, so that the two can be run side by side (`bench/compare-llamacpp`).
enum BenchCommand: Command {
    static let name = "bench"
    static let summary = "measure prefill and decode speed in tokens per second"
    static let usage = """
        swiftlm bench [--model PATH] [--threads N] [--prompt-tokens N] [--gen-tokens N]
                      [--repetitions N] [--json]
        swiftlm bench --sequences N [--threads N] [--prompt-tokens N] [--gen-tokens N] [--json]
        swiftlm bench --ceilings [--threads N] [--json]

        Each repetition empties the context, evaluates a synthetic prompt in one call (prefill,
        in chunks of 512 tokens like llama.cpp's default micro-batch), then generates tokens one
        at a time by greedy argmax (decode). Both phases are timed. An untimed warm-up of 32
        prompt tokens and one step comes first. Prompt token i is (i * 7919) mod vocabSize, the
        ids that bench/compare-llamacpp gives llama.cpp too (llama-bench draws random ids; the
        work of a dense forward pass does not depend on which). Progress goes to stderr.

          --model PATH           GGUF model file (default: the default model)
          --threads N            threads to use (default: all cores)
          --prompt-tokens N      tokens of the prompt (default 128)
          --gen-tokens N         tokens to generate after it (default 64)
          --repetitions N        timed repetitions (default 5)
          --json                 print the table to stderr and, as the last line of stdout, one
                                 JSON object: prefill_tps, decode_tps (medians), their _min and
                                 _max, peak_rss_mb, threads, prompt_tokens, gen_tokens,
                                 repetitions, model
          --sequences N          measure the serving engine instead (no HTTP): N requests at
                                 once, each generating --gen-tokens; prints generated tokens/s
                                 of all together (median); JSON keys engine_tps, sequences
          --ceilings             measure the machine instead, with N threads at once: memory and
                                 L2 read bandwidth (GB/s), float multiply-adds (GFMA/s, 16-lane
                                 FMA) and int8 multiply-adds (GMAC/s, AVX-512 VNNI; absent
                                 without it); JSON keys memory_read_gbps, cache_read_gbps,
                                 float_gfma_per_s, int8_gmac_per_s, threads
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv,
            valued: [
                "model", "threads", "prompt-tokens", "gen-tokens", "repetitions", "sequences",
            ],
            flags: ["json", "ceilings"])
        let threads = try SamplingOptions.threads(arguments)
        if arguments.flag("ceilings") {
            for option in ["model", "prompt-tokens", "gen-tokens", "repetitions"]
            where arguments.string(option) != nil {
                throw UsageError("--\(option) does not apply to --ceilings")
            }
            try ceilings(threads: threads, json: arguments.flag("json"))
            return
        }
        let promptTokens = try arguments.int("prompt-tokens", default: 128, range: 1...1_048_576)
        let genTokens = try arguments.int("gen-tokens", default: 64, range: 1...1_048_576)
        let repetitions = try arguments.int("repetitions", default: 5, range: 1...1000)

        let model = try ModelLocation.open(arguments)
        if arguments.string("sequences") != nil {
            let sequences = try arguments.int("sequences", default: 1, range: 1...1024)
            let rates = try engineThroughput(
                model: model, sequences: sequences, promptTokens: promptTokens,
                genTokens: genTokens, repetitions: repetitions, threads: threads)
            let median = rates.sorted()[rates.count / 2]
            print("engine: \(sequences) sequences, \(format(median)) generated tokens/s (median)")
            if arguments.flag("json") {
                print("{\"engine_tps\": \(format(median)), \"sequences\": \(sequences)}")
            }
            return
        }
        let contextLength = model.config.contextLength
        guard promptTokens + genTokens <= contextLength else {
            throw UsageError(
                "--prompt-tokens \(promptTokens) plus --gen-tokens \(genTokens) exceed the "
                    + "model's context length of \(contextLength) tokens")
        }
        let context = InferenceContext(
            model: model.model, contextLength: promptTokens + genTokens, threadCount: threads)
        let prompt = syntheticPrompt(count: promptTokens, vocabSize: model.config.vocabSize)

        // A short untimed pass first: it pages in every weight of the memory-mapped file, which
        // would otherwise make the first repetition an outlier. llama-bench warms up with the
        // whole prompt; a prefix runs the same code on the same weights at a fraction of the cost.
        _ = try measure(context, Array(prompt.prefix(warmupTokens)), genTokens: 1)

        var runs: [Timing] = []
        for repetition in 1...repetitions {
            let timing = try measure(context, prompt, genTokens: genTokens)
            runs.append(timing)
            printError(
                "repetition \(repetition)/\(repetitions): "
                    + "prefill \(format(Double(promptTokens) / timing.prefillSeconds)) tokens/s, "
                    + "decode \(format(Double(genTokens) / timing.decodeSeconds)) tokens/s")
        }

        let report = Report(
            model: arguments.string("model") ?? DefaultModel.path, threads: threads,
            promptTokens: promptTokens, genTokens: genTokens, repetitions: repetitions,
            prefill: Spread(runs.map { Double(promptTokens) / $0.prefillSeconds }),
            decode: Spread(runs.map { Double(genTokens) / $0.decodeSeconds }),
            peakResidentMegabytes: peakResidentMegabytes())
        if arguments.flag("json") {
            printError(report.table)
            print(try report.json())
        } else {
            print(report.table)
        }
    }

    /// `--ceilings`: the machine's measured limits, as a table (and JSON).
    static func ceilings(threads: Int, json: Bool) throws {
        printError("measuring the machine with \(threads) thread\(threads == 1 ? "" : "s")...")
        let report = MachineCeilings.measure(pool: ThreadPool(threadCount: threads))
        let int8 = report.int8GMACps.map { format($0) } ?? "-"
        let table = """
            threads                  \(report.threads)
            memory read              \(format(report.memoryReadGBps)) GB/s
            L2 read                  \(format(report.cacheReadGBps)) GB/s
            float multiply-adds      \(format(report.floatGFMAps)) GFMA/s
            int8 multiply-adds       \(int8) GMAC/s
            """
        guard json else {
            print(table)
            return
        }
        printError(table)
        var object: [String: Any] = [
            "threads": report.threads,
            "memory_read_gbps": (report.memoryReadGBps * 10).rounded() / 10,
            "cache_read_gbps": (report.cacheReadGBps * 10).rounded() / 10,
            "float_gfma_per_s": (report.floatGFMAps * 10).rounded() / 10,
        ]
        object["int8_gmac_per_s"] = report.int8GMACps.map { ($0 * 10).rounded() / 10 }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Prompt tokens of the warm-up pass, more than one so that it runs the batched path too.
    static let warmupTokens = 32

    /// `count` token ids that step through the vocabulary by a prime stride, the same on every
    /// run and in the llama.cpp script, which must compute them the same way.
    static func syntheticPrompt(count: Int, vocabSize: Int) -> [Int] {
        (0..<count).map { $0 * 7919 % vocabSize }
    }

    struct Timing {
        var prefillSeconds: Double
        var decodeSeconds: Double
    }

    /// One repetition from an empty context: the prompt in one `evaluate`, then `genTokens`
    /// single-token steps (`decode`, which allocates nothing), each fed the argmax of the
    /// previous logits.
    static func measure(
        _ context: InferenceContext, _ prompt: [Int], genTokens: Int
    ) throws -> Timing {
        context.reset()
        let clock = ContinuousClock()

        var logits: [Float] = []
        let prefill = try clock.measure { logits = try context.evaluate(prompt) }

        var next = argmax(logits)
        let decode = try clock.measure {
            for _ in 0..<genTokens { next = argmax(try context.decode(next)) }
        }
        return Timing(prefillSeconds: seconds(prefill), decodeSeconds: seconds(decode))
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (whole, fraction) = duration.components
        return Double(whole) + Double(fraction) * 1e-18
    }

    /// The process's peak resident memory in MiB: VmHWM on Linux, which counts the pages of the
    /// memory-mapped model that were touched; getrusage's ru_maxrss elsewhere.
    static func peakResidentMegabytes() -> Double {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kibibytes = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        {
            return kibibytes / 1024
        }

        var usage = rusage()
        #if os(Linux)
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return Double(usage.ru_maxrss) / 1024  // kibibytes on Linux
        #else
            getrusage(RUSAGE_SELF, &usage)
            return Double(usage.ru_maxrss) / 1_048_576  // bytes on Darwin
        #endif
    }

    /// The median and the range of a few measurements.
    struct Spread {
        let median, min, max: Double

        init(_ values: [Double]) {
            precondition(!values.isEmpty, "a spread of no values")
            let sorted = values.sorted()
            let middle = sorted.count / 2
            median =
                sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
            min = sorted[0]
            max = sorted[sorted.count - 1]
        }
    }

    /// What one bench run found, as a table for people and JSON for scripts.
    struct Report {
        let model: String
        let threads, promptTokens, genTokens, repetitions: Int
        let prefill, decode: Spread
        let peakResidentMegabytes: Double

        var table: String {
            func row(_ name: String, _ spread: Spread) -> String {
                name.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + [spread.median, spread.min, spread.max].map { pad(format($0)) }.joined()
            }
            return [
                "model     \(model)",
                "threads   \(threads); prompt \(promptTokens) tokens, \(genTokens) generated; "
                    + "\(repetitions) repetitions",
                "tokens/s  " + ["median", "min", "max"].map { pad($0) }.joined(),
                row("prefill", prefill),
                row("decode", decode),
                "peak RSS  \(format(peakResidentMegabytes)) MiB",
            ].joined(separator: "\n")
        }

        func json() throws -> String {
            let object: [String: Any] = [
                "model": model,
                "threads": threads,
                "prompt_tokens": promptTokens,
                "gen_tokens": genTokens,
                "repetitions": repetitions,
                "prefill_tps": rounded(prefill.median),
                "prefill_tps_min": rounded(prefill.min),
                "prefill_tps_max": rounded(prefill.max),
                "decode_tps": rounded(decode.median),
                "decode_tps_min": rounded(decode.min),
                "decode_tps_max": rounded(decode.max),
                "peak_rss_mb": rounded(peakResidentMegabytes),
            ]
            let data = try JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self)
        }

        private func pad(_ text: String) -> String {
            String(repeating: " ", count: max(0, 10 - text.count)) + text
        }

        private func rounded(_ value: Double) -> Double { (value * 100).rounded() / 100 }
    }

    static func format(_ value: Double) -> String { String(format: "%.1f", value) }
}
