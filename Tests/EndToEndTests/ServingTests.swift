import Foundation
import SwiftLM
import Testing

/// Sixteen chat prompts of different lengths on the default model.
private func chatRequests() throws -> [GenerationRequest] {
    let model = EndToEnd.model
    let template = try model.chatTemplate()
    let questions = [
        "What is the capital of France?", "Name three primary colors.", "What is 2 + 2?",
        "Write a haiku about the sea.", "Who wrote Hamlet?", "What is a tensor?",
        "Give me a synonym for happy.", "How many legs does a spider have?",
        "What is the boiling point of water?", "Translate 'good morning' to Spanish.",
        "What is photosynthesis?", "List two prime numbers.", "What color is the sky?",
        "Explain gravity in one sentence.", "What is the largest planet?", "Say hello.",
    ]
    return try questions.enumerated().map { index, question in
        let prompt = try template.render(
            messages: [ChatMessage(role: "user", content: question)], addGenerationPrompt: true)
        return GenerationRequest(
            prompt: model.tokenizer.encode(prompt), maxTokens: 24 + index % 3 * 8)
    }
}

private func engine(maxBatch: Int) throws -> Engine {
    var options = Engine.Options()
    options.maxBatch = maxBatch
    options.kvBlocks = 512
    options.threadCount = 2
    return try Engine(
        model: EndToEnd.model.model, tokenizer: EndToEnd.model.tokenizer, options: options)
}

@Suite("Serving the default model", .enabled(if: EndToEnd.enabled), .serialized)
struct ServingEndToEndTests {
    @Test("greedy answers of sixteen concurrent requests equal the same requests one at a time")
    func batchingChangesNoAnswer() throws {
        let requests = try chatRequests()
        let sequential = try engine(maxBatch: 1)
        let alone = try requests.map { try sequential.generate($0) }
        sequential.shutdown(finishInFlight: true)

        let batched = try engine(maxBatch: 16)
        defer { batched.shutdown(finishInFlight: false) }
        let together = Completions(count: requests.count)
        let group = DispatchGroup()
        for (index, request) in requests.enumerated() {
            group.enter()
            try batched.submit(request) { event in
                guard case .finished(let completion) = event else { return }
                together.set(index, completion)
                group.leave()
            }
        }
        group.wait()

        for (index, answer) in alone.enumerated() {
            #expect(together.all[index]?.tokens == answer.tokens, "request \(index)")
        }
        // The template's system prompt is shared: later prompts found its blocks.
        #expect(batched.currentMetrics().prefixCacheHitBlocks > 0)
        #expect(batched.currentMetrics().kvBlocksUsed == 0)
    }

    @Test("the engine's greedy answer equals swiftlm generate's single-sequence one")
    func engineMatchesGenerator() throws {
        let request = try chatRequests()[0]
        let context = InferenceContext(model: EndToEnd.model.model, threadCount: 2)
        let expected = try Generator(tokenizer: EndToEnd.model.tokenizer, context: context)
            .generate(prompt: request.prompt, maxTokens: request.maxTokens)
        let served = try engine(maxBatch: 4)
        defer { served.shutdown(finishInFlight: false) }
        #expect(try served.generate(request).tokens == expected.tokens)
    }

    @Test("the official openai Python client works against swiftlm serve unchanged")
    func openAIClient() throws {
        let python = try #require(
            ProcessInfo.processInfo.environment["SWIFTLM_TEST_PYTHON"],
            "scripts/test sets SWIFTLM_TEST_PYTHON to a Python with the openai package")
        let server = try ServerProcess(["--api-key", "test-key", "--max-batch", "4"])
        defer { server.stop() }

        let script = try #require(
            Bundle.module.url(
                forResource: "openai_client_check", withExtension: "py",
                subdirectory: "Fixtures"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path, "http://127.0.0.1:\(server.port)/v1", "test-key"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)

