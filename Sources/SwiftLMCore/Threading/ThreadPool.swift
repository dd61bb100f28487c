import Foundation
import Synchronization

/// Work that `ThreadPool.parallelFor(_:work:)` splits across the pool: `run` is called with
/// disjoint pieces of the range, from several threads at once.
///
/// A class, so that handing it to the workers stores a reference: a parallel region then
/// allocates nothing. A closure lent to other threads cannot be stored without a heap copy
/// (`withoutActuallyEscaping` allocates one per call), which a decode step of a few hundred
/// regions would pay every token. Hot paths keep one such object and reuse it.
public protocol ParallelWork: AnyObject {
    func run(_ range: Range<Int>, thread: Int)
}

/// The one pool of worker threads that every parallel kernel runs on.
///
/// `parallelFor` cuts `0..<count` into a few contiguous pieces per thread, which the threads
/// claim one at a time from a shared counter; the calling thread claims pieces too, so a pool
/// of `threadCount` runs `threadCount - 1` workers. When the operating system deschedules a
/// thread (on a shared machine, for another process), the others take the pieces it has not
/// claimed, where a fixed split would leave its whole share waiting. The caller still waits
/// for every worker to check in before it returns, since the job's closure must not outlive
/// the call; a worker that has not woken yet costs that wait, but no work.
/// Workers are created once, spin for a bounded time and then sleep between jobs, so a decode
/// step creates no threads and rarely makes a system call.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let board: JobBoard
    /// Set while a `parallelFor` owns the workers.
    private let busy = Atomic<Bool>(false)

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

    /// Runs `body` on disjoint pieces of `0..<count` across the pool; returns when all are done.
    public func parallelFor(_ count: Int, _ body: (Range<Int>) -> Void) {
        parallelFor(count) { range, _ in body(range) }
    }

    /// Like `parallelFor(_:_:)`, also passing the index (`0..<threadCount`) of the thread that
    /// runs the piece, so callers can give each thread its own preallocated scratch. A thread
    /// may run several pieces, one after another.
    ///
    /// A call made while the workers are taken (a nested call from inside a body, or a second
    /// caller thread such as a concurrently running test) runs the whole range on the calling
    /// thread as one piece instead of waiting: correct, never deadlocked, only not parallel.
    public func parallelFor(_ count: Int, _ body: (Range<Int>, Int) -> Void) {
        // One thread needs no copy of the closure.
        if min(threadCount, count) <= 1 {
            if count > 0 { body(0..<count, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in run(count, .closure(body)) }
    }

    /// Like `parallelFor(_:_:)` for a `ParallelWork` object, allocating nothing.
    public func parallelFor(_ count: Int, work: ParallelWork) {
        run(count, .work(work))
    }

    private func run(_ count: Int, _ body: Job.Body) {
        let threads = min(threadCount, count)
        if threads <= 1 {
            if count > 0 { body.call(0..<count, 0) }
            return
        }
        guard
            busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else {
            body.call(0..<count, 0)
            return
        }
        defer { busy.store(false, ordering: .releasing) }

        // Pieces of at least one item, `piecesPerThread` per thread where there are enough.
        let pieces = min(count, threads * Self.piecesPerThread)
        board.post(Job(body: body, count: count, pieces: pieces), workers: threadCount - 1)
        board.runPieces(thread: 0)
        board.waitUntilDone()
    }

    /// Pieces per thread: enough that a late thread's share is small, few enough that the
    /// counter is not contended and each piece is long enough for a kernel's inner blocks.
    static let piecesPerThread = 4
}

/// One `parallelFor` call: its body and how its range is cut.
private struct Job {
    enum Body {
        case closure((Range<Int>, Int) -> Void)
        case work(ParallelWork)

        func call(_ range: Range<Int>, _ thread: Int) {
            switch self {
            case .closure(let body): body(range, thread)
            case .work(let work): work.run(range, thread: thread)
            }
        }
    }

    let body: Body
    let count: Int
    let pieces: Int
}

/// The state the caller and the workers share; workers hold it strongly so it outlives the pool.
///
/// A decode step runs a few hundred parallel regions, each only tens of microseconds long, so
/// waking a sleeping thread for each (a futex round trip) would cost as much as the work. Both
/// sides therefore spin briefly on atomics before they sleep on the condition: a worker between
/// the regions of one step catches the next job without a system call, and an idle pool still
/// sleeps. The spin is bounded in time, so an oversubscribed machine loses at most
/// `spinNanoseconds` per gap.
private final class JobBoard: @unchecked Sendable {
    /// How long a thread spins before it sleeps. Long enough to bridge the serial work between
    /// the parallel regions of a decode step (a sampler, a norm), short enough that an idle pool
    /// soon stops taking a core. A count of loads (20,000) was tried first: on a 2-core EPYC it
    /// lasted only a few microseconds, the worker slept in almost every gap, and a small model
    /// decoded 6 times slower with two threads than with one (43 context switches per token).
    private static let spinNanoseconds: UInt64 = 500_000
    /// Loads between two readings of the clock while spinning. (Swift has no spin-loop hint;
    /// x86's `pause` is an inline intrinsic that does not import.)
    private static let loadsPerClockReading = 256

    private let condition = NSCondition()
    /// Written by the caller only while no worker runs; published by the release of
    /// `generation` and read after its acquire.
    private var job: Job?
    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// The next unclaimed piece of the current job.
    private let nextPiece = Atomic<Int>(0)

    /// Runs pieces of the current job on thread `thread` until none is left.
    func runPieces(thread: Int) {
        guard let job else { return }
        while true {
            let piece = nextPiece.add(1, ordering: .relaxed).oldValue
            guard piece < job.pieces else { return }
            let lower = job.count * piece / job.pieces
            let upper = job.count * (piece + 1) / job.pieces
            job.body.call(lower..<upper, thread)
        }
    }

    /// Spins while `condition` holds, for at most `spinNanoseconds`; returns whether it still
    /// holds.
    private static func spin(while condition: () -> Bool) -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + spinNanoseconds
        while true {
            for _ in 0..<loadsPerClockReading where !condition() { return false }
            if DispatchTime.now().uptimeNanoseconds >= deadline { return condition() }
        }
    }

    func post(_ newJob: Job, workers: Int) {
        job = newJob
        nextPiece.store(0, ordering: .relaxed)
        pending.store(workers, ordering: .relaxed)
        generation.add(1, ordering: .releasing)

        // Sleepers check `generation` under the lock before waiting, so none misses this.
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    func waitUntilDone() {
        if Self.spin(while: { pending.load(ordering: .acquiring) > 0 }) {
            condition.lock()
            while pending.load(ordering: .acquiring) > 0 { condition.wait() }
            condition.unlock()
        }
        job = nil
    }

    func stop() {
        stopping.store(true, ordering: .releasing)
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    func serve(workerIndex: Int) {
        var seenGeneration = 0
        while true {
            waitForJob(after: seenGeneration)
            if stopping.load(ordering: .acquiring) { return }
            seenGeneration = generation.load(ordering: .acquiring)

            // The caller's closure must not outlive the call that lent it: no reference to the
            // job survives `runPieces`.
            runPieces(thread: workerIndex)

            if pending.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                condition.lock()
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    /// Returns once a job newer than `seen` is posted or the pool stops.
    private func waitForJob(after seen: Int) {
        guard Self.spin(while: { isIdle(after: seen) }) else { return }

        condition.lock()
        while isIdle(after: seen) { condition.wait() }
        condition.unlock()
    }

    private func isIdle(after seen: Int) -> Bool {
        generation.load(ordering: .acquiring) == seen && !stopping.load(ordering: .acquiring)
    }
}
