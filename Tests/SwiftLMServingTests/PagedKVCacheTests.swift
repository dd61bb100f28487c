import Foundation
import SwiftLM
import Testing

@Suite("Paged KV cache")
struct PagedKVCacheTests {
    private func cache(blocks: Int = 4) -> PagedKVCache {
        PagedKVCache(layerCount: 2, kvDim: 3, blockSize: 4, blockCount: blocks)
    }

    @Test("blocks are handed out until none is left and come back when released")
    func allocationAndRelease() {
        let cache = cache()
        let blocks = (0..<4).compactMap { _ in cache.allocate() }
        #expect(Set(blocks).count == 4)
        #expect(cache.allocate() == nil)
        #expect(cache.usedBlockCount == 4)
        for block in blocks { cache.release(block) }
        #expect(cache.usedBlockCount == 0)
        #expect(cache.availableBlockCount == 4)
    }

    @Test("a shared block is copied before a write, with the positions it holds")
    func copyOnWrite() throws {
        let cache = cache()
        var first = [try #require(cache.allocate())]
        let kvDim = cache.storage.kvDim
        for layer in 0..<2 {
            for offset in 0..<2 {
                let slot = first[0] * 4 + offset
                for i in 0..<kvDim {
                    cache.storage.keys(layer: layer, position: slot)[i] = Float16(layer * 10 + i)
                    cache.storage.values(layer: layer, position: slot)[i] = Float16(-i)
                }
            }
        }
        cache.retain(first[0])
        var second = first

        #expect(cache.makeWritable(table: &second, index: 0, filled: 2))
        #expect(second[0] != first[0])
        #expect(cache.referenceCounts[first[0]] == 1)
        for layer in 0..<2 {
            for offset in 0..<2 {
                for i in 0..<kvDim {
                    #expect(
                        cache.storage.keys(layer: layer, position: second[0] * 4 + offset)[i]
                            == Float16(layer * 10 + i))
                    #expect(
                        cache.storage.values(layer: layer, position: second[0] * 4 + offset)[i]
                            == Float16(-i))
                }
            }
        }
        // A block held by one table alone is written in place.
        #expect(cache.makeWritable(table: &first, index: 0, filled: 2))
        #expect(first[0] != second[0])
        cache.release(table: &first)
        cache.release(table: &second)
        #expect(cache.usedBlockCount == 0)
    }

    @Test("registered prompt blocks are found by later prompts, and evicted last-used first")
    func prefixLookupAndEviction() throws {
        let cache = cache(blocks: 3)
        let prompt = Array(0..<9)
        var table = (0..<3).compactMap { _ in cache.allocate() }
        cache.register(table: table, index: 0, tokens: prompt[0..<4])
        cache.register(table: table, index: 1, tokens: prompt[4..<8])
        cache.release(table: &table)
        #expect(cache.cachedBlockCount == 2)
        #expect(cache.availableBlockCount == 3)

        var found = cache.lookupPrefix(prompt, maxBlocks: 2)
        #expect(found.count == 2)
        var partial = cache.lookupPrefix([0, 1, 2, 3, 9, 9, 9, 9], maxBlocks: 2)
        #expect(partial == [found[0]])
        cache.release(table: &partial)
        cache.release(table: &found)
        #expect(cache.usedBlockCount == 0)

        // Taking every block evicts the cached ones; their prefix is then gone.
        var all = (0..<3).compactMap { _ in cache.allocate() }
        #expect(all.count == 3)
        #expect(cache.cachedBlockCount == 0)
        cache.release(table: &all)
        #expect(cache.lookupPrefix(prompt, maxBlocks: 2).isEmpty)
    }
}
