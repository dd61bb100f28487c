import Foundation
import SwiftLM

/// `swiftlm finetune`: adapts a pretrained model with LoRA, QLoRA, prefix or prompt tuning,
/// or by training every weight, and writes the adapter in Hugging Face PEFT's format.
enum FinetuneCommand: Command {
    static let name = "finetune"
    static let summary = "adapt a pretrained model: LoRA, QLoRA, prefix or prompt tuning, full"
    static let usage = """
        swiftlm finetune --method lora|qlora|prefix|prompt|full --data FILE --out DIR [options]
               swiftlm finetune --dry-run [--json] [options]

        Model and method:
          --model PATH           the base GGUF (default: the default model)
          --method M             lora: LoRA on a frozen F32 copy of the base; qlora: LoRA on
                                 the base in its file's quantization, dequantized as used;
                                 prefix: learned keys and values in every layer; prompt:
                                 learned input embeddings; full: every weight trains
          --rank R (8)  --alpha A (16)  --rslora (scale alpha/sqrt(r), not alpha/r)
          --lora-dropout X (0.05)  --targets q,k,v,o (any of q,k,v,o,gate,up,down)
          --virtual-tokens N (10)  prefix and prompt tuning
          --prefix-projection H  train the prefix through an MLP of width H (Li and Liang);
                                 the adapter keeps only its output
          --prefix-gate          per-head gates on the prefix, starting at 0 so that a fresh
                                 prefix changes nothing (PEFT's prefix tuning has none; they
                                 trained unstably, see docs/FINETUNING.md)
        Data:
          --data FILE            .jsonl: one {"messages": [{"role", "content"}...]} per line,
                                 rendered with the model's chat template, loss on the
                                 assistant's tokens only; otherwise text (a file or folder)
                                 trained on every token
        Run (the options of `swiftlm train`, with fine-tuning defaults):
          --out DIR              adapter/ (PEFT: adapter_config.json and
                                 adapter_model.safetensors) or, for full, model.gguf; also
                                 metrics.jsonl, loss.svg and checkpoint.safetensors
          --steps N (200)  --batch-size N (8)  --seq-len N (256)  --lr X (by method: full
          3e-5, lora and qlora 1e-3, prefix 1e-2, prompt 3e-2)  --warmup N  --min-lr X
          --weight-decay X (0)  --grad-clip X (1)  --accumulation-steps N (1)
          --checkpointing  --checkpoint-every N (50)  --eval-every N (50)  --eval-batches N (8)
          --log-every N (10)  --seed N (1)  --threads N  --export f32|f16 (full only, f16)
          --resume               continue the checkpoint in DIR
          --dry-run              print each method's trainable parameters and memory, train
                                 nothing (the last stdout line is a JSON array with --json)
          --json                 print a JSON summary as the last line of stdout

        generate, chat, perplexity and serve take the result with --adapter DIR/adapter;
        `swiftlm merge` writes base plus LoRA as one GGUF that llama.cpp runs.
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv,
            valued: [
                "method", "model", "data", "out", "rank", "alpha", "lora-dropout", "targets",
                "virtual-tokens", "prefix-projection", "steps", "batch-size", "seq-len", "lr",
                "warmup", "min-lr", "weight-decay", "grad-clip", "accumulation-steps",
                "checkpoint-every", "eval-every", "eval-batches", "log-every", "seed", "threads",
                "export",
            ],
            flags: ["rslora", "checkpointing", "resume", "json", "dry-run", "prefix-gate"])
        let threads = try SamplingOptions.threads(arguments)
        Ops.pool = ThreadPool(threadCount: threads)
        let pretrained = try ModelLocation.open(arguments)

        if arguments.flag("dry-run") {
            try dryRun(pretrained, arguments)
            return
        }
        let directory = try arguments.requiredString("out")
        let dataPath = try arguments.requiredString("data")
        let resume = arguments.flag("resume")

        // Method, adapter settings and options: from the checkpoint when resuming.
        let checkpoint = resume ? try existingCheckpoint(in: directory) : nil
        let adaptation: Adaptation
        if let checkpoint {
            adaptation = checkpoint.state.adaptation ?? Adaptation(method: .full)
        } else {
            adaptation = try self.adaptation(arguments, config: pretrained.config)
        }
        var options = checkpoint?.state.options ?? defaultOptions(adaptation.method)
        try apply(arguments, to: &options, resuming: resume)
        let exportType = try exportType(arguments)
        let virtualTokens = adaptation.virtualTokens ?? 0
        guard options.seqLen + virtualTokens <= pretrained.config.contextLength else {
            throw UsageError(
                "--seq-len \(options.seqLen) plus \(virtualTokens) virtual tokens exceeds the "
                    + "model's context length \(pretrained.config.contextLength)")
        }

        _ = try TrainCommand.dataIsFolder(dataPath)
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true)
        let dataset = try loadData(dataPath, pretrained, directory: directory, options: options)

        let model = try TrainableLlama(model: pretrained.model, base: adaptation.base)
        if adaptation.method != .full {
            var random = TrainingRandom(seed: options.seed)
            let initial = try initialTable(adaptation, pretrained, random: &random)
            model.adapter = TrainableAdapter(
                fresh: adaptation, config: pretrained.config, random: &random,
                initialTable: initial)
        }
        let trainable = model.trainableParameters.reduce(0) { $0 + $1.elementCount }
        printError(
            "\(adaptation.method.rawValue): \(trainable) trainable parameters of "
                + "\(pretrained.model.parameterCount + (model.adapter?.parameterCount ?? 0)); "
                + "data: \(dataset.trainingTokenCount) training tokens; threads \(threads)")

        let trainer = try Trainer(
            model: model, dataset: dataset, options: options, directory: directory,
            resume: resume)
        // The base model's validation loss, the line the adapted model must go below.
        let baseLoss = resume ? nil : trainer.evaluate()
        if let baseLoss { printError(String(format: "base model validation loss %.4f", baseLoss)) }
        let progress = TrainingProgress()
        let started = Date()
        try trainer.run { progress.show($0) }
        let seconds = Date().timeIntervalSince(started)

        let output = try export(
            model, adaptation: adaptation, pretrained: pretrained, directory: directory,
            type: exportType, modelPath: arguments.string("model") ?? DefaultModel.path)
        let records = try MetricsLog.read(directory: directory)
        let plotPath = (directory as NSString).appendingPathComponent("loss.svg")
        try LossCurvePlot(
            title: "Fine-tuning loss, \(adaptation.method.rawValue) (nats per token)",
            records: records,
            baseline: baseLoss.map { .init(label: "base model (validation)", loss: $0) }
        ).write(to: plotPath)

        let finalLoss = records.last?.loss ?? .nan
        printError(
            "wrote \(output) and \(plotPath); final loss \(format(finalLoss)), validation "
                + "\(trainer.lastValidationLoss.map(format) ?? "-")"
                + (baseLoss.map { ", base model \(format($0))" } ?? ""))
        if arguments.flag("json") {
            let summary: [String: Any] = [
                "method": adaptation.method.rawValue, "steps": trainer.step, "loss": finalLoss,
                "val_loss": trainer.lastValidationLoss ?? NSNull(),
                "base_val_loss": baseLoss ?? NSNull(), "output": output,
                "trainable_params": trainable, "seconds": seconds,
                "tokens_per_second": progress.medianTokensPerSecond(
                    tokensPerStep: options.tokensPerStep),
                "peak_rss_mb": BenchCommand.peakResidentMegabytes(), "threads": threads,
            ]
            let json = try JSONSerialization.data(withJSONObject: summary, options: .sortedKeys)
            print(String(decoding: json, as: UTF8.self))
        }
    }

    // MARK: - Settings

    /// The method and its settings from the command line.
    static func adaptation(_ arguments: Arguments, config: LlamaConfig) throws -> Adaptation {
        let names = Adaptation.Method.allCases.map(\.rawValue).joined(separator: ", ")
        guard let name = arguments.string("method") else {
            throw UsageError("--method is required: one of \(names)")
        }
        guard let method = Adaptation.Method(rawValue: name) else {
            throw UsageError("--method must be one of \(names), got '\(name)'")
        }
        return try adaptation(method, arguments, config: config)
    }

    static func adaptation(
        _ method: Adaptation.Method, _ arguments: Arguments, config: LlamaConfig
    ) throws -> Adaptation {
        switch method {
        case .full:
            return Adaptation(method: .full)
        case .lora, .qlora:
            let targets = try (arguments.string("targets") ?? "q,k,v,o")
                .split(separator: ",").map { name in
                    guard let projection = Projection(name: String(name)) else {
                        throw UsageError("--targets: \(AdapterError.unknownTarget(String(name)))")
                    }
                    return projection
                }
            guard !targets.isEmpty else { throw UsageError("--targets lists no module") }
            let rank = try arguments.int("rank", default: 8, range: 1...4096)
            let settings = LoRASettings(
                rank: rank, alpha: try arguments.float("alpha", default: 16, range: 1e-6...1e6),
                rankStabilized: arguments.flag("rslora"),
                dropout: try arguments.float("lora-dropout", default: 0.05, range: 0...0.99),
                targets: targets)
            return Adaptation(method: method, lora: settings)
        case .prefix, .prompt:
            let count = try arguments.int(
                "virtual-tokens", default: 10, range: 1...(config.contextLength / 2))
            var projection: Int?
            if method == .prefix, arguments.string("prefix-projection") != nil {
                projection = try arguments.int("prefix-projection", default: 0, range: 1...65536)
            }
            return Adaptation(
                method: method, virtualTokens: count, prefixProjection: projection,
                prefixGated: method == .prefix && arguments.flag("prefix-gate"))
        }
    }

    /// Fine-tuning's defaults: shorter runs than pretraining, no weight decay on adapters,
    /// and a learning rate per method (adapters start at zero or from real tokens and need
    /// far larger steps than the pretrained weights themselves).
    static func defaultOptions(_ method: Adaptation.Method) -> TrainingOptions {
        var options = TrainingOptions()
        options.steps = 200
        options.batchSize = 8
        options.seqLen = 256
        options.weightDecay = 0
        options.checkpointEvery = 50
        options.evalEvery = 50
        switch method {
        case .full: options.learningRate = 3e-5
        case .lora, .qlora: options.learningRate = 1e-3
        case .prefix: options.learningRate = 1e-2
        case .prompt: options.learningRate = 3e-2
        }
        return options
    }

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
        options.accumulationSteps = try arguments.int(
            "accumulation-steps", default: options.accumulationSteps, range: 1...4096)
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

    private static func exportType(_ arguments: Arguments) throws -> ElementType {
        switch arguments.string("export") ?? "f16" {
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

    // MARK: - Data, initialisation and export

    /// Chat JSONL (by its extension) or text, as `swiftlm train` reads it.
    private static func loadData(
        _ path: String, _ pretrained: PretrainedModel, directory: String,
        options: TrainingOptions
    ) throws -> any TrainingData {
        guard path.hasSuffix(".jsonl") else {
            return try TrainCommand.loadData(
                path, tokenizer: pretrained.tokenizer, directory: directory,
                minimum: options.seqLen + 1)
        }
        let dataset = try ChatDataset(
            path: path, template: try pretrained.chatTemplate(), tokenizer: pretrained.tokenizer)
        let cut = dataset.truncatedCount(seqLen: options.seqLen)
        if cut > 0 {
            printError(
                "warning: \(cut) conversation(s) run past --seq-len \(options.seqLen) and are cut")
        }
        printError(
            "chat data: \(dataset.training.count) training and \(dataset.validation.count) "
                + "validation conversations")
        return dataset
    }

    /// Real tokens to start prefix and prompt tuning from: the embeddings (prompt) or the
    /// keys and values (prefix) of tokens drawn from the 5,000 earliest merges of the
    /// vocabulary, which BPE makes the most frequent pieces (Lester et al. 2021 sample the
    /// 5,000 most common tokens). Nil for LoRA, and for a prefix trained through the MLP.
    private static func initialTable(
        _ adaptation: Adaptation, _ pretrained: PretrainedModel, random: inout TrainingRandom
    ) throws -> Tensor? {
        guard let count = adaptation.virtualTokens, adaptation.prefixProjection == nil else {
            return nil
        }
        let vocabulary = pretrained.config.vocabSize
        let first = min(256, vocabulary - 1)
        let span = UInt64(max(1, min(5000, vocabulary - first)))
        let ids = (0..<count).map { _ in first + Int(random.next() % span) }
        switch adaptation.method {
        case .prompt:
            let hidden = pretrained.config.hidden
            let table = Tensor(zeros: [count, hidden])
            let embedding = pretrained.model.tokenEmbedding
            for (row, id) in ids.enumerated() {
                Quantization.dequantizeRow(
                    embedding.type, embedding.row(id), table.floats + row * hidden,
                    count: hidden)
            }
            return table
        case .prefix:
            let context = InferenceContext(
                model: pretrained.model, contextLength: count + 1, threadCount: 1)
            _ = try context.evaluate(ids)
            return context.cachedKeysAndValues()
        default:
            return nil
        }
    }

    /// Writes the result: `DIR/adapter` in PEFT's format, or the whole model as
    /// `DIR/model.gguf` after full fine-tuning. Returns the path.
    private static func export(
        _ model: TrainableLlama, adaptation: Adaptation, pretrained: PretrainedModel,
        directory: String, type: ElementType, modelPath: String
    ) throws -> String {
        guard let adapter = model.adapter else {
            let path = (directory as NSString).appendingPathComponent("model.gguf")
            try ModelFileWriter.write(
                config: model.config, name: "swiftlm finetune",
                tokenizer: ModelFileWriter.tokenizerMetadata(of: pretrained.file),
                tensors: model.namedTensors, type: type, to: path)
            return path
        }
        let path = (directory as NSString).appendingPathComponent("adapter")
        try PEFTAdapterFile.write(
            adapter.adapter(), config: model.config,
            baseModel: (modelPath as NSString).lastPathComponent, to: path)
        return path
    }

    // MARK: - Dry run

    /// One line per method: trainable parameters, their share, and the memory that weights,
    /// gradients and AdamW's two moments take (activations depend on the batch and are not
    /// counted).
    private static func dryRun(_ pretrained: PretrainedModel, _ arguments: Arguments) throws {
        let config = pretrained.config
        let baseCount = pretrained.model.parameterCount
        let baseFileBytes = pretrained.model.namedTensors.reduce(0) {
            $0 + $1.tensor.rowCount * $1.tensor.rowBytes
        }
        var rows: [[String: Any]] = []
        for method in Adaptation.Method.allCases {
            let adaptation = try self.adaptation(method, arguments, config: config)
            var random = TrainingRandom(seed: 1)
            let adapterCount =
                method == .full
                ? 0
                : TrainableAdapter(fresh: adaptation, config: config, random: &random)
                    .parameterCount
            let trainable = method == .full ? baseCount : adapterCount
            let total = baseCount + adapterCount
            let baseBytes =
                adaptation.base == .quantized ? baseFileBytes : baseCount * 4
            let mib = { (bytes: Int) in Double(bytes) / 1_048_576 }
            rows.append([
                "method": method.rawValue, "trainable_params": trainable,
                "total_params": total,
                "trainable_percent": 100 * Double(trainable) / Double(total),
                "weights_mib": mib(baseBytes + 4 * adapterCount),
                "gradients_mib": mib(4 * trainable), "optimizer_mib": mib(8 * trainable),
                "base": adaptation.base == .quantized ? "quantized" : "f32",
            ])
        }

        print(
            "method   trainable params   share of model   weights MiB   gradients MiB"
                + "   AdamW state MiB   base")
        for row in rows {
            // Padded by hand: Foundation on Linux ignores a width on `%@`.
            let method = (row["method"] as! String).padding(
                toLength: 8, withPad: " ", startingAt: 0)
            print(
                method
                    + String(
                        format: " %16d %15.4f%% %13.1f %15.1f %17.1f   %@",
                        row["trainable_params"] as! Int,
                        row["trainable_percent"] as! Double, row["weights_mib"] as! Double,
                        row["gradients_mib"] as! Double, row["optimizer_mib"] as! Double,
                        row["base"] as! String))
        }
        if arguments.flag("json") {
            let json = try JSONSerialization.data(withJSONObject: rows, options: .sortedKeys)
            print(String(decoding: json, as: UTF8.self))
        }
    }

    private static func format(_ value: Double) -> String { String(format: "%.4f", value) }
}
