import Foundation
import Synchronization
import Testing

@testable import SwiftLMHTTP

/// The server on an ephemeral port of 127.0.0.1, talked to by curl, a client nobody here wrote.
/// The suite runs serialized: the disconnect tests time the server, and 32 curls at once on a
/// small machine would skew that.
@Suite("HTTP server: libmicrohttpd under a Swift handler", .serialized)
struct HTTPServerTests {
    @Test("a GET gets the handler's status, JSON body and content type")
    func getAnsweredWithJSON() async throws {
        let seen = Locked<HTTPRequest?>(nil)
        let server = try makeServer { request in
            seen.set(request)
            return .json(status: 201, Data(#"{"ok":true}"#.utf8))
        }
        defer { server.stop() }

        let result = try await curl(["-H", "X-Test: one", url(server, "/v1/models?a=1&b")])

        #expect(result.status == 201)
        #expect(result.headers["content-type"] == "application/json")
        #expect(String(decoding: result.body, as: UTF8.self) == #"{"ok":true}"#)
        let request = try #require(seen.value)
        #expect(request.method == "GET")
        #expect(request.path == "/v1/models")
        #expect(request.query == ["a": "1", "b": ""])
        #expect(request.header("X-TEST") == "one")
        #expect(request.headers["x-test"] == "one")
        #expect(request.body.isEmpty)
    }

    @Test("a POST body of 200 KB arrives whole, across many pieces, and is echoed back")
    func postBodyEchoed() async throws {
        let server = try makeServer { request in
            HTTPResponse(
                status: 200, headers: [("content-type", "application/octet-stream")],
                body: .bytes(request.body))
        }
        defer { server.stop() }
        let body = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
        let file = try temporaryFile(body)
        defer { try? FileManager.default.removeItem(at: file) }

        let result = try await curl(["--data-binary", "@" + file.path, url(server, "/echo")])

        #expect(result.status == 200)
        #expect(result.body == body)
    }

    @Test(
        "a body over the limit is answered 413 and never reaches the handler",
        arguments: ["content-length", "chunked"])
    func oversizedBodyRefused(framing: String) async throws {
        let handled = Locked(false)
        let server = try makeServer(maxBodyBytes: 1000) { _ in
            handled.set(true)
            return .text("handled\n")
        }
        defer { server.stop() }
        let file = try temporaryFile(Data(repeating: 65, count: 5000))
        defer { try? FileManager.default.removeItem(at: file) }
        let framingArguments = framing == "chunked" ? ["-H", "Transfer-Encoding: chunked"] : []

        let result = try await curl(
            framingArguments + ["--data-binary", "@" + file.path, url(server, "/big")])

        #expect(result.status == 413)
        #expect(String(decoding: result.body, as: UTF8.self) == "too large\n")
        #expect(!handled.value)
    }

    @Test("a body of exactly the limit is accepted")
    func bodyAtLimitAccepted() async throws {
        let server = try makeServer(maxBodyBytes: 1000) { .text("\($0.body.count)") }
        defer { server.stop() }
        let file = try temporaryFile(Data(repeating: 66, count: 1000))
        defer { try? FileManager.default.removeItem(at: file) }

        let result = try await curl(["--data-binary", "@" + file.path, url(server, "/")])

        #expect(result.status == 200)
        #expect(String(decoding: result.body, as: UTF8.self) == "1000")
    }

    @Test("a stream's chunks arrive in order and complete, in chunked encoding")
    func streamArrivesComplete() async throws {
        let chunks = (0..<5).map { "data: event \($0)\n\n" }
        let streams = Locked<HTTPStream?>(nil)
        let server = try makeServer { _ in
            let stream = HTTPStream()
            streams.set(stream)
            Thread.detachNewThread {
                for chunk in chunks {
                    stream.send(chunk)
                    Thread.sleep(forTimeInterval: 0.05)
                }
                stream.finish()
            }
            return .stream(stream)
        }
        defer { server.stop() }

        let result = try await curl(["-N", url(server, "/v1/chat/completions")])

        #expect(result.exitCode == 0)
        #expect(result.status == 200)
        #expect(result.headers["transfer-encoding"] == "chunked")
        #expect(result.headers["content-type"] == "text/event-stream")
        #expect(result.headers["cache-control"] == "no-cache")
        #expect(String(decoding: result.body, as: UTF8.self) == chunks.joined())
        #expect(try #require(streams.value).isCancelled == false)
    }

    /// A silent producer leaves the server nothing to write, so only the socket check can
    /// notice the client; a slow one also meets a failed write.
    @Test(
        "a client that disconnects mid-stream cancels it within 2 s, and send returns false",
        arguments: ["silent", "slow"])
    func disconnectCancelsStream(producer: String) async throws {
        let cancelledAt = Locked<ContinuousClock.Instant?>(nil)
        let producerStopped = Locked(false)
        let streams = Locked<HTTPStream?>(nil)
        let server = try makeServer { _ in
            let stream = HTTPStream()
            stream.onCancel { cancelledAt.set(.now) }
            stream.send("data: first\n\n")
            streams.set(stream)
            if producer == "slow" {
                Thread.detachNewThread {
                    while stream.send("data: tick\n\n") { Thread.sleep(forTimeInterval: 0.3) }
                    producerStopped.set(true)
                }
            }
            return .stream(stream)
        }
        defer { server.stop() }

        let result = try await curl(["-N", "--max-time", "1", url(server, "/stream")])
        let clientGone = ContinuousClock.now

        #expect(result.exitCode == 28)  // curl's "operation timed out"
        try await waitUntil(seconds: 5) { cancelledAt.value != nil }
        let cancelled = try #require(cancelledAt.value)
        #expect(cancelled - clientGone < .seconds(2))
        let stream = try #require(streams.value)
        #expect(stream.isCancelled)
        #expect(!stream.send("data: late\n\n"))
        if producer == "slow" {
            try await waitUntil(seconds: 2) { producerStopped.value }
            #expect(producerStopped.value)
        }
    }

    @Test("a stream whose producer is quiet for longer than the idle timeout is not cut off")
    func quietProducerOutlastsIdleTimeout() async throws {
        let server = try makeServer(idleTimeoutSeconds: 1) { _ in
            let stream = HTTPStream()
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 2.5)
                stream.send("data: late\n\n")
                Thread.sleep(forTimeInterval: 1.5)
                stream.send("data: later\n\n")
                stream.finish()
            }
            return .stream(stream)
        }
        defer { server.stop() }

        let result = try await curl(["-N", url(server, "/")])

        #expect(result.exitCode == 0)
        #expect(String(decoding: result.body, as: UTF8.self) == "data: late\n\ndata: later\n\n")
    }

