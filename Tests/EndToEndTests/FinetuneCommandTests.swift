import Foundation
import SwiftLM
import Testing

/// Eight date conversations in the chat JSONL format `swiftlm finetune` reads.
private func dateConversations() -> String {
    let months = ["March", "June", "October", "December"]
    return (0..<8).map { index in
        let month = [3, 6, 10, 12][index % 4]
        let day = 10 + index
        let question = "Write 19\(70 + index)-\(month < 10 ? "0" : "")\(month)-\(day) in words."
        let answer = "\(day) \(months[index % 4]) 19\(70 + index)"
        return #"{"messages": [{"role": "user", "content": "\#(question)"}, "#
            + #"{"role": "assistant", "content": "\#(answer)"}]}"#
    }.joined(separator: "\n") + "\n"
}

@Suite("swiftlm finetune on the default model", .enabled(if: EndToEnd.enabled), .serialized)
struct FinetuneCommandTests {
    @Test("--dry-run: every method's trainable share, as a table and as JSON")
    func dryRun() throws {
        let run = try CommandLineRun(["finetune", "--dry-run", "--json"])
        #expect(run.status == 0, "\(run.standardError)")
        let last = run.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        let rows = try #require(
            try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [[String: Any]])
        var share: [String: Double] = [:]
        for row in rows {
            let method = try #require(row["method"] as? String)
            let trainable = try #require(row["trainable_params"] as? Int)
            let total = try #require(row["total_params"] as? Int)
            share[method] = try #require(row["trainable_percent"] as? Double)
            #expect(abs(share[method]! - 100 * Double(trainable) / Double(total)) < 1e-9)
        }
        #expect(Set(share.keys) == ["full", "lora", "qlora", "prefix", "prompt"])
        #expect(share["full"] == 100)
        // LoRA r=8 on q, k, v, o: 921,600 of 135 million, 0.68%.
        #expect(share["lora"]! > 0.1 && share["lora"]! < 5 && share["qlora"] == share["lora"])
        #expect(share["prefix"]! < share["lora"]! / 5)
        #expect(share["prompt"]! < 0.1 && share["prompt"]! < share["prefix"]!)
        #expect(run.standardOutput.contains("trainable params"))
    }

    @Test("bad input: unknown target, malformed JSONL line, adapter of another model")
    func badInput() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        try CommandLineRun([
            "finetune", "--method", "lora", "--targets", "q,attn", "--data", "x", "--out",
            scratch.file("out"),
        ]).expectOneLineError(containing: "no module 'attn'")

        let good = dateConversations()
        let data = try scratch.write(good + "{\"messages\": [oops]}\n", to: "bad.jsonl")
        try CommandLineRun([
            "finetune", "--method", "lora", "--data", data, "--out", scratch.file("out"),
        ]).expectOneLineError(containing: "bad.jsonl:9: not valid JSON")

        // A prompt adapter whose embeddings are narrower than the model's.
        let adapter = scratch.file("narrow")
        try PEFTAdapterFile.write(
            .prompt(Tensor(zeros: [4, 64])),
            config: LlamaConfig(
                vocabSize: 10, hidden: 64, intermediate: 64, layerCount: 1, headCount: 1,
                kvHeadCount: 1, contextLength: 8),
            baseModel: "other", to: adapter)
        try CommandLineRun([
            "generate", "--adapter", adapter, "--prompt", "Hi", "--max-tokens", "2",
        ]).expectOneLineError(containing: "'prompt_embeddings' has shape [4, 64]")
    }

    static func finetune(
        _ scratch: TrainScratch, _ out: String, _ extra: [String]
    ) throws
        -> CommandLineRun
    {
        let data = try scratch.write(dateConversations(), to: "dates.jsonl")
        return try CommandLineRun(
            [
                "finetune", "--data", data, "--out", scratch.file(out), "--batch-size", "2",
                "--seq-len", "48", "--eval-every", "0", "--seed", "3",
            ] + extra)
    }

    @Test("LoRA: stopped and resumed, the adapter equals an uninterrupted run's, and runs")
    func resumeAndGenerate() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        // All three steps inside the warmup: a run stopped at --steps 2 then has the learning
        // rates of the uninterrupted 3-step run (the cosine part depends on the total).
        let lora = [
            "--method", "lora", "--rank", "4", "--targets", "q,v,down", "--lr", "1e-2",
            "--warmup", "4",
        ]
        let straight = try Self.finetune(scratch, "straight", lora + ["--steps", "3"])
        #expect(straight.status == 0, "\(straight.standardError)")
        let first = try Self.finetune(scratch, "resumed", lora + ["--steps", "2"])
        #expect(first.status == 0, "\(first.standardError)")
        let second = try Self.finetune(scratch, "resumed", ["--resume", "--steps", "3"])
        #expect(second.status == 0, "\(second.standardError)")

        let weights = "adapter/adapter_model.safetensors"
        let a = try Data(contentsOf: URL(fileURLWithPath: scratch.file("straight/" + weights)))
        let b = try Data(contentsOf: URL(fileURLWithPath: scratch.file("resumed/" + weights)))
        // Not `#expect(a == b)`: on a mismatch it would diff two 200 KB files byte by byte.
        #expect(a.count == b.count && a.elementsEqual(b), "the resumed adapter differs")
        let config = try String(
            contentsOfFile: scratch.file("straight/adapter/adapter_config.json"), encoding: .utf8)
        #expect(config.contains("\"LORA\"") && config.contains("down_proj"))

        // The adapter changes the model, and generate, perplexity and merge take it.
        func answer(_ extra: [String]) throws -> CommandLineRun {
            try CommandLineRun(
                [
                    "generate", "--prompt", "Write 1999-03-04 in words.", "--max-tokens", "6",
                    "--temperature", "0",
                ] + extra)
        }
        let adapted = try answer(["--adapter", scratch.file("straight/adapter")])
        #expect(adapted.status == 0 && !adapted.standardOutput.isEmpty, "\(adapted.standardError)")

        let merged = scratch.file("merged.gguf")
        let merge = try CommandLineRun([
            "merge", "--adapter", scratch.file("straight/adapter"), "--out", merged,
        ])
        #expect(merge.status == 0, "\(merge.standardError)")
        let info = try CommandLineRun(["info", "--model", merged, "--json"])
        #expect(info.status == 0 && info.standardOutput.contains("Q4_1"), "\(info.standardError)")
        #expect(try answer(["--model", merged]).status == 0)
    }

    @Test("prefix, prompt and QLoRA train and their adapters run")
    func otherMethods() throws {
        let scratch = try TrainScratch()
        defer { scratch.remove() }
        for method in ["prefix", "prompt", "qlora"] {
            let run = try Self.finetune(
                scratch, method, ["--method", method, "--steps", "1", "--virtual-tokens", "4"])
            #expect(run.status == 0, "\(method): \(run.standardError)")
            let perplexity = try CommandLineRun([
                "perplexity", "--adapter", scratch.file(method + "/adapter"), "--file",
                scratch.write(String(repeating: "A date is a day. ", count: 40), to: "text.txt"),
                "--context", "64",
            ])
            #expect(perplexity.status == 0, "\(method): \(perplexity.standardError)")
        }
    }
}
