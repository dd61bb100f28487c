import Foundation
import SwiftLMModels

/// Chooses the rows of each engine step (iteration-level scheduling, as in Yu et al., "Orca",
/// OSDI 2022): one token for every sequence that is decoding, then prompt chunks of running
/// and waiting sequences while the step's token budget lasts, so a long prompt joins the
/// batch without stalling the answers already streaming. Memory comes from the paged cache
/// one block at a time; when it runs out the lowest-priority, latest sequence is preempted:
/// its blocks are freed and it waits to be recomputed, keeping its tokens and sampler.
final class Scheduler {
    let cache: PagedKVCache
    /// Sequences running at once at most.
    let maxBatch: Int
    /// The blocks of an adapter's virtual tokens, which every block table begins with (the
    /// engine holds a reference to each); empty without such an adapter.
    let prefixBlocks: [Int]
    /// Rows of one step at most.
    let tokenBudget: Int

    /// Admitted sequences, holding blocks, in admission order.
    private(set) var running: [SequenceState] = []
    /// Sequences without blocks: new, or preempted.
    private(set) var waiting: [SequenceState] = []
    /// Sequences that could not go on and must be finished by the engine (their reason).
    private(set) var stalled: [(SequenceState, FinishReason)] = []
    private(set) var preemptionCount = 0

    init(cache: PagedKVCache, maxBatch: Int, tokenBudget: Int, prefixBlocks: [Int] = []) {
        precondition(maxBatch >= 1 && tokenBudget >= maxBatch, "budget below the batch")
        self.cache = cache
        self.prefixBlocks = prefixBlocks
        self.maxBatch = maxBatch
        self.tokenBudget = tokenBudget
    }

    var isIdle: Bool { running.isEmpty && waiting.isEmpty }

    func enqueue(_ sequence: SequenceState) { insertWaiting(sequence) }

    /// Removes a sequence wherever it is and frees its blocks. Returns whether it was here.
    @discardableResult
    func remove(id: Int) -> SequenceState? {
        if let index = running.firstIndex(where: { $0.id == id }) {
            let sequence = running.remove(at: index)
            cache.release(table: &sequence.blockTable)
            return sequence
        }
        if let index = waiting.firstIndex(where: { $0.id == id }) {
            return waiting.remove(at: index)
        }
        return nil
    }

    func takeStalled() -> [(SequenceState, FinishReason)] {
        defer { stalled.removeAll() }
        return stalled
    }

    /// The next step: each scheduled sequence with the number of tokens it runs.
    func schedule() -> [(SequenceState, Int)] {
        var plan: [(SequenceState, Int)] = []
        var budget = tokenBudget

        // Decoding sequences first (one token each), then unfinished prompts, each group
        // by priority.
        let order =
            running.filter { $0.pending == 1 }.sortedByPriority()
            + running.filter { $0.pending > 1 }.sortedByPriority()
        for sequence in order where running.contains(where: { $0 === sequence }) {
            guard budget > 0 else { break }
            let count = min(sequence.pending, budget)
            guard reserve(sequence, count: count, plan: &plan) else { continue }
            plan.append((sequence, count))
            budget -= count
        }

        // Admit waiting sequences while there is room, finding their prompt's cached prefix.
        while budget > 0, running.count < maxBatch, let next = waiting.first {
            if prefixBlocks.isEmpty {
                let usable = (next.tokens.count - 1) / cache.blockSize
                next.blockTable = cache.lookupPrefix(next.request.prompt, maxBlocks: usable)
                next.computed = next.blockTable.count * cache.blockSize
                next.registeredBlocks = next.blockTable.count
                if next.preemptionCount == 0 { next.cachedPromptTokenCount = next.computed }
            } else {
                // Virtual tokens shift every block boundary, so prompt blocks are not shared
                // between requests; the virtual tokens' own blocks are.
                for block in prefixBlocks { cache.retain(block) }
                next.blockTable = prefixBlocks
                next.computed = 0
            }
            let count = min(next.pending, budget)
            guard allocate(next, upTo: next.computed + count) else {
                cache.release(table: &next.blockTable)
                next.computed = 0
                next.registeredBlocks = 0
                if running.isEmpty {
                    // Nothing will ever free a block for it.
                    waiting.removeFirst()
                    stalled.append((next, .length))
                    continue
                }
                break
            }
            waiting.removeFirst()
            running.append(next)
            plan.append((next, count))
            budget -= count
        }
        return plan
    }

