import Foundation
import SwiftLM
import SwiftLMServer
import SwiftLMTestSupport
import Testing

/// ChatML, the default model's template family, for the tiny model that has none.
private let chatML = """
    {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + \
    message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}\
    {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
    """

/// A server on the tiny model, on a free port, for the duration of `body`.
private func withServer<T>(
    apiKey: String? = nil, maxWaiting: Int = 64, maxBodyBytes: Int = 1 << 20,
    _ body: (TestServer) throws -> T
) throws -> T {
    let path = try TinyModel.write(weightType: .q8_0)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let model = try PretrainedModel(path: path)
    var engineOptions = Engine.Options()
    engineOptions.kvBlocks = 64
    engineOptions.blockSize = 8
    engineOptions.maxWaiting = maxWaiting
    engineOptions.threadCount = 2
    let engine = try Engine(
        model: model.model, tokenizer: model.tokenizer, options: engineOptions)
    var options = OpenAIServer.Options()
    options.port = 0
    options.apiKey = apiKey
    options.modelName = "tiny"
    options.maxBodyBytes = maxBodyBytes
    let server = OpenAIServer(
        engine: engine, template: try ChatTemplate(source: chatML), options: options)
    try server.start()
    defer { server.stop(gracePeriod: 1) }
    return try body(TestServer(port: server.port!, engine: engine))
}

private struct TestServer {
    let port: Int
    let engine: Engine

    struct Reply {
        let status: Int
        let body: String
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
        var error: [String: Any] { json["error"] as? [String: Any] ?? [:] }
    }

