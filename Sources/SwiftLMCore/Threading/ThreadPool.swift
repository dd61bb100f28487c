import Foundation

/// The one pool of worker threads that every parallel kernel runs on.
///
/// `parallelFor` splits `0..<count` into one contiguous chunk per thread; the calling thread
/// works on the first chunk, so a pool of `threadCount` runs `threadCount - 1` workers. Workers
/// are created once and sleep between jobs, so a decode step creates no threads.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let board: JobBoard

    /// - Parameter threadCount: threads that share the work, the caller included (at least 1).
    public init(threadCount: Int) {
        precondition(threadCount >= 1, "a pool needs at least one thread")
        self.threadCount = threadCount
        board = JobBoard()
        for workerIndex in 1..<threadCount {
            let board = self.board
            let thread = Thread { board.serve(workerIndex: workerIndex) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit { board.stop() }

    /// The number of threads to use when the user does not say: the cores this process may use.
    public static var defaultThreadCount: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Runs `body` on disjoint chunks of `0..<count` across the pool; returns when all are done.
    public func parallelFor(_ count: Int, _ body: (Range<Int>) -> Void) {
        parallelFor(count) { range, _ in body(range) }
    }

    /// Like `parallelFor(_:_:)`, also passing the index (`0..<threadCount`) of the thread that
    /// runs the chunk, so callers can give each thread its own preallocated scratch.
    public func parallelFor(_ count: Int, _ body: (Range<Int>, Int) -> Void) {
        let chunks = min(threadCount, count)
        if chunks <= 1 {
            if count > 0 { body(0..<count, 0) }
            return
        }

        withoutActuallyEscaping(body) { body in
            let run: (Int) -> Void = { chunk in
                guard chunk < chunks else { return }
                let lower = count * chunk / chunks
                let upper = count * (chunk + 1) / chunks
                if lower < upper { body(lower..<upper, chunk) }
            }
            board.post(run, workers: threadCount - 1)
            run(0)
            board.waitUntilDone()
        }
    }
}

/// The state the caller and the workers share; workers hold it strongly so it outlives the pool.
private final class JobBoard: @unchecked Sendable {
    private let condition = NSCondition()
    private var job: ((Int) -> Void)?
    private var generation = 0
    private var pending = 0
    private var stopping = false

    func post(_ run: @escaping (Int) -> Void, workers: Int) {
        condition.lock()
        job = run
        pending = workers
        generation &+= 1
        condition.broadcast()
        condition.unlock()
    }

    func waitUntilDone() {
        condition.lock()
        while pending > 0 { condition.wait() }
        job = nil
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    func serve(workerIndex: Int) {
        var seenGeneration = 0
        while true {
            condition.lock()
            while generation == seenGeneration && !stopping { condition.wait() }
            if stopping {
                condition.unlock()
                return
            }
            seenGeneration = generation
            var work = job
            condition.unlock()

            work?(workerIndex)
            // Drop the reference before reporting: the caller's closure must not outlive the
            // call that lent it (withoutActuallyEscaping checks this).
            work = nil

            condition.lock()
            pending -= 1
            if pending == 0 { condition.broadcast() }
            condition.unlock()
        }
    }
}
