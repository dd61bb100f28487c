import Foundation
import SwiftLM
import SwiftLMTestSupport
import Testing

/// Runs the built `swiftlm` binary, which sits beside the test bundle in the build folder.
struct CommandLineRun {
    let status: Int32
    let standardOutput: String
    let standardError: String

    static var binary: URL {
        Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("swiftlm")
    }

    init(_ arguments: [String], input: String? = nil) throws {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        let stdin = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        status = process.terminationStatus
        standardOutput = String(decoding: outData, as: UTF8.self)
        standardError = String(decoding: errData, as: UTF8.self)
    }

    /// The run failed the way users should see failures: exit 1, nothing on stdout and one line
    /// on stderr that contains `message`.
    func expectOneLineError(
        containing message: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(status == 1, sourceLocation: sourceLocation)
        #expect(standardOutput.isEmpty, sourceLocation: sourceLocation)
        let lines = standardError.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "stderr: \(standardError)", sourceLocation: sourceLocation)
        #expect(
            standardError.contains(message), "stderr: \(standardError)",
            sourceLocation: sourceLocation)
    }
}

@Suite("Command line: bad input gets a one-line error", .serialized)
struct CommandLineErrorTests {
    @Test("a missing model file")
    func missingFile() throws {
        try CommandLineRun(["generate", "--model", "/nonexistent/m.gguf", "--prompt", "hi"])
            .expectOneLineError(containing: "/nonexistent/m.gguf")
    }

    @Test("a file that is not GGUF")
    func notGGUF() throws {
        let path = TinyModel.temporaryPath(suffix: ".gguf")
        try Data("this is plain text, not a model\n".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try CommandLineRun(["info", "--model", path]).expectOneLineError(containing: "not a GGUF")
    }

    @Test("a truncated GGUF file")
    func truncated() throws {
        let bytes = try TinyModel.writer().serialized()
        for length in [3, 30, bytes.count / 3, bytes.count - 7] {
            let path = TinyModel.temporaryPath(suffix: ".gguf")
            try Data(bytes.prefix(length)).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            try CommandLineRun(["generate", "--model", path, "--prompt", "hi"])
                .expectOneLineError(containing: "GGUF")
        }
    }

    @Test("an unknown architecture")
    func unknownArchitecture() throws {
        var writer = try TinyModel.writer()
        writer.set("general.architecture", .string("mamba9"))
        let path = try TinyModel.write(writer)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try CommandLineRun(["generate", "--model", path, "--prompt", "hi"])
            .expectOneLineError(containing: "unsupported: model architecture 'mamba9'")
    }

    @Test("an unknown tensor type number")
    func unknownTensorType() throws {
        // Patch the type field that follows the name, n_dims and two dims of one tensor info.
        var bytes = try TinyModel.writer().serialized()
        let name = Array("blk.0.attn_q.weight".utf8)
        let start = try #require(
            (0...(bytes.count - name.count)).first { Array(bytes[$0..<($0 + name.count)]) == name })
        let typeOffset = start + name.count + 4 + 2 * 8
        bytes[typeOffset] = 99
        let path = TinyModel.temporaryPath(suffix: ".gguf")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try CommandLineRun(["generate", "--model", path, "--prompt", "hi"])
            .expectOneLineError(containing: "99")
    }

    @Test("a tensor type that SwiftLM cannot compute with")
    func unsupportedTensorType() throws {
        let path = try TinyModel.write(weightType: .q5_0)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try CommandLineRun(["generate", "--model", path, "--prompt", "hi"])
            .expectOneLineError(
                containing: "unsupported: tensor 'blk.0.attn_q.weight' has type Q5_0")
    }

    @Test("an empty prompt")
    func emptyPrompt() throws {
        let path = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try CommandLineRun(["generate", "--model", path, "--prompt", ""])
            .expectOneLineError(containing: "the prompt is empty")
    }

    @Test("a prompt longer than the context")
    func promptOverContext() throws {
        let path = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let prompt = String(repeating: "x", count: TinyModel.contextLength + 5)
        try CommandLineRun(["generate", "--model", path, "--prompt", prompt])
            .expectOneLineError(containing: "does not fit the context of 128 tokens")
    }

    @Test("a chat template that cannot be rendered")
    func unsupportedChatTemplate() throws {
        var writer = try TinyModel.writer()
        writer.set(
            "tokenizer.chat_template",
            .string("{% macro turn(m) %}{{ m.content }}{% endmacro %}{{ turn(messages[0]) }}"))
        let path = try TinyModel.write(writer)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try CommandLineRun(["chat", "--model", path], input: "hello\n")
            .expectOneLineError(containing: "unsupported")
    }

