import Foundation
import SwiftLM

/// `swiftlm train`: trains a Llama-family model from scratch or fine-tunes all weights of a
/// pretrained one.
enum TrainCommand: Command {
    static let name = "train"
    static let summary = "train a model from scratch or fine-tune all of its weights"
    static let usage = """
        swiftlm train --config FILE|PRESET --data PATH --out DIR [options]
               swiftlm train --init-from MODEL.gguf --data PATH --out DIR [options]
               swiftlm train --resume --data PATH --out DIR

        Model:
          --config FILE|PRESET   a JSON model config or a preset: tiny (~0.8M parameters),
                                 small (~10M); see docs/TRAINING.md for the JSON keys
          --init-from PATH       start from a pretrained GGUF (full fine-tuning)
          --tokenizer PATH       a GGUF whose tokenizer to use from scratch (default: bytes)
        Data:
          --data PATH            a text file, a folder of text files, or a token file; text is
                                 tokenized once into DIR/data.tokens
        Run:
          --out DIR              checkpoints, metrics.jsonl, loss.svg and model.gguf go here
          --steps N (1000)  --batch-size N (8)  --seq-len N (128)  --lr X (1e-3)
          --warmup N  --min-lr X  --weight-decay X (0.1)  --grad-clip X (1; 0 = off)
          --optimizer adamw|sgd  --accumulation-steps N (1)  --dropout X (0)
          --checkpointing        recompute block activations in the backward (less memory)
          --checkpoint-every N (100)  --eval-every N (100)  --eval-batches N (8)
          --log-every N (10)  --seed N (1)  --threads N  --export f32|f16 (f32)
          --resume               continue the checkpoint in DIR exactly where it stopped
          --json                 print a JSON summary as the last line of stdout

        Progress (loss, tokens per second, ETA) goes to stderr. metrics.jsonl gets one JSON
        line per logged step: step, loss, val_loss (when computed), tokens_per_second,
        learning_rate.
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv,
            valued: [
                "config", "init-from", "tokenizer", "data", "out", "steps", "batch-size",
                "seq-len", "lr", "warmup", "min-lr", "weight-decay", "grad-clip", "optimizer",
                "accumulation-steps", "dropout", "checkpoint-every", "eval-every",
                "eval-batches", "log-every", "seed", "threads", "export",
            ],
            flags: ["checkpointing", "resume", "json"])
        let directory = try arguments.requiredString("out")
        let dataPath = try arguments.requiredString("data")
        let resume = arguments.flag("resume")
        let threads = try SamplingOptions.threads(arguments)
        Ops.pool = ThreadPool(threadCount: threads)
        let exportType = try exportType(arguments)

        // The tokenizer and, for fine-tuning, the pretrained model.
        let pretrained = try arguments.string("init-from").map { try PretrainedModel(path: $0) }
        let tokenizerSource = try arguments.string("tokenizer").map { try GGUFFile(path: $0) }
        let vocabulary =
            try pretrained.map { try TokenizerVocabulary(gguf: $0.file) }
            ?? tokenizerSource.map { try TokenizerVocabulary(gguf: $0) }
            ?? TokenizerVocabulary.byteLevel()
        let tokenizer = try Tokenizer(vocabulary: vocabulary)

        // Options and model configuration: from the checkpoint when resuming.
        let checkpoint = resume ? try existingCheckpoint(in: directory) : nil
        var options = checkpoint?.state.options ?? TrainingOptions()
        try apply(arguments, to: &options, resuming: resume)
        let config: LlamaConfig
        if let checkpoint {
            config = checkpoint.state.config
            // The draw of Performer features moves with the step; the sizes must not.
            var requested = try arguments.string("config").map {
                _ in try modelConfig(arguments, vocabSize: vocabulary.tokens.count)
            }
            requested?.performerDraw = config.performerDraw
            if let requested, requested != config {
                throw UsageError(
                    "--config differs from the model of the checkpoint in \(directory)")
            }
        } else if let pretrained {
            config = pretrained.config
        } else {
            config = try modelConfig(arguments, vocabSize: vocabulary.tokens.count)
        }

        guard options.seqLen <= config.contextLength else {
            throw UsageError(
                "--seq-len \(options.seqLen) exceeds the model's context length "
                    + "\(config.contextLength)")
        }
        _ = try dataIsFolder(dataPath)
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true)
        let dataset = try loadData(
            dataPath, tokenizer: tokenizer, directory: directory, minimum: options.seqLen + 1)

        var random = TrainingRandom(seed: options.seed)
        let model =
            try pretrained.map { try TrainableLlama(model: $0.model) }
            ?? TrainableLlama(config: config, random: &random)
        printError(
            "model: \(model.parameterCount) parameters, \(config.layerCount) layers, hidden "
                + "\(config.hidden); data: \(dataset.trainingTokenCount) training and "
                + "\(dataset.validationTokenCount) validation tokens; BLAS: \(BLAS.kernelName)")

        let trainer = try Trainer(
            model: model, dataset: dataset, options: options, directory: directory,
            resume: resume)
        let progress = TrainingProgress()
        try trainer.run { progress.show($0) }

        // The trained model as GGUF, and the loss curve.
        let modelPath = (directory as NSString).appendingPathComponent("model.gguf")
        let tokenizerMetadata =
            (pretrained?.file ?? tokenizerSource).map(ModelFileWriter.tokenizerMetadata(of:))
            ?? ModelFileWriter.tokenizerMetadata(vocabulary)
        try ModelFileWriter.write(
            config: model.config, name: "swiftlm train", tokenizer: tokenizerMetadata,
            tensors: model.namedTensors, type: exportType, to: modelPath)
        let records = try MetricsLog.read(directory: directory)
        let plotPath = (directory as NSString).appendingPathComponent("loss.svg")
        let unigram = dataset.unigramEntropy()
        try LossCurvePlot(
            title: "Training loss (nats per token)", records: records,
            baseline: .init(label: "unigram baseline", loss: unigram)
        ).write(to: plotPath)

        let finalLoss = records.last?.loss ?? .nan
        printError(
            "wrote \(modelPath) and \(plotPath); final loss \(format(finalLoss)), validation "
                + "\(trainer.lastValidationLoss.map(format) ?? "-"), unigram baseline "
                + format(unigram))
        if arguments.flag("json") {
            let summary: [String: Any] = [
                "steps": trainer.step, "loss": finalLoss,
                "val_loss": trainer.lastValidationLoss ?? NSNull(),
                "unigram_baseline": unigram, "model": modelPath,
                "parameters": model.parameterCount,
                "tokens_per_second": progress.medianTokensPerSecond(
                    tokensPerStep: options.tokensPerStep),
                "step_seconds": progress.medianStepSeconds,
                "peak_rss_mb": BenchCommand.peakResidentMegabytes(),
                "peak_tensor_mb": Double(TensorMemory.peakBytes) / 1_048_576,
                "checkpointing": options.checkpointing, "threads": threads,
            ]
            let json = try JSONSerialization.data(withJSONObject: summary, options: .sortedKeys)
            print(String(decoding: json, as: UTF8.self))
        }
    }

    private static func format(_ value: Double) -> String { String(format: "%.4f", value) }

    private static func exportType(_ arguments: Arguments) throws -> ElementType {
        switch arguments.string("export") ?? "f32" {
        case "f32": return .f32
        case "f16": return .f16
        case let other: throw UsageError("--export must be f32 or f16, got '\(other)'")
        }
    }

    private static func existingCheckpoint(in directory: String) throws -> TrainingCheckpoint {
        let path = TrainingCheckpoint.path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError.noCheckpoint(directory: directory)
        }
        return try TrainingCheckpoint(path: path)
    }

    /// The model sizes of `--config`: a preset name or a JSON file.
    private static func modelConfig(_ arguments: Arguments, vocabSize: Int) throws -> LlamaConfig {
        guard let value = arguments.string("config") else {
            throw UsageError("one of --config, --init-from or --resume is required")
        }
        if let preset = ModelPreset(rawValue: value) { return preset.config(vocabSize: vocabSize) }
        guard FileManager.default.fileExists(atPath: value) else {
            let names = ModelPreset.allCases.map(\.rawValue).joined(separator: ", ")
            throw UsageError("--config '\(value)' is neither a preset (\(names)) nor a file")
        }
        let file: ModelConfigFile
        do {
            file = try JSONDecoder().decode(
                ModelConfigFile.self, from: Data(contentsOf: URL(fileURLWithPath: value)))
        } catch let error as DecodingError {
            throw UsageError("\(value): \(describe(error))")
        }
        return try file.config(tokenizerVocabSize: vocabSize)
    }

    /// Command-line overrides of the training options. On resume only the run length may
    /// change, since the rest shapes the trajectory being continued.
    private static func apply(
        _ arguments: Arguments, to options: inout TrainingOptions, resuming: Bool
    ) throws {
        let saved = options
        options.steps = try arguments.int("steps", default: options.steps, range: 1...100_000_000)
        options.batchSize = try arguments.int(
            "batch-size", default: options.batchSize, range: 1...65536)
        options.seqLen = try arguments.int("seq-len", default: options.seqLen, range: 2...1 << 20)
        options.learningRate = try arguments.float(
            "lr", default: options.learningRate, range: 1e-12...10)
        if arguments.string("warmup") != nil {
            options.warmupSteps = try arguments.int("warmup", default: 0, range: 0...100_000_000)
        }
        if arguments.string("min-lr") != nil {
            options.minLearningRate = try arguments.float("min-lr", default: 0, range: 0...10)
        }
        options.weightDecay = try arguments.double(
            "weight-decay", default: options.weightDecay, range: 0...10)
        options.gradientClip = try arguments.float(
            "grad-clip", default: options.gradientClip, range: 0...1e9)
        options.optimizer = arguments.string("optimizer") ?? options.optimizer
        options.accumulationSteps = try arguments.int(
            "accumulation-steps", default: options.accumulationSteps, range: 1...4096)
        options.dropout = try arguments.float("dropout", default: options.dropout, range: 0...0.99)
        options.checkpointing = options.checkpointing || arguments.flag("checkpointing")
        options.checkpointEvery = try arguments.int(
            "checkpoint-every", default: options.checkpointEvery, range: 1...100_000_000)
        options.evalEvery = try arguments.int(
            "eval-every", default: options.evalEvery, range: 0...100_000_000)
        options.evalBatches = try arguments.int(
            "eval-batches", default: options.evalBatches, range: 1...100_000)
        options.logEvery = try arguments.int(
            "log-every", default: options.logEvery, range: 1...100_000_000)
        options.seed = UInt64(
            try arguments.int("seed", default: Int(options.seed), range: 0...Int.max))
        try options.validate()

        // On resume only the run length and the reporting may change: the rest shapes the
        // trajectory being continued.
        if resuming {
            var comparable = options
            comparable.steps = saved.steps
            comparable.checkpointEvery = saved.checkpointEvery
            comparable.evalEvery = saved.evalEvery
            comparable.evalBatches = saved.evalBatches
            comparable.logEvery = saved.logEvery
            comparable.checkpointing = saved.checkpointing
            if comparable != saved {
                throw UsageError(
                    "--resume continues the checkpoint's run; only --steps, --checkpoint-every, "
                        + "--eval-every, --eval-batches, --log-every and --checkpointing may "
                        + "differ from the options it was started with")
            }
        }
    }

    /// A token file as it is, or text tokenized once into DIR/data.tokens.
    /// Whether `--data PATH` is a folder; the one-line error when it does not exist. The
    /// commands ask before they make their output folder, so that a mistyped path leaves
    /// nothing behind.
    static func dataIsFolder(_ path: String) throws -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw UsageError("--data \(path) does not exist")
        }
        return isDirectory.boolValue
    }

    static func loadData(
        _ path: String, tokenizer: Tokenizer, directory: String, minimum: Int
    ) throws -> TokenDataset {
        if try !dataIsFolder(path), isTokenFile(path) {
            return try TokenDataset(file: TokenFile(path: path), seqLen: minimum - 1)
        }

        let tokenPath = (directory as NSString).appendingPathComponent("data.tokens")
        if !FileManager.default.fileExists(atPath: tokenPath) {
            let bar = ProgressBar(total: 100, unit: "%")
            var shown = -1
            let summary = try CorpusTokenizer.tokenize(
                corpusPath: path, tokenizer: tokenizer, outputPath: tokenPath,
                minimumTokenCount: minimum
            ) { progress in
                guard progress.totalBytes > 0 else { return }
                let percent =
                    progress.totalBytes > 0 ? 100 * progress.bytesDone / progress.totalBytes : 100
                if percent != shown {
                    shown = percent
                    bar.update(percent)
                }
            }
            printError(
                "tokenized \(summary.files.count) files, \(summary.byteCount) bytes into "
                    + "\(summary.tokenCount) tokens: \(tokenPath)")
        }
        return try TokenDataset(file: TokenFile(path: tokenPath), seqLen: minimum - 1)
    }

    /// Whether `path` starts with the token file's magic bytes.
    private static func isTokenFile(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: TokenFile.magic.utf8.count)) ?? Data()
        return head == Data(TokenFile.magic.utf8)
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): return "missing key '\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context),
            .dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty
                ? context.debugDescription : "'\(path)': \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// Draws training events on stderr: a bar with loss, rate and ETA; a line per evaluation.
final class TrainingProgress {
    private var bar: ProgressBar?
    private var lastStepEnd: Date?
    /// Wall time of each step run in this process (evaluation and checkpoints excluded).
    private(set) var stepSeconds: [Double] = []

    /// The median step time, leaving out the first step (allocations, cold caches).
    var medianStepSeconds: Double {
        let steady = stepSeconds.count > 1 ? Array(stepSeconds.dropFirst()) : stepSeconds
        guard !steady.isEmpty else { return .nan }
        let sorted = steady.sorted()
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    func medianTokensPerSecond(tokensPerStep: Int) -> Double {
        Double(tokensPerStep) / medianStepSeconds
    }

    func show(_ event: TrainingEvent) {
        switch event {
        case .started(let step, let total):
            lastStepEnd = Date()
            bar = ProgressBar(total: total, unit: "steps", startingAt: step)
            if step > 0 { printError("resuming after step \(step) of \(total)") }
        case .step(let report):
            let now = Date()
            if let lastStepEnd { stepSeconds.append(now.timeIntervalSince(lastStepEnd)) }
            lastStepEnd = now
            let detail = String(
                format: "loss %.4f  %.0f tok/s  lr %.2e", report.loss, report.tokensPerSecond,
                report.learningRate)
            bar?.update(report.step, detail: detail)
        case .evaluation(let step, let loss):
            bar?.interrupt(String(format: "step %d: validation loss %.4f", step, loss))
            lastStepEnd = Date()
        case .checkpoint:
            lastStepEnd = Date()
        }
    }
}
