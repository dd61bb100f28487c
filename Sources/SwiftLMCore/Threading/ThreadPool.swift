import Foundation
import Synchronization

/// The one pool of worker threads that every parallel kernel runs on.
///
/// `parallelFor` splits `0..<count` into one contiguous chunk per thread; the calling thread
/// works on the first chunk, so a pool of `threadCount` runs `threadCount - 1` workers. Workers
/// are created once, spin briefly and then sleep between jobs, so a decode step creates no
/// threads and rarely makes a system call.
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

    /// Runs `body` on disjoint chunks of `0..<count` across the pool; returns when all are done.
    public func parallelFor(_ count: Int, _ body: (Range<Int>) -> Void) {
        parallelFor(count) { range, _ in body(range) }
    }

    /// Like `parallelFor(_:_:)`, also passing the index (`0..<threadCount`) of the thread that
    /// runs the chunk, so callers can give each thread its own preallocated scratch.
    ///
    /// A call made while the workers are taken (a nested call from inside a body, or a second
    /// caller thread such as a concurrently running test) runs the whole range on the calling
    /// thread as chunk 0 instead of waiting: correct, never deadlocked, only not parallel.
    public func parallelFor(_ count: Int, _ body: (Range<Int>, Int) -> Void) {
        let chunks = min(threadCount, count)
        if chunks <= 1 {
            if count > 0 { body(0..<count, 0) }
            return
        }
        guard
            busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else {
            body(0..<count, 0)
            return
        }
        defer { busy.store(false, ordering: .releasing) }

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
///
/// A decode step runs a few hundred parallel regions, each only tens of microseconds long, so
/// waking a sleeping thread for each (a futex round trip) would cost as much as the work. Both
/// sides therefore spin briefly on atomics before they sleep on the condition: a worker between
/// the regions of one step catches the next job without a system call, and an idle pool still
/// sleeps. The spin is bounded, so an oversubscribed machine loses at most `spinLimit` loads.
private final class JobBoard: @unchecked Sendable {
    /// Atomic loads a thread spins before it sleeps: some tens of microseconds. (Swift has no
    /// spin-loop hint; x86's `pause` is an inline intrinsic that does not import.)
    private static let spinLimit = 20_000

    private let condition = NSCondition()
    /// Written by the caller only while no worker runs; published by the release of
    /// `generation` and read after its acquire.
    private var job: ((Int) -> Void)?
    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)

    func post(_ run: @escaping (Int) -> Void, workers: Int) {
        job = run
        pending.store(workers, ordering: .relaxed)
        generation.add(1, ordering: .releasing)

        // Sleepers check `generation` under the lock before waiting, so none misses this.
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    func waitUntilDone() {
        var spins = 0
        while pending.load(ordering: .acquiring) > 0 && spins < Self.spinLimit {
            spins += 1
        }
        if pending.load(ordering: .acquiring) > 0 {
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

            var work = job
            work?(workerIndex)
            // Drop the reference before reporting: the caller's closure must not outlive the
            // call that lent it (withoutActuallyEscaping checks this).
            work = nil

            if pending.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                condition.lock()
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    /// Returns once a job newer than `seen` is posted or the pool stops.
    private func waitForJob(after seen: Int) {
        var spins = 0
        while isIdle(after: seen) && spins < Self.spinLimit {
            spins += 1
        }
        guard isIdle(after: seen) else { return }

        condition.lock()
        while isIdle(after: seen) { condition.wait() }
        condition.unlock()
    }

    private func isIdle(after seen: Int) -> Bool {
        generation.load(ordering: .acquiring) == seen && !stopping.load(ordering: .acquiring)
    }
}
