import CMicroHTTPD
import Foundation
import Glibc
import Synchronization

/// An HTTP/1.1 server for an API: GNU libmicrohttpd speaks the protocol, and one handler
/// answers every request.
///
/// Each connection runs on a thread of its own (libmicrohttpd's thread-per-connection mode), so
/// a handler may block for as long as it needs, e.g. for a whole completion, while other
/// connections are served. A request's body is read into memory, up to `maxBodyBytes`, before
/// the handler runs; a longer one is answered by `oversizedBody` and never reaches the handler.
///
/// ```swift
/// let server = try HTTPServer(port: 8080, maxBodyBytes: 1 << 20,
///     oversizedBody: { .text(status: 413, "request body too large\n") },
///     handler: { request in .text("hello \(request.path)\n") })
/// ```
public final class HTTPServer: Sendable {
    /// The port the server listens on: the one the system chose when the caller asked for 0.
    public let port: Int
    private let daemon: Mutex<RunningDaemon?>
    private let context: ServerContext

    /// Starts listening and serving.
    ///
    /// - Parameters:
    ///   - host: a numeric IPv4 or IPv6 address; the server binds to it alone. The default
    ///     serves this machine only; "0.0.0.0" serves every interface.
    ///   - port: the TCP port, or 0 for one the system chooses (read it from `port`).
    ///   - maxBodyBytes: the longest request body accepted.
    ///   - connectionLimit: connections served at once; each holds a thread. Further clients
    ///     are refused until one ends.
    ///   - idleTimeoutSeconds: how long a connection may stay silent (no request arriving, a
    ///     client not reading its response) before it is closed. A handler at work and a
    ///     stream waiting for its producer do not count as silence.
    ///   - oversizedBody: the answer, usually status 413, to a body over `maxBodyBytes`.
    ///   - handler: answers each request, on that connection's thread.
    public init(
        host: String = "127.0.0.1", port: Int, maxBodyBytes: Int, connectionLimit: Int = 256,
        idleTimeoutSeconds: Int = 60,
        oversizedBody: @escaping @Sendable () -> HTTPResponse,
        handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse
    ) throws(HTTPServerError) {
        precondition(maxBodyBytes >= 0, "maxBodyBytes must not be negative: \(maxBodyBytes)")
        precondition(connectionLimit > 0, "connectionLimit must be positive: \(connectionLimit)")
        precondition(idleTimeoutSeconds > 0, "idleTimeoutSeconds must be positive")

        // The socket is bound here rather than by libmicrohttpd, which reports no reason when
        // it fails: this way a port in use is an error that says so.
        let listener = try ListeningSocket(host: host, port: port)

        let context = ServerContext(
            maxBodyBytes: maxBodyBytes, idleTimeoutSeconds: UInt32(idleTimeoutSeconds),
            oversizedBody: oversizedBody, handler: handler)
        // poll() rather than select(), which cannot watch a descriptor above FD_SETSIZE; ITC
        // because MHD_quiesce_daemon needs it; no MHD_USE_ERROR_LOG, which would print.
        let flags =
            MHD_USE_THREAD_PER_CONNECTION.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue
            | MHD_USE_POLL.rawValue | MHD_USE_ITC.rawValue
        let contextPointer = Unmanaged.passRetained(context).toOpaque()
        guard
            let pointer = swiftlm_mhd_start_daemon(
                flags, listener.socket, HTTPCallbacks.access, contextPointer,
                HTTPCallbacks.requestCompleted, contextPointer, UInt32(connectionLimit),
                context.idleTimeoutSeconds)
        else {
            // libmicrohttpd closes the socket it was given on its failure paths; closing it
            // again could close a descriptor another thread has just opened.
            Unmanaged.passUnretained(context).release()
            throw .startFailed(host: host, port: listener.port)
        }

        self.port = listener.port
        self.context = context
        self.daemon = Mutex(RunningDaemon(pointer: pointer, listenSocket: listener.socket))
    }

    deinit {
        stop(gracePeriod: .zero)
    }

    /// Stops the server: refuses new connections at once, waits up to `gracePeriod` for the
    /// requests under way to be answered (a stream is answered when its producer calls
    /// `finish`), then closes every connection, which cancels the streams still open, and
    /// releases libmicrohttpd's daemon. Returns only once every connection's thread has ended,
    /// so it also waits for handlers that are still at work.
    ///
    /// Calling it again does nothing; a concurrent caller returns when the first is done. A
    /// handler must not call it: stopping waits for the handler's own thread.
    public func stop(gracePeriod: Duration = .seconds(30)) {
        daemon.withLock { daemon in
            guard let running = daemon.take() else { return }

            // Quiescing stops libmicrohttpd's accepting; shutting the socket down makes the
            // kernel refuse connections rather than queue them. libmicrohttpd wants the socket
            // open until MHD_stop_daemon, as its polling thread may still be polling it.
            _ = MHD_quiesce_daemon(running.pointer)
            _ = shutdown(running.listenSocket, Int32(SHUT_RDWR))

            context.waitForActiveRequests(upTo: gracePeriod)

            // Shuts every connection's socket down and joins its thread; a stream's reader
            // sees the shutdown at its next look at the socket (StreamReader).
            MHD_stop_daemon(running.pointer)
            _ = close(running.listenSocket)
            Unmanaged.passUnretained(context).release()
        }
    }
}

/// A daemon that is serving, and the socket it accepts on.
private struct RunningDaemon: @unchecked Sendable {
    // @unchecked: the pointer is libmicrohttpd's handle, which it lets any thread stop.
    let pointer: OpaquePointer
    let listenSocket: Int32
}

/// What every callback of one daemon shares. libmicrohttpd holds one retain of it (its callback
/// argument) from start to stop.
final class ServerContext: Sendable {
    let maxBodyBytes: Int
    let idleTimeoutSeconds: UInt32
    let oversizedBody: @Sendable () -> HTTPResponse
    let handler: @Sendable (HTTPRequest) -> HTTPResponse
    /// Requests whose headers have arrived and whose completion has not yet been notified.
    let activeRequests = Atomic<Int>(0)

    init(
        maxBodyBytes: Int, idleTimeoutSeconds: UInt32,
        oversizedBody: @escaping @Sendable () -> HTTPResponse,
        handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.oversizedBody = oversizedBody
        self.handler = handler
    }

    /// Returns when no request is under way, or after `limit`. It polls every 10 ms: stopping
    /// happens once, and a condition to wait on would add a lock to every request's path.
    func waitForActiveRequests(upTo limit: Duration) {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: limit)
        while activeRequests.load(ordering: .acquiring) > 0, clock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
    }
}