    @Test(
        "a stream is released once its response has ended, finished or cut off",
        arguments: ["finished", "disconnected"])
    func streamReleased(ending: String) async throws {
        let released = Locked(WeakStream())
        let server = try makeServer { _ in
            let stream = HTTPStream()
            released.set(WeakStream(stream: stream))
            stream.send("data: first\n\n")
            if ending == "finished" { stream.finish() }
            return .stream(stream)
        }
        defer { server.stop() }

        let result = try await curl(["-N", "--max-time", "1", url(server, "/")])
        try await waitUntil(seconds: 3) { released.value.stream == nil }

        #expect(result.exitCode == (ending == "finished" ? 0 : 28))
        #expect(released.value.stream == nil)
    }

    @Test("a cancel handler registered after the disconnect runs at once, and only once")
    func lateCancelHandlerRunsAtOnce() {
        let stream = HTTPStream()
        let calls = Locked(0)
        stream.onCancel { calls.update { $0 += 1 } }

        stream.cancel()
        stream.cancel()
        stream.onCancel { calls.update { $0 += 10 } }

        #expect(calls.value == 11)
    }

    @Test("32 requests whose handlers block until all have arrived are all served")
    func concurrentBlockingRequests() async throws {
        let count = 32
        let barrier = Barrier(count: count)
        let server = try makeServer { _ in
            barrier.arriveAndWait(timeout: 30) ? .text("released") : .text(status: 500, "timeout")
        }
        defer { server.stop() }

        let results = try await withThrowingTaskGroup(of: CurlResult.self) { group in
            for index in 0..<count {
                group.addTask { try await curl([url(server, "/wait/\(index)")]) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }

        #expect(results.count == count)
        #expect(results.allSatisfy { $0.status == 200 })
        #expect(results.allSatisfy { String(decoding: $0.body, as: UTF8.self) == "released" })
    }

    @Test("stop lets a request under way finish, then refuses connections")
    func stopDrainsThenRefuses() async throws {
        let entered = Locked(false)
        let server = try makeServer { _ in
            entered.set(true)
            Thread.sleep(forTimeInterval: 0.5)
            return .text("finished")
        }
        let address = url(server, "/slow")
        let pending = Task { try await curl([address]) }
        try await waitUntil(seconds: 10) { entered.value }

        server.stop()
        let result = try await pending.value
        let refused = try await curl(["--max-time", "5", address])

        #expect(result.status == 200)
        #expect(String(decoding: result.body, as: UTF8.self) == "finished")
        #expect(refused.exitCode == 7)  // curl's "failed to connect"
        server.stop()  // a second stop does nothing
    }

    @Test("stop cancels a stream its producer never finishes once the grace period is over")
    func stopCancelsUnfinishedStream() async throws {
        let streams = Locked<HTTPStream?>(nil)
        let server = try makeServer { _ in
            let stream = HTTPStream()
            stream.send("data: first\n\n")
            streams.set(stream)
            return .stream(stream)
        }
        let pending = Task { try await curl(["-N", "--max-time", "20", url(server, "/")]) }
        try await waitUntil(seconds: 10) { streams.value != nil }

        let start = ContinuousClock.now
        server.stop(gracePeriod: .milliseconds(200))
        let stopDuration = ContinuousClock.now - start
        let result = try await pending.value

        #expect(stopDuration < .seconds(3))
        #expect(try #require(streams.value).isCancelled)
        #expect(result.exitCode != 0)
    }

    @Test("a port in use, a host name and a port out of range are typed errors")
    func startErrors() throws {
        let server = try makeServer { _ in .text("") }
        defer { server.stop() }

        #expect(throws: HTTPServerError.addressInUse(host: "127.0.0.1", port: server.port)) {
            try makeServer(port: server.port) { _ in .text("") }
        }
        #expect(throws: HTTPServerError.invalidHost("localhost")) {
            try makeServer(host: "localhost") { _ in .text("") }
        }
        #expect(throws: HTTPServerError.invalidPort(70000)) {
            try makeServer(port: 70000) { _ in .text("") }
        }
        #expect(
            HTTPServerError.addressInUse(host: "::1", port: 80).description.hasPrefix("[::1]:80"))
    }

    @Test("a header field libmicrohttpd refuses turns the response into a 500 naming it")
    func refusedHeaderField() async throws {
        let server = try makeServer { _ in
            HTTPResponse(
                status: 200, headers: [("content-length", "3")], body: .bytes(Data("abc".utf8)))
        }
        defer { server.stop() }

        let result = try await curl([url(server, "/")])

        #expect(result.status == 500)
        #expect(String(decoding: result.body, as: UTF8.self).contains(#""content-length""#))
    }
}