    @Test("bench options that do not fit the model or the allowed range")
    func badBenchOptions() throws {
        let path = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try CommandLineRun(["bench", "--model", path, "--prompt-tokens", "100"])
            .expectOneLineError(
                containing: "--prompt-tokens 100 plus --gen-tokens 64 exceed the model's context "
                    + "length of 128 tokens")
        try CommandLineRun(["bench", "--model", path, "--repetitions", "0"])
            .expectOneLineError(containing: "--repetitions must be an integer in 1...1000")
        try CommandLineRun(["bench", "--model", path, "--prompt-token", "8"])
            .expectOneLineError(containing: "unknown option --prompt-token")
    }

    @Test("an unknown option and a bad number")
    func badOptions() throws {
        try CommandLineRun(["generate", "--prompt", "hi", "--tempreature", "1"])
            .expectOneLineError(containing: "unknown option --tempreature")
        try CommandLineRun(["generate", "--prompt", "hi", "--top-p", "2"])
            .expectOneLineError(containing: "--top-p must be a number in 0.0...1.0")
    }
}

@Suite("Command line: the commands work on a tiny model")
struct CommandLineTests {
    @Test("every command answers --help on stdout")
    func helpEverywhere() throws {
        for command in ["generate", "chat", "tokenize", "perplexity", "info", "bench"] {
            let run = try CommandLineRun([command, "--help"])
            #expect(run.status == 0)
            #expect(run.standardOutput.contains("swiftlm \(command)"))
        }
        #expect(try CommandLineRun(["--help"]).standardOutput.contains("Commands:"))
    }

    @Test("tokenize prints a JSON array, with BOS only when asked")
    func tokenizePrintsJSON() throws {
        let path = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let plain = try CommandLineRun(["tokenize", "--model", path, "--text", "Hi"])
        #expect(plain.standardOutput == "[72, 105]\n")
        let withBOS = try CommandLineRun(["tokenize", "--model", path, "--text", "Hi", "--bos"])
        #expect(withBOS.standardOutput == "[256, 72, 105]\n")
    }

    @Test("greedy generate prints the same completion twice and the speed with --verbose")
    func generateIsDeterministic() throws {
        let path = try TinyModel.write(weightType: .q8_0)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let arguments = [
            "generate", "--model", path, "--prompt", "Hello", "--temperature", "0",
            "--max-tokens", "8", "--verbose",
        ]
        let first = try CommandLineRun(arguments)
        let second = try CommandLineRun(arguments)
        #expect(first.status == 0)
        #expect(first.standardOutput == second.standardOutput)
        #expect(first.standardError.contains("tokens/s"))
    }

    @Test("bench ends stdout with one JSON object of positive speeds")
    func benchPrintsJSON() throws {
        let path = try TinyModel.write(weightType: .q8_0)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try CommandLineRun([
            "bench", "--model", path, "--threads", "1", "--prompt-tokens", "16", "--gen-tokens",
            "4", "--repetitions", "3", "--json",
        ])
        #expect(run.status == 0, "stderr: \(run.standardError)")
        #expect(run.standardError.contains("peak RSS"))

        let lastLine = try #require(run.standardOutput.split(separator: "\n").last)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any])
        func number(_ key: String) throws -> Double {
            try #require((object[key] as? NSNumber)?.doubleValue, "no number \(key): \(lastLine)")
        }
        for key in [
            "prefill_tps", "prefill_tps_min", "prefill_tps_max", "decode_tps", "decode_tps_min",
            "decode_tps_max", "peak_rss_mb",
        ] {
            #expect(try number(key) > 0, "\(key) in \(lastLine)")
        }
        for phase in ["prefill", "decode"] {
            #expect(try number(phase + "_tps_min") <= number(phase + "_tps"))
            #expect(try number(phase + "_tps") <= number(phase + "_tps_max"))
        }
        #expect(try number("threads") == 1)
        #expect(try number("prompt_tokens") == 16)
        #expect(try number("gen_tokens") == 4)
        #expect(try number("repetitions") == 3)
        #expect(object["model"] as? String == path)
    }

    @Test("chat reads one turn from a pipe")
    func chatFromPipe() throws {
        let path = try TinyModel.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try CommandLineRun(
            ["chat", "--model", path, "--max-tokens", "4", "--temperature", "0"], input: "hello\n")
        #expect(run.status == 0, "stderr: \(run.standardError)")
        #expect(!run.standardOutput.isEmpty)
    }
}