    /// After a step: `count` more positions of `sequence` are in the cache; full blocks of
    /// prompt tokens become findable for later prompts.
    func advance(_ sequence: SequenceState, by count: Int) {
        sequence.computed += count
        guard prefixBlocks.isEmpty else { return }
        let fullPromptBlocks = min(sequence.computed, sequence.promptCount) / cache.blockSize
        while sequence.registeredBlocks < fullPromptBlocks {
            let index = sequence.registeredBlocks
            let start = index * cache.blockSize
            cache.register(
                table: sequence.blockTable, index: index,
                tokens: sequence.tokens[start..<start + cache.blockSize])
            sequence.registeredBlocks += 1
        }
    }

    /// Blocks for `count` more positions of a running sequence, preempting others (or, as
    /// the lowest itself, this one) when the cache is full. False when it does not run now.
    private func reserve(
        _ sequence: SequenceState, count: Int, plan: inout [(SequenceState, Int)]
    ) -> Bool {
        while !allocate(sequence, upTo: sequence.computed + count) {
            guard let victim = running.sortedByPriority().last else { return false }
            if victim === sequence && running.count == 1 {
                // Alone and still out of memory: the cache cannot hold this sequence.
                running.removeAll()
                cache.release(table: &sequence.blockTable)
                stalled.append((sequence, .length))
                return false
            }
            preempt(victim)
            plan.removeAll { $0.0 === victim }
            if victim === sequence { return false }
        }
        return true
    }

    /// Grows the block table to hold tokens `..<end` and makes the block of the next write
    /// private (copy-on-write): a block shared with other sequences, such as the last block of
    /// an adapter's virtual tokens, is copied. False, with no new block kept, when blocks run
    /// out.
    private func allocate(_ sequence: SequenceState, upTo end: Int) -> Bool {
        let before = sequence.blockTable.count
        let next = sequence.position(of: sequence.computed)
        if next % cache.blockSize != 0 {
            guard
                cache.makeWritable(
                    table: &sequence.blockTable, index: next / cache.blockSize,
                    filled: next % cache.blockSize)
            else { return false }
        }
        while sequence.blockTable.count < cache.blocksNeeded(sequence.position(of: end)) {
            guard let block = cache.allocate() else {
                while sequence.blockTable.count > before {
                    cache.release(sequence.blockTable.removeLast())
                }
                return false
            }
            sequence.blockTable.append(block)
        }
        return true
    }

    private func preempt(_ sequence: SequenceState) {
        running.removeAll { $0 === sequence }
        cache.release(table: &sequence.blockTable)
        sequence.computed = 0
        sequence.registeredBlocks = 0
        sequence.preemptionCount += 1
        preemptionCount += 1
        insertWaiting(sequence)
    }

    /// Waiting sequences stay ordered by priority, then by submission.
    private func insertWaiting(_ sequence: SequenceState) {
        let index =
            waiting.firstIndex {
                $0.request.priority < sequence.request.priority
                    || ($0.request.priority == sequence.request.priority && $0.id > sequence.id)
            } ?? waiting.endIndex
        waiting.insert(sequence, at: index)
    }
}

extension Array where Element == SequenceState {
    /// Highest priority first, then earliest submitted.
    func sortedByPriority() -> [SequenceState] {
        sorted {
            $0.request.priority != $1.request.priority
                ? $0.request.priority > $1.request.priority : $0.id < $1.id
        }
    }
}
