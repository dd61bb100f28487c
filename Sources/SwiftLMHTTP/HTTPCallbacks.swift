import CMicroHTTPD
import Foundation

// libmicrohttpd's callbacks. They are C function pointers and capture nothing: each reaches its
// Swift objects through the pointer argument that libmicrohttpd hands back, and every object
// passed that way carries one retain taken with `Unmanaged.passRetained` and given back exactly
// once:
// - the `ServerContext`, by `HTTPServer.stop`, after MHD_stop_daemon has returned;
// - a `RequestState`, by `requestCompleted`, which libmicrohttpd calls once for every request
//   whose access handler ran;
// - a `StreamReader`, by `freeContentReader`, which runs when the last reference to its
//   response is dropped.

/// The state of one request from its first call of the access handler to its completion,
/// behind libmicrohttpd's per-request pointer. libmicrohttpd makes a connection's calls one at
/// a time, on the connection's thread, so the state is never used by two threads at once.
final class RequestState {
    var request: HTTPRequest
    /// Set once the body went over the limit; the rest of it is discarded.
    var oversized = false
    /// The body of the response, when it is streamed, to cancel if the request ends badly.
    var stream: HTTPStream?

    init(request: HTTPRequest) {
        self.request = request
    }
}

/// The content reader of one streamed response.
final class StreamReader {
    /// How long the reader waits for a chunk before it looks at the socket: a client that
    /// disconnects while the producer is quiet is noticed within this time.
    static let socketCheckInterval: TimeInterval = 0.25

    let stream: HTTPStream
    /// The connection, which outlives every call of its response's reader.
    let connection: OpaquePointer
    /// The connection's socket. It stays open while the reader can be called: libmicrohttpd
    /// closes it only after it has destroyed the response.
    let socket: Int32
    let idleTimeoutSeconds: UInt32

    init(stream: HTTPStream, connection: OpaquePointer, idleTimeoutSeconds: UInt32) {
        self.stream = stream
        self.connection = connection
        self.socket = swiftlm_mhd_connection_socket(connection)
        self.idleTimeoutSeconds = idleTimeoutSeconds
    }

    /// Fills `buffer` with the next bytes of the body, blocking until there are some.
    ///
    /// In thread-per-connection mode libmicrohttpd calls the reader again at once when it
    /// returns 0 (its poll has a zero timeout while the body is not ready: `BODY_UNREADY`
    /// in 0.9.75's `thread_main_handle_connection`), so returning 0 would spin. The reader
    /// blocks on the stream's condition instead, which only this connection waits on.
    ///
    /// Time spent waiting here is the producer's, not the client's: libmicrohttpd checks its
    /// idle timeout right after the reader returns, counting from the last write, and would
    /// otherwise close a stream whose producer was quiet for longer than the timeout.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        while true {
            switch stream.read(into: buffer, timeout: Self.socketCheckInterval) {
            case .bytes(let count):
                swiftlm_mhd_restart_idle_timer(connection, idleTimeoutSeconds)
                return count
            case .end:
                swiftlm_mhd_restart_idle_timer(connection, idleTimeoutSeconds)
                return MHD_CONTENT_READER_END_OF_STREAM
            case .cancelled:
                return MHD_CONTENT_READER_END_WITH_ERROR
            case .timedOut:
                guard peerHasClosed(socket) else { continue }
                stream.cancel()
                return MHD_CONTENT_READER_END_WITH_ERROR
            }
        }
    }
}

