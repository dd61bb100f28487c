import Foundation
import SwiftLM
import SwiftLMServer

/// `swiftlm serve`: the OpenAI-compatible HTTP server with continuous batching.
enum ServeCommand: Command {
    static let name = "serve"
    static let summary = "serve the model over an OpenAI-compatible HTTP API"
    static let usage = """
        swiftlm serve [--model PATH] [--host 127.0.0.1] [--port 8080] [--api-key KEY]
                             [--max-batch N] [--kv-blocks N] [options]

        Serves POST /v1/chat/completions and /v1/completions (streamed or whole),
        GET /v1/models, /health and /metrics (Prometheus) until SIGINT or SIGTERM, which
        let the requests in flight finish (10 s at most) before it exits.

          --model PATH           GGUF model file (default: the default model)
        \(LoadedModel.usage)
          --host ADDRESS         address to listen on (default 127.0.0.1: this machine only)
          --port N               TCP port, 0 for any free one (default 8080)
          --api-key KEY          require 'Authorization: Bearer KEY' on /v1 (default: none;
                                 also read from $SWIFTLM_API_KEY)
          --model-name NAME      the model's id in the API (default: the file's name)
          --max-batch N          sequences decoded together, 1 turns batching off (default 16)
          --kv-blocks N          blocks of the paged KV cache, all resident from the start
                                 (default 1024: 16384 positions, 360 MiB for the default model)
          --block-size N         positions per KV block (default 16)
          --token-budget N       tokens in one forward pass, decode and prompt (default 256)
          --context N            positions one request may reach (default: the model's)
          --max-waiting N        queued requests before new ones get 503 (default 256)
          --max-body-bytes N     largest request body, else 413 (default 4194304)
          --threads N            threads to use (default: all cores)
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv,
            valued: [
                "model", "adapter", "host", "port", "api-key", "model-name", "max-batch",
                "kv-blocks", "block-size", "token-budget", "context", "max-waiting",
                "max-body-bytes", "threads",
            ], flags: [])
        let model = try LoadedModel(arguments)

        var engineOptions = Engine.Options()
        engineOptions.maxBatch = try arguments.int("max-batch", default: 16, range: 1...1024)
        engineOptions.kvBlocks = try arguments.int(
            "kv-blocks", default: 1024, range: 1...10_000_000)
        // A server's memory is its KV budget from the start, not a slow climb to it.
        engineOptions.residentCache = true
        engineOptions.blockSize = try arguments.int("block-size", default: 16, range: 1...4096)
        engineOptions.tokenBudget = try arguments.int(
            "token-budget", default: 256, range: engineOptions.maxBatch...65536)
        engineOptions.contextLength = try arguments.int(
            "context", default: model.config.contextLength,
            range: 2...model.config.contextLength)
        engineOptions.maxWaiting = try arguments.int(
            "max-waiting", default: 256, range: 0...1_000_000)
        engineOptions.threadCount = try SamplingOptions.threads(arguments)

        var serverOptions = OpenAIServer.Options()
        serverOptions.host = arguments.string("host") ?? "127.0.0.1"
        serverOptions.port = try arguments.int("port", default: 8080, range: 0...65535)
        serverOptions.apiKey =
            arguments.string("api-key") ?? ProcessInfo.processInfo.environment["SWIFTLM_API_KEY"]
        serverOptions.modelName =
            arguments.string("model-name")
            ?? URL(fileURLWithPath: model.file.file.path).deletingPathExtension().lastPathComponent
        serverOptions.maxBodyBytes = try arguments.int(
            "max-body-bytes", default: 4 << 20, range: 1...(1 << 30))

        let engine = try Engine(
            model: model.model, tokenizer: model.tokenizer, options: engineOptions,
            virtualPrefix: model.virtualPrefix)
        let server = OpenAIServer(
            engine: engine, template: try? model.file.chatTemplate(), options: serverOptions)
        try server.start()
        printError(
            "swiftlm serve: \(serverOptions.modelName) on http://\(serverOptions.host):"
                + "\(server.port ?? serverOptions.port) (max batch \(engineOptions.maxBatch), "
                + "\(engineOptions.kvBlocks) KV blocks of \(engineOptions.blockSize) positions, "
                + "\(engine.cache.byteCount >> 20) MiB)")

        waitForTermination()
        printError("swiftlm serve: stopping; finishing the requests in flight")
        server.stop()
        printError("swiftlm serve: stopped")
    }

    /// Blocks until SIGINT or SIGTERM arrives.
    private static func waitForTermination() {
        let received = DispatchSemaphore(value: 0)
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { received.signal() }
            source.resume()
            sources.append(source)
        }
        received.wait()
        for source in sources { source.cancel() }
    }
}
