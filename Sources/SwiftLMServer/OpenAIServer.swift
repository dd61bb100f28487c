import Foundation
import SwiftLMHTTP
import SwiftLMServing
import SwiftLMTokenizers
import Synchronization

/// The OpenAI-compatible HTTP API over an `Engine`: chat and text completions (whole or
/// streamed as server-sent events), the model list, health and Prometheus metrics.
///
/// Each request runs on its connection's thread: it is checked, queued in the engine, and
/// answered from the engine's events. A streamed answer goes out event by event; a client
/// that goes away cancels its request, which returns its KV blocks at once.
public final class OpenAIServer: Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 8080
        /// Clients must send `Authorization: Bearer KEY` when set.
        public var apiKey: String?
        /// The model's name in the API (`model` in requests, `/v1/models`).
        public var modelName = "default"
        public var maxBodyBytes = 4 << 20
        public var connectionLimit = 256

        public init() {}
    }

    public let engine: Engine
    public let options: Options
    let template: ChatTemplate?
    let created = Int(Date().timeIntervalSince1970)
    private let http: Mutex<HTTPServer?> = Mutex(nil)
    private let draining = Atomic<Bool>(false)

    /// - Parameter template: the model's chat template; without one, chat requests are
    ///   refused and text completions still work.
    public init(engine: Engine, template: ChatTemplate?, options: Options) {
        self.engine = engine
        self.template = template
        self.options = options
    }

    /// The port it listens on, once started.
    public var port: Int? { http.withLock { $0?.port } }

    /// Binds the socket and starts serving (returns at once).
    public func start() throws {
        let limit = options.maxBodyBytes
        let server = try HTTPServer(
            host: options.host, port: options.port, maxBodyBytes: limit,
            connectionLimit: options.connectionLimit,
            oversizedBody: { Self.response(APIError.bodyTooLarge(limit: limit)) },
            handler: { [self] request in handle(request) })
        http.withLock { $0 = server }
    }

    /// Stops cleanly: new requests are refused (503), requests in flight finish within
    /// `gracePeriod` or are cancelled, then the listener closes.
    public func stop(gracePeriod: Double = 10) {
        draining.store(true, ordering: .sequentiallyConsistent)
        let engine = engine
        let deadline = DispatchWorkItem { engine.shutdown(finishInFlight: false) }
        DispatchQueue.global().asyncAfter(deadline: .now() + gracePeriod, execute: deadline)
        engine.shutdown(finishInFlight: true)
        deadline.cancel()
        let server = http.withLock { server in
            defer { server = nil }
            return server
        }
        server?.stop(gracePeriod: .seconds(5))
    }

    // MARK: - Routing

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        do {
            return try route(request)
        } catch {
            return Self.response(error)
        }
    }

    private func route(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        switch (request.method, request.path) {
        case ("GET", "/health"):
            return .json(Data(#"{"status":"ok"}"#.utf8))
        case ("GET", "/metrics"):
            return HTTPResponse(
                status: 200, headers: [("content-type", "text/plain; version=0.0.4")],
                body: .bytes(Data(PrometheusText.render(engine.currentMetrics()).utf8)))
        case ("GET", "/v1/models"):
            try authorize(request)
            return Self.json([
                "object": "list",
                "data": [
                    [
                        "id": options.modelName, "object": "model", "created": created,
                        "owned_by": "swiftlm",
                    ]
                ],
            ])
        case ("POST", "/v1/chat/completions"):
            try authorize(request)
            return try chatCompletion(request)
        case ("POST", "/v1/completions"):
            try authorize(request)
            return try completion(request)
        case (_, "/health"), (_, "/metrics"), (_, "/v1/models"), (_, "/v1/chat/completions"),
            (_, "/v1/completions"):
            throw APIError(
                status: 405, message: "\(request.method) is not allowed on \(request.path)",
                code: "method_not_allowed")
        default:
            throw .notFound(request.method, request.path)
        }
    }

    private func authorize(_ request: HTTPRequest) throws(APIError) {
        guard let key = options.apiKey else { return }
        guard let header = request.header("authorization") else { throw .missingAPIKey }
        let prefix = "Bearer "
        guard header.hasPrefix(prefix),
            constantTimeEqual(Array(header.dropFirst(prefix.count).utf8), Array(key.utf8))
        else { throw .wrongAPIKey }
    }

    // MARK: - Completions

    private func chatCompletion(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let body = try decodeBody(ChatCompletionBody.self, from: request.body)
        guard let template else {
            throw .invalid("unsupported: the model has no chat template; use /v1/completions")
        }
        guard !body.messages.isEmpty else {
            throw .invalid("'messages' is empty", param: "messages")
        }
        let rendered: String
        do {
            rendered = try template.render(messages: body.messages, addGenerationPrompt: true)
        } catch {
            throw .invalid("the chat template failed on these messages: \(error)")
        }
        let prompt = engine.tokenizer.encode(rendered)
        return try run(prompt: prompt, parameters: body.parameters, kind: .chat, echo: nil)
    }

    private func completion(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let body = try decodeBody(CompletionBody.self, from: request.body)
        let prompt: [Int]
        let text: String
        switch body.prompt {
        case .text(let string):
            prompt = engine.tokenizer.encode(string)
            text = string
        case .tokens(let tokens):
            prompt = tokens
            text = engine.tokenizer.decode(
                tokens.filter { $0 >= 0 && $0 < engine.model.config.vocabSize })
        }
        return try run(
            prompt: prompt, parameters: body.parameters, kind: .text, echo: body.echo ? text : nil)
    }

    /// Checks the request against the model and the engine, queues it and answers: streamed
    /// or whole.
    private func run(
        prompt: [Int], parameters: CompletionParameters, kind: AnswerKind, echo: String?
    ) throws(APIError) -> HTTPResponse {
        if let model = parameters.model, model != options.modelName {
            throw .unknownModel(model, served: options.modelName)
        }
        guard !draining.load(ordering: .sequentiallyConsistent) else {
            throw .overloaded("the server is shutting down")
        }
        let sampling = try parameters.sampling()
        let context = engine.contextLength
        guard prompt.count < context else {
            throw .invalid(
                "the prompt has \(prompt.count) tokens; this model's context holds \(context), "
                    + "including the answer", param: "messages", code: "context_length_exceeded")
        }
        // Without a limit the answer may run to the end of the context (chat), or 16 tokens
        // (text completions), as OpenAI's API has it.
        let maxTokens: Int
        if let (value, param) = parameters.requestedMaxTokens {
            guard (1...context).contains(value) else {
                throw .invalid("\(param) \(value) is outside 1...\(context)", param: param)
            }
            maxTokens = value
        } else {
            maxTokens = kind == .chat ? context - prompt.count : 16
        }
        let request = GenerationRequest(
            prompt: prompt, maxTokens: maxTokens, sampling: sampling,
            stopStrings: parameters.stop, priority: parameters.priority)
        let answer = Answer(
            kind: kind, model: options.modelName, created: Int(Date().timeIntervalSince1970),
            includeUsage: parameters.includeUsage, echo: echo)
        return parameters.stream ? try stream(request, answer) : try whole(request, answer)
    }

    private func whole(
        _ request: GenerationRequest, _ answer: Answer
    ) throws(APIError)
        -> HTTPResponse
    {
        let done = DispatchSemaphore(value: 0)
        let box = CompletionBox()
        _ = try submit(request) { event in
            if case .finished(let completion) = event {
                box.completion = completion
                done.signal()
            }
        }
        done.wait()
        return Self.json(answer.whole(box.completion!))
    }

    private func stream(
        _ request: GenerationRequest, _ answer: Answer
    ) throws(APIError)
        -> HTTPResponse
    {
        let stream = HTTPStream()
        stream.send(answer.event(answer.firstChunk()))
        let id = try submit(request) { event in
            switch event {
            case .text(let text):
                stream.send(answer.event(answer.chunk(text: text)))
            case .finished(let completion):
                guard completion.finishReason != .cancelled else {
                    stream.finish()
                    return
                }
                stream.send(answer.event(answer.lastChunk(completion)))
                if answer.includeUsage { stream.send(answer.event(answer.usageChunk(completion))) }
                stream.send("data: [DONE]\n\n")
                stream.finish()
            }
        }
        let engine = engine
        stream.onCancel { engine.cancel(id) }
        return .stream(stream)
    }

    private func submit(
        _ request: GenerationRequest, onEvent: @escaping @Sendable (RequestEvent) -> Void
    ) throws(APIError) -> Int {
        do {
            return try engine.submit(request, onEvent: onEvent)
        } catch let error as EngineError {
            switch error {
            case .queueFull, .shuttingDown:
                throw .overloaded(error.description)
            case .promptTooLong:
                throw .invalid(error.description, code: "context_length_exceeded")
            case .maxTokensOutOfRange:
                throw .invalid(error.description, param: "max_tokens")
            default:
                throw .invalid(error.description)
            }
        } catch {
            throw APIError(status: 500, message: "\(error)", type: "server_error")
        }
    }

    // MARK: - Encoding

    static func response(_ error: any Error) -> HTTPResponse {
        let apiError =
            error as? APIError
            ?? APIError(status: 500, message: "\(error)", type: "server_error")
        return .json(status: apiError.status, apiError.body)
    }

    static func json(_ object: [String: Any]) -> HTTPResponse {
        .json(encodeJSON(object))
    }
}

/// Compares secrets in time that does not depend on where they differ.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return zip(a, b).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
}

func encodeJSON(_ object: Any) -> Data {
    (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
}

/// Carries a completion from the engine's thread to the connection's (the semaphore orders
/// the write before the read).
private final class CompletionBox: @unchecked Sendable {
    var completion: Completion?
}
