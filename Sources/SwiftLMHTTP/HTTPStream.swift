import Foundation

/// A response body produced while it is sent, such as server-sent events: a queue of chunks
/// that a producer fills from any thread and the connection's thread drains.
///
/// The producer sends chunks and then calls `finish`. When the client goes away first, the
/// stream is cancelled: `send` returns false from then on, queued chunks are dropped and the
/// `onCancel` handlers run once, so a generation loop can stop. The queue has no bound; a
/// producer that outpaces a slow client holds the difference in memory.
///
/// `@unchecked Sendable`: every stored property below is read and written only while
/// `condition` is locked, and the condition is also what the connection's thread sleeps on.
public final class HTTPStream: @unchecked Sendable {
    private let condition = NSCondition()
    /// Chunks not yet handed to the connection; `headOffset` bytes of the first are gone.
    private var chunks: [Data] = []
    private var headOffset = 0
    private var finished = false
    /// Set once the reader has handed out the end of the body; the stream can no longer be
    /// cancelled after that.
    private var ended = false
    private var cancelled = false
    private var cancelHandlers: [@Sendable () -> Void] = []
    /// Set when a response takes the stream, which only one may.
    private var attached = false

    public init() {}

    /// Queues a chunk; returns false once the client has gone away, and the producer should
    /// then stop. Sending after `finish` is a programming error.
    @discardableResult
    public func send(_ data: Data) -> Bool {
        condition.lock()
        defer { condition.unlock() }

        precondition(!finished, "HTTPStream.send after finish")
        guard !cancelled else { return false }
        if !data.isEmpty {
            chunks.append(data)
            condition.broadcast()
        }
        return true
    }

    /// Queues text in UTF-8; see `send(_: Data)`.
    @discardableResult
    public func send(_ text: String) -> Bool {
        send(Data(text.utf8))
    }

    /// Ends the body once the queued chunks are sent. Calling it again does nothing.
    public func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// True once the client disconnected before the end of the body was delivered.
    public var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    /// Registers a handler that runs once when the client disconnects before the end of the
    /// body; at once, on this thread, if that has already happened. Handlers run on the
    /// server's connection thread and should only signal the producer, not block.
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        condition.lock()
        guard cancelled else {
            cancelHandlers.append(handler)
            condition.unlock()
            return
        }
        condition.unlock()
        handler()
    }
}

// The connection's side of the stream: the content reader of its response.
extension HTTPStream {
    enum ReadResult: Equatable {
        /// This many bytes were copied into the buffer.
        case bytes(Int)
        /// The body is complete.
        case end
        /// The client went away.
        case cancelled
        /// Nothing arrived within the wait; the caller checks the client and asks again.
        case timedOut
    }

    /// Claims the stream for one response; false when another response already has it.
    func attach() -> Bool {
        condition.lock()
        defer { condition.unlock() }

        guard !attached else { return false }
        attached = true
        return true
    }

    /// Copies queued bytes into `buffer`, waiting up to `timeout` for a chunk or the end.
    func read(into buffer: UnsafeMutableRawBufferPointer, timeout: TimeInterval) -> ReadResult {
        condition.lock()
        defer { condition.unlock() }

        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            if cancelled { return .cancelled }
            if !chunks.isEmpty { return .bytes(dequeue(into: buffer)) }
            if finished {
                ended = true
                return .end
            }
            // A spurious wake-up loops; past the deadline the caller looks at the socket.
            if !condition.wait(until: deadline) { return .timedOut }
        }
    }

    /// Moves as many queued bytes as fit into `buffer`, across chunks. Called with the lock held.
    private func dequeue(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var copied = 0
        var used = 0
        for chunk in chunks {
            let take = min(chunk.count - headOffset, buffer.count - copied)
            let start = chunk.startIndex + headOffset
            chunk[start..<start + take].withUnsafeBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: buffer[copied..<copied + take])
                    .copyMemory(from: bytes)
            }
            copied += take
            guard headOffset + take == chunk.count else {
                headOffset += take
                break
            }
            headOffset = 0
            used += 1
            if copied == buffer.count { break }
        }
        chunks.removeFirst(used)
        return copied
    }

    /// Marks the stream cancelled unless its end was already handed out, and runs the cancel
    /// handlers, once, outside the lock (a handler may call back into the stream).
    func cancel() {
        condition.lock()
        guard !cancelled, !ended else {
            condition.unlock()
            return
        }
        cancelled = true
        chunks = []
        headOffset = 0
        let handlers = cancelHandlers
        cancelHandlers = []
        condition.broadcast()
        condition.unlock()

        for handler in handlers { handler() }
    }
}
