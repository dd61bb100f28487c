import Foundation
import SwiftLM
import Testing

/// A scratch folder for one test's runs.
struct TrainScratch {
    let path = NSTemporaryDirectory() + "swiftlm-train-" + UUID().uuidString

    init() throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ text: String, to name: String) throws -> String {
        try text.write(toFile: file(name), atomically: true, encoding: .utf8)
        return file(name)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

private let corpus = Bundle.module.url(
    forResource: "Fixtures/perplexity_gpl3", withExtension: "txt")!
    .path

/// A model small enough to train hundreds of steps in seconds.
private let tinyConfig = """
    {"hidden": 32, "intermediate": 64, "layers": 2, "heads": 2, "kv_heads": 1,
     "context_length": 64}
    """

@Suite("swiftlm train: bad input gets a one-line error", .serialized)
struct TrainCommandErrorTests {
    @Test("a missing corpus")
    func missingCorpus() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        try CommandLineRun([
            "train", "--config", "tiny", "--data", "/nonexistent/corpus", "--out", scratch.path,
        ]).expectOneLineError(containing: "/nonexistent/corpus")
    }

    @Test("an empty corpus")
    func emptyCorpus() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        let empty = try scratch.write("", to: "empty.txt")
        try CommandLineRun([
            "train", "--config", "tiny", "--data", empty, "--out", scratch.file("run"),
        ]).expectOneLineError(containing: "empty")
    }

    @Test("a config whose sizes do not fit together")
    func inconsistentConfig() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        let config = try scratch.write(
            #"{"hidden": 30, "intermediate": 64, "layers": 2, "heads": 4, "context_length": 64}"#,
            to: "bad.json")
        try CommandLineRun([
            "train", "--config", config, "--data", corpus, "--out", scratch.file("run"),
        ]).expectOneLineError(containing: "hidden")

        let gqa = try scratch.write(
            #"{"hidden": 32, "intermediate": 64, "layers": 2, "heads": 4, "kv_heads": 3, "#
                + #""context_length": 64}"#, to: "gqa.json")
        try CommandLineRun([
            "train", "--config", gqa, "--data", corpus, "--out", scratch.file("run"),
        ]).expectOneLineError(containing: "head_count_kv")
    }

    @Test("a config file that is not valid JSON, and an unknown preset")
    func malformedConfig() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        let config = try scratch.write(#"{"hidden": 32,"#, to: "bad.json")
        try CommandLineRun([
            "train", "--config", config, "--data", corpus, "--out", scratch.file("run"),
        ]).expectOneLineError(containing: "bad.json")
        try CommandLineRun([
            "train", "--config", "huge", "--data", corpus, "--out", scratch.file("run"),
        ]).expectOneLineError(containing: "neither a preset")
    }

    @Test("a sequence longer than the model's context, and --resume without a checkpoint")
    func runErrors() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        let config = try scratch.write(tinyConfig, to: "config.json")
        try CommandLineRun([
            "train", "--config", config, "--data", corpus, "--out", scratch.file("run"),
            "--seq-len", "100",
        ]).expectOneLineError(containing: "context length")
        try CommandLineRun([
            "train", "--resume", "--data", corpus, "--out", scratch.file("nothing"),
        ]).expectOneLineError(containing: "no checkpoint")
    }
}

@Suite("swiftlm train: killed and resumed", .serialized)
struct TrainCommandResumeTests {
    static func arguments(_ scratch: TrainScratch, _ run: String, config: String) -> [String] {
        [
            "train", "--config", config, "--data", corpus, "--out", scratch.file(run),
            "--steps", "150", "--batch-size", "4", "--seq-len", "32", "--lr", "3e-3",
            "--checkpoint-every", "5", "--eval-every", "25", "--log-every", "1",
            "--dropout", "0.1", "--threads", "2",
        ]
    }

    @Test("SIGKILL at random moments, then --resume: the loss curve continues unchanged")
    func killAndResume() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        let config = try scratch.write(tinyConfig, to: "config.json")