    /// One request through curl; the status is the last line of its output.
    func request(
        _ path: String, body: String? = nil, method: String? = nil, headers: [String] = [],
        extra: [String] = []
    ) throws -> Reply {
        var arguments = ["-sS", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"]
        if let method { arguments += ["-X", method] }
        for header in headers { arguments += ["-H", header] }
        if body != nil {
            arguments += ["-H", "content-type: application/json", "--data-binary", "@-"]
        }
        arguments += extra
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = arguments
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data((body ?? "").utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let cut = text.lastIndex(of: "\n") ?? text.startIndex
        return Reply(status: Int(text[text.index(after: cut)...]) ?? 0, body: String(text[..<cut]))
    }

    func chat(_ fields: String) throws -> Reply {
        try request(
            "/v1/chat/completions",
            body: #"{"model": "tiny", "messages": [{"role": "user", "content": "abc"}]"#
                + (fields.isEmpty ? "" : ", " + fields) + "}")
    }
}

@Suite("OpenAI-compatible server on a tiny model", .serialized)
struct OpenAIServerTests {
    @Test("a chat completion comes back in OpenAI's shape with usage counts")
    func chatCompletion() throws {
        try withServer { server in
            let reply = try server.chat(#""max_tokens": 5, "temperature": 0"#)
            #expect(reply.status == 200)
            let json = reply.json
            #expect(json["object"] as? String == "chat.completion")
            #expect(json["model"] as? String == "tiny")
            let choice = try #require((json["choices"] as? [[String: Any]])?.first)
            let message = try #require(choice["message"] as? [String: Any])
            #expect(message["role"] as? String == "assistant")
            #expect(["stop", "length"].contains(choice["finish_reason"] as? String))
            let usage = try #require(json["usage"] as? [String: Any])
            let completionTokens = try #require(usage["completion_tokens"] as? Int)
            #expect(
                (1...5).contains(completionTokens) || choice["finish_reason"] as? String == "stop")
            #expect(
                usage["total_tokens"] as? Int
                    == (usage["prompt_tokens"] as? Int ?? 0) + completionTokens)
        }
    }

    @Test("a streamed answer is server-sent events ending with [DONE], equal to the whole one")
    func streaming() throws {
        try withServer { server in
            let whole = try server.request(
                "/v1/completions",
                body: #"{"prompt": "abc de", "max_tokens": 8, "temperature": 0}"#)
            let streamed = try server.request(
                "/v1/completions",
                body: #"{"prompt": "abc de", "max_tokens": 8, "temperature": 0, "stream": true}"#,
                extra: ["-N"])
            #expect(streamed.status == 200)
            let events = streamed.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.last == "data: [DONE]")
            let text = events.dropLast().compactMap { event -> String? in
                let data = Data(event.dropFirst("data: ".count).utf8)
                let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
                return ((object?["choices"] as? [[String: Any]])?.first?["text"] as? String)
            }.joined()
            let wholeText = (whole.json["choices"] as? [[String: Any]])?.first?["text"] as? String
            #expect(text == wholeText)
        }
    }

    @Test("the model list, health and metrics answer")
    func infoRoutes() throws {
        try withServer { server in
            let models = try server.request("/v1/models").json
            #expect(((models["data"] as? [[String: Any]])?.first?["id"] as? String) == "tiny")
            #expect(try server.request("/health").json["status"] as? String == "ok")
            let metrics = try server.request("/metrics")
            #expect(metrics.body.contains("# TYPE swiftlm_time_to_first_token_seconds histogram"))
            #expect(metrics.body.contains("swiftlm_kv_blocks_free 64"))
        }
    }

    @Test("malformed JSON, wrong types and out-of-range values are 400 naming the problem")
    func badRequests() throws {
        try withServer { server in
            let malformed = try server.request("/v1/chat/completions", body: #"{"messages": ["#)
            #expect(malformed.status == 400)
            #expect((malformed.error["message"] as? String)?.hasPrefix("malformed JSON") == true)
            #expect(malformed.error["type"] as? String == "invalid_request_error")

            let wrongType = try server.chat(#""temperature": "hot""#)
            #expect(wrongType.status == 400)
            #expect(wrongType.error["param"] as? String == "temperature")

            let missing = try server.request("/v1/chat/completions", body: #"{"model": "tiny"}"#)
            #expect(missing.status == 400)
            #expect(missing.error["param"] as? String == "messages")

            for maxTokens in ["0", "-1", "1000000"] {
                let reply = try server.chat(#""max_tokens": "# + maxTokens)
                #expect(reply.status == 400)
                #expect(reply.error["param"] as? String == "max_tokens")
            }
            let hot = try server.chat(#""temperature": 7"#)
            #expect(hot.status == 400)
        }
    }

    @Test("an unknown model is 404 and an unknown route 404, a wrong method 405")
    func unknownThings() throws {
        try withServer { server in
            let model = try server.request(
                "/v1/chat/completions",
                body: #"{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}"#)
            #expect(model.status == 404)
            #expect(model.error["code"] as? String == "model_not_found")
            #expect(try server.request("/v2/nothing").status == 404)
            #expect(try server.request("/v1/chat/completions", method: "GET").status == 405)
        }
    }

    @Test("a prompt longer than the context is 400 context_length_exceeded")
    func promptOverContext() throws {
        try withServer { server in
            let long = String(repeating: "abcdefgh ", count: 40)
            let reply = try server.request(
                "/v1/completions", body: #"{"model": "tiny", "prompt": "\#(long)"}"#)
            #expect(reply.status == 400)
            #expect(reply.error["code"] as? String == "context_length_exceeded")
        }
    }

    @Test("a body over the limit is 413 in the error shape")
    func bodyTooLarge() throws {
        try withServer(maxBodyBytes: 1000) { server in
            let big = String(repeating: "x", count: 5000)
            let reply = try server.request("/v1/completions", body: #"{"prompt": "\#(big)"}"#)
            #expect(reply.status == 413)
            #expect(reply.error["code"] as? String == "request_too_large")
        }
    }

    @Test("a missing or wrong API key is 401; the right one passes")
    func apiKey() throws {
        try withServer(apiKey: "sesame") { server in
            #expect(try server.request("/v1/models").status == 401)
            let wrong = try server.request("/v1/models", headers: ["Authorization: Bearer nope"])
            #expect(wrong.status == 401)
            #expect(wrong.error["code"] as? String == "invalid_api_key")
            let right = try server.request("/v1/models", headers: ["Authorization: Bearer sesame"])
            #expect(right.status == 200)
            #expect(try server.request("/health").status == 200)
        }
    }

    @Test("a full queue is 503 in the error shape")
    func queueFull() throws {
        try withServer(maxWaiting: 0) { server in
            let reply = try server.chat(#""max_tokens": 4"#)
            #expect(reply.status == 503)
            #expect(reply.error["type"] as? String == "server_error")
        }
    }
}