enum HTTPCallbacks {
    /// libmicrohttpd's access handler: called once when a request's headers are in, once per
    /// piece of the body, and once more when the body is complete.
    static let access: MHD_AccessHandlerCallback = {
        contextPointer, connection, url, method, _, uploadData, uploadSize, requestPointer in
        guard let contextPointer, let connection, let uploadSize, let requestPointer else {
            return .NO
        }
        let context = Unmanaged<ServerContext>.fromOpaque(contextPointer).takeUnretainedValue()

        guard let statePointer = requestPointer.pointee else {
            let state = RequestState(request: readRequest(connection, url: url, method: method))
            requestPointer.pointee = Unmanaged.passRetained(state).toOpaque()
            context.activeRequests.add(1, ordering: .relaxed)
            return begin(state, context: context, connection: connection)
        }
        let state = Unmanaged<RequestState>.fromOpaque(statePointer).takeUnretainedValue()

        if uploadSize.pointee > 0 {
            append(uploadData, count: uploadSize.pointee, to: state, limit: context.maxBodyBytes)
            uploadSize.pointee = 0
            return .YES
        }

        let response = state.oversized ? context.oversizedBody() : context.handler(state.request)
        return queue(response, on: connection, for: state, context: context)
    }

    /// Called once for every request that reached the access handler, however it ended.
    static let requestCompleted: MHD_RequestCompletedCallback = {
        contextPointer, _, requestPointer, termination in
        guard let contextPointer, let requestPointer, let statePointer = requestPointer.pointee
        else { return }
        requestPointer.pointee = nil
        let state = Unmanaged<RequestState>.fromOpaque(statePointer).takeRetainedValue()

        // Any other ending (a failed write, a timeout, a stop) left a stream undelivered.
        if termination != .REQUEST_TERMINATED_COMPLETED_OK { state.stream?.cancel() }

        let context = Unmanaged<ServerContext>.fromOpaque(contextPointer).takeUnretainedValue()
        context.activeRequests.subtract(1, ordering: .releasing)
    }