        let results = try #require(
            try JSONSerialization.jsonObject(with: data) as? [String: Any],
            "stdout: \(String(decoding: data, as: UTF8.self))")
        #expect((results["models"] as? [String])?.first == server.modelName)
        #expect((results["chat_text"] as? String)?.isEmpty == false)
        #expect(results["chat_finish"] as? String == "length")
        #expect(results["chat_completion_tokens"] as? Int == 16)
        #expect((results["completion_text"] as? String)?.isEmpty == false)
        // Streamed and whole greedy answers are the same text.
        #expect(results["stream_text"] as? String == results["chat_text"] as? String)
        #expect((results["stream_chunks"] as? Int ?? 0) > 2)
        #expect(results["stream_usage_completion_tokens"] as? Int == 16)
        #expect(results["not_found_status"] as? Int == 404)
        #expect(results["bad_request_status"] as? Int == 400)
        #expect(results["auth_status"] as? Int == 401)
    }
}

@Suite("swiftlm serve on the default model", .enabled(if: EndToEnd.enabled), .serialized)
struct ServeCommandTests {
    @Test("a client that disconnects mid-stream cancels its request and frees its KV blocks")
    func disconnectFreesBlocks() throws {
        let server = try ServerProcess([])
        defer { server.stop() }
        // A long sampled answer; curl drops the connection after a second.
        let body =
            #"{"prompt": "Once upon a time", "max_tokens": 4000, "temperature": 1, "#
            + #""min_p": 0, "stream": true}"#
        let stream = try server.curl(
            "/v1/completions", body: body, extra: ["-N", "--max-time", "1"])
        #expect(stream.contains("data: {"))
        #expect(!stream.contains("[DONE]"))

        var metrics: [String: Double] = [:]
        for _ in 0..<50 {
            metrics = try server.metrics()
            if metrics["swiftlm_requests_finished_total{reason=\"cancelled\"}"] == 1 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(metrics["swiftlm_requests_finished_total{reason=\"cancelled\"}"] == 1)
        #expect(metrics["swiftlm_kv_blocks_used"] == 0)
        #expect(metrics["swiftlm_requests_running"] == 0)
        #expect((metrics["swiftlm_generated_tokens_total"] ?? 0) > 0)
    }

    @Test("SIGTERM lets a request in flight finish, then the server exits 0")
    func cleanStop() throws {
        let server = try ServerProcess([])
        let answer = Answer()
        let thread = Thread {
            answer.text = try? server.curl(
                "/v1/completions",
                body: #"{"prompt": "The sky is", "max_tokens": 40, "temperature": 0}"#)
            answer.done.signal()
        }
        thread.start()
        Thread.sleep(forTimeInterval: 0.5)
        server.process.terminate()
        answer.done.wait()
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0)
        #expect(answer.text?.contains(#""finish_reason":"length""#) == true)
    }

    private final class Answer: @unchecked Sendable {
        var text: String?
        let done = DispatchSemaphore(value: 0)
    }
}

/// Completions filled in from the engine's thread.
private final class Completions: @unchecked Sendable {
    private let lock = NSLock()
    private var completions: [Completion?]
    init(count: Int) { completions = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ completion: Completion) {
        lock.withLock { completions[index] = completion }
    }
    var all: [Completion?] { lock.withLock { completions } }
}

/// `swiftlm serve` on a free port, stopped with SIGTERM.
struct ServerProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    let modelName = "SmolLM2-135M-Instruct.Q4_1"

    init(_ arguments: [String]) throws {
        process.executableURL = CommandLineRun.binary
        process.arguments =
            ["serve", "--port", "0", "--threads", "2", "--model-name", modelName] + arguments
        let error = Pipe()
        process.standardError = error
        try process.run()
        // The first line on stderr names the address once the socket is bound.
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let byte = error.fileHandleForReading.readData(ofLength: 1)
            guard !byte.isEmpty else { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let range = text.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
            let port = Int(text[range].split(separator: ":").last!)
        else {
            process.terminate()
            throw ServerStartError(message: text)
        }
        self.port = port
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }

    /// The body curl received (stdout), for a POST of `body` or a GET.
    func curl(_ path: String, body: String? = nil, extra: [String] = []) throws -> String {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments =
            ["-s", "http://127.0.0.1:\(port)\(path)"]
            + (body.map { ["-H", "content-type: application/json", "-d", $0] } ?? []) + extra
        let output = Pipe()
        curl.standardOutput = output
        try curl.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        curl.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// `/metrics` as name (with labels) to value.
    func metrics() throws -> [String: Double] {
        var values: [String: Double] = [:]
        for line in try curl("/metrics").split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { values[String(parts[0])] = Double(parts[1]) }
        }
        return values
    }

    struct ServerStartError: Error { let message: String }
}