        let whole = try CommandLineRun(Self.arguments(scratch, "whole", config: config))
        #expect(whole.status == 0, "\(whole.standardError)")

        // Kill the second run three times at random moments after a checkpoint exists,
        // resuming each time; every checkpoint on disk must load.
        let checkpoint = scratch.file("split/checkpoint.safetensors")
        var resume = false
        for _ in 0..<3 {
            let process = Process()
            process.executableURL = CommandLineRun.binary
            process.arguments =
                Self.arguments(scratch, "split", config: config) + (resume ? ["--resume"] : [])
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let startStep = resume ? try TrainingCheckpoint(path: checkpoint).state.step : 0
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                if let state = try? TrainingCheckpoint(path: checkpoint).state,
                    state.step > startStep
                {
                    break
                }
                usleep(2000)
            }
            usleep(UInt32.random(in: 0..<150_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal || process.terminationStatus == 0)
            let state = try TrainingCheckpoint(path: checkpoint).state
            #expect(state.step % 5 == 0 && state.step > startStep)
            resume = true
        }
        let last = try CommandLineRun(
            Self.arguments(scratch, "split", config: config) + ["--resume"])
        #expect(last.status == 0, "\(last.standardError)")

        let expected = try MetricsLog.read(directory: scratch.file("whole"))
        let resumed = try MetricsLog.read(directory: scratch.file("split"))
        #expect(expected.count == 150)
        #expect(resumed.map(\.step) == expected.map(\.step))
        #expect(resumed.map(\.loss) == expected.map(\.loss))
        #expect(resumed.map(\.validationLoss) == expected.map(\.validationLoss))
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: scratch.file("whole/model.gguf")))
                == Data(contentsOf: URL(fileURLWithPath: scratch.file("split/model.gguf"))))
    }

    @Test("the trained model runs in generate")
    func generateFromTrainedModel() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        let config = try scratch.write(tinyConfig, to: "config.json")
        let train = try CommandLineRun(
            Self.arguments(scratch, "run", config: config).map { $0 == "150" ? "20" : $0 }
                + ["--json"])
        #expect(train.status == 0, "\(train.standardError)")
        let summary =
            try JSONSerialization.jsonObject(
                with: Data(train.standardOutput.split(separator: "\n").last!.utf8))
            as! [String: Any]
        #expect(summary["steps"] as? Int == 20)
        #expect((summary["tokens_per_second"] as? Double ?? 0) > 0)
        #expect(FileManager.default.fileExists(atPath: scratch.file("run/loss.svg")))

        let generate = try CommandLineRun([
            "generate", "--model", scratch.file("run/model.gguf"), "--prompt", "The ",
            "--max-tokens", "8", "--temperature", "0",
        ])
        #expect(generate.status == 0, "\(generate.standardError)")
        #expect(!generate.standardOutput.isEmpty)
    }
}

@Suite("swiftlm train: full fine-tuning of the default model", .enabled(if: EndToEnd.enabled))
struct TrainCommandFineTuneTests {
    @Test("--init-from the default model: a step at a negligible rate keeps its greedy answer")
    func fineTuneKeepsModel() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        let model = DefaultModel.path
        let train = try CommandLineRun([
            "train", "--init-from", model, "--data", corpus, "--out", scratch.file("ft"),
            "--steps", "1", "--batch-size", "1", "--seq-len", "16", "--lr", "1e-12",
            "--eval-every", "0", "--json",
        ])
        #expect(train.status == 0, "\(train.standardError)")

        // The exported F32 file holds the base's weights dequantized exactly; only the
        // activations' rounding differs from the Q4_1 path, which a short greedy answer to a
        // clear prompt does not feel.
        func answer(_ path: String) throws -> String {
            try CommandLineRun([
                "generate", "--model", path, "--prompt", "The three primary colors are",
                "--max-tokens", "4", "--temperature", "0",
            ]).standardOutput
        }
        let base = try answer(model)
        #expect(!base.isEmpty)
        #expect(try answer(scratch.file("ft/model.gguf")) == base)
    }
}