    static let readContent: MHD_ContentReaderCallback = { readerPointer, _, buffer, max in
        guard let readerPointer, let buffer else { return MHD_CONTENT_READER_END_WITH_ERROR }
        let reader = Unmanaged<StreamReader>.fromOpaque(readerPointer).takeUnretainedValue()
        return reader.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: max))
    }

    /// Runs when the response is destroyed. A stream whose end was not handed out by then
    /// never reached the client in full (`cancel` does nothing after the end).
    static let freeContentReader: MHD_ContentReaderFreeCallback = { readerPointer in
        guard let readerPointer else { return }
        Unmanaged<StreamReader>.fromOpaque(readerPointer).takeRetainedValue().stream.cancel()
    }

    /// The first call: the headers are in, the body is not. A declared length over the limit
    /// is answered now, before any of the body is read; libmicrohttpd then discards what the
    /// client still sends and closes the connection.
    private static func begin(
        _ state: RequestState, context: ServerContext, connection: OpaquePointer
    ) -> MHD_Result {
        guard let declared = state.request.header("content-length") else { return .YES }

        // libmicrohttpd has checked that the length is a number; too long for Int is too long.
        guard let length = Int(declared), length <= context.maxBodyBytes else {
            state.oversized = true
            return queue(context.oversizedBody(), on: connection, for: state, context: context)
        }
        state.request.body.reserveCapacity(length)
        return .YES
    }

    /// Adds a piece of the body, unless the body has gone over the limit. A chunked upload has
    /// no declared length, so its limit is enforced here; libmicrohttpd cannot answer before
    /// the body ends, so the rest is read and dropped and the answer comes at the end.
    private static func append(
        _ piece: UnsafePointer<CChar>?, count: Int, to state: RequestState, limit: Int
    ) {
        guard !state.oversized, let piece else { return }
        guard state.request.body.count + count <= limit else {
            state.oversized = true
            state.request.body = Data()
            return
        }
        state.request.body.append(
            UnsafeRawPointer(piece).assumingMemoryBound(to: UInt8.self), count: count)
    }

    /// The request line's method and path, the header fields and the query's arguments.
    private static func readRequest(
        _ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?
    ) -> HTTPRequest {
        var request = HTTPRequest(
            method: method.map { String(cString: $0) } ?? "",
            path: url.map { String(cString: $0) } ?? "/")
        withUnsafeMutablePointer(to: &request.headers) {
            _ = MHD_get_connection_values(connection, .HEADER_KIND, collectHeader, $0)
        }
        withUnsafeMutablePointer(to: &request.query) {
            _ = MHD_get_connection_values(connection, .GET_ARGUMENT_KIND, collectArgument, $0)
        }
        return request
    }

    /// Adds a header field to a `[String: String]`, lowercasing its name and joining repeats.
    private static let collectHeader: MHD_KeyValueIterator = { fieldsPointer, _, name, value in
        guard let fieldsPointer, let name else { return .YES }
        let fields = fieldsPointer.assumingMemoryBound(to: [String: String].self)
        let key = String(cString: name).lowercased()
        let text = value.map { String(cString: $0) } ?? ""
        fields.pointee[key] = fields.pointee[key].map { $0 + ", " + text } ?? text
        return .YES
    }

    /// Adds a query argument to a `[String: String]`; a repeated name keeps its last value.
    private static let collectArgument: MHD_KeyValueIterator = {
        argumentsPointer, _, name, value in
        guard let argumentsPointer, let name else { return .YES }
        let arguments = argumentsPointer.assumingMemoryBound(to: [String: String].self)
        arguments.pointee[String(cString: name)] = value.map { String(cString: $0) } ?? ""
        return .YES
    }

    /// Hands a response to libmicrohttpd, which sends it after the access handler returns.
    private static func queue(
        _ response: HTTPResponse, on connection: OpaquePointer, for state: RequestState,
        context: ServerContext
    ) -> MHD_Result {
        let made = makeResponse(response, on: connection, for: state, context: context)
        guard let (created, status) = made else { return .NO }
        // The queued response holds a reference of its own, which ends with the request.
        defer { MHD_destroy_response(created) }

        return MHD_queue_response(connection, UInt32(status), created)
    }

    /// libmicrohttpd's response for `response`, with its body and header fields, and the status
    /// to send it with. A field that libmicrohttpd refuses turns it into a 500 naming the field.
    private static func makeResponse(
        _ response: HTTPResponse, on connection: OpaquePointer, for state: RequestState,
        context: ServerContext
    ) -> (OpaquePointer, Int)? {
        var headers = response.headers
        let created: OpaquePointer?
        switch response.body {
        case .bytes(let data):
            created = data.withUnsafeBytes { bytes in
                MHD_create_response_from_buffer(
                    bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress),
                    .RESPMEM_MUST_COPY)
            }
        case .stream(let stream):
            let attached = stream.attach()
            precondition(attached, "an HTTPStream can be the body of one response only")
            state.stream = stream
            created = makeStreamResponse(
                stream, on: connection, idleTimeoutSeconds: context.idleTimeoutSeconds)
            // Without it a proxy may hold the events back.
            headers.append(("cache-control", "no-cache"))
        }
        guard let created else { return nil }

        for (name, value) in headers where MHD_add_response_header(created, name, value) == .NO {
            MHD_destroy_response(created)
            let message = "invalid response header field \(name.debugDescription)\n"
            return makeResponse(
                .text(status: 500, message), on: connection, for: state, context: context)
        }
        return (created, response.status)
    }

    /// A response of unknown length, sent in chunked encoding as `stream` produces it.
    private static func makeStreamResponse(
        _ stream: HTTPStream, on connection: OpaquePointer, idleTimeoutSeconds: UInt32
    ) -> OpaquePointer? {
        let reader = StreamReader(
            stream: stream, connection: connection, idleTimeoutSeconds: idleTimeoutSeconds)
        let readerPointer = Unmanaged.passRetained(reader).toOpaque()

        // The block size is only a hint: a chunked body is read straight into the
        // connection's write buffer.
        guard
            let created = MHD_create_response_from_callback(
                swiftlm_mhd_size_unknown(), 4096, readContent, readerPointer, freeContentReader)
        else {
            Unmanaged<StreamReader>.fromOpaque(readerPointer).release()
            stream.cancel()
            return nil
        }
        return created
    }
}