// MARK: - Support

private func makeServer(
    host: String = "127.0.0.1", port: Int = 0, maxBodyBytes: Int = 1 << 20,
    idleTimeoutSeconds: Int = 60, handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse
) throws -> HTTPServer {
    try HTTPServer(
        host: host, port: port, maxBodyBytes: maxBodyBytes,
        idleTimeoutSeconds: idleTimeoutSeconds,
        oversizedBody: { .text(status: 413, "too large\n") }, handler: handler)
}

private func url(_ server: HTTPServer, _ path: String) -> String {
    "http://127.0.0.1:\(server.port)\(path)"
}

/// What curl reported: its exit code, and the last response's status, header fields (lowercased
/// names) and body.
private struct CurlResult: Sendable {
    var exitCode: Int32
    var status: Int
    var headers: [String: String]
    var body: Data
}

/// Runs curl, waiting for it without holding a thread of the test pool.
private func curl(_ arguments: [String]) async throws -> CurlResult {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("swiftlm-http-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let headerFile = directory.appendingPathComponent("headers")
    let bodyFile = directory.appendingPathComponent("body")

    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = ["-sS", "-D", headerFile.path, "-o", bodyFile.path] + arguments
    process.standardError = FileHandle.nullDevice
    let exitCode = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
        do {
            try process.run()
        } catch {
            continuation.resume(throwing: error)
        }
    }

    // A 100 Continue comes first when curl asked for it; the answer is the last block.
    let headerText = (try? String(contentsOf: headerFile, encoding: .utf8)) ?? ""
    let block = headerText.components(separatedBy: "\r\n\r\n").last { !$0.isEmpty } ?? ""
    let lines = block.components(separatedBy: "\r\n")
    let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        headers[line[..<colon].lowercased()] = value
    }
    let body = (try? Data(contentsOf: bodyFile)) ?? Data()
    return CurlResult(exitCode: exitCode, status: status ?? 0, headers: headers, body: body)
}

private func temporaryFile(_ contents: Data) throws -> URL {
    let file = FileManager.default.temporaryDirectory
        .appendingPathComponent("swiftlm-http-body-\(UUID().uuidString)")
    try contents.write(to: file)
    return file
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
private func waitUntil(seconds: Double, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while !condition(), ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// A value that handlers on the server's threads and the test share.
private final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    var value: Value { mutex.withLock { $0 } }

    func set(_ value: Value) { mutex.withLock { $0 = value } }

    func update(_ body: (inout Value) -> Void) { mutex.withLock { body(&$0) } }
}

/// A stream that the test does not keep alive.
private struct WeakStream: Sendable {
    weak var stream: HTTPStream?
}

/// Holds every arriving thread until `count` have arrived.
private final class Barrier: @unchecked Sendable {
    // @unchecked: `arrived` is read and written only while `condition` is locked.
    private let condition = NSCondition()
    private let count: Int
    private var arrived = 0

    init(count: Int) { self.count = count }

    /// Returns true when all arrived, false if `timeout` seconds passed first.
    func arriveAndWait(timeout: TimeInterval) -> Bool {
        condition.lock()
        defer { condition.unlock() }

        arrived += 1
        condition.broadcast()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while arrived < count {
            if !condition.wait(until: deadline) { return arrived >= count }
        }
        return true
    }
}
