// Byte-level BPE: merges by rank over the GPT-2 characters of one word.
//
// Follows llm_tokenizer_bpe_session::tokenize in src/llama-vocab.cpp: a word's bytes become
// GPT-2 characters, every adjacent pair with a merge rank goes into a queue ordered by
// (rank, position), and the lowest-ranked pair still intact is merged until none is left. Each
// resulting symbol that is a token is emitted; one that is not falls back to the single-byte
// tokens of its spelling.
//
// llama.cpp compares symbols as strings. We number every string a merge can make up front
// (tokens keep their ids, other merge parts and results get ids after the last token), so the
// loop compares integers and a merge is one dictionary lookup on the pair of numbers.

/// The merge table and symbol numbering of one byte-level BPE vocabulary.
struct BytePairEncoder: Sendable {
    let preTokenizer: PreTokenizer
    /// Token texts, then the merge parts and results that are not tokens; a symbol's number
    /// is its index here, and symbols below `vocabSize` are the tokens with that id.
    private let symbols: ByteStringTable
    private let vocabSize: Int
    /// The symbol each byte starts as: its GPT-2 character.
    private let byteSymbols: [Int32]
    /// The token spelled by each single byte, or -1 (llama.cpp's fallback looks these up).
    private let singleByteTokens: [Int32]
    /// (left symbol << 32 | right symbol) -> (rank << 32 | merged symbol).
    private let merges: [UInt64: UInt64]

    /// Numbers the symbols and parses the merges.
    ///
    /// - Parameters:
    ///   - tokens: the vocabulary's token texts, each id once.
    ///   - merges: "left right" per merge, in rank order.
    init(tokens: ByteStringTable, merges mergeLines: [String], preTokenizer: PreTokenizer) {
        var symbols = tokens
        self.vocabSize = tokens.count
        self.preTokenizer = preTokenizer

        self.byteSymbols = ByteLevelAlphabet.encodedByte.map {
            Int32(symbols.insert($0[...]).index)
        }
        self.singleByteTokens = (0..<256).map { byte in
            Int32(tokens.index(of: [UInt8(byte)][...]) ?? -1)
        }

        var merges: [UInt64: UInt64] = [:]
        merges.reserveCapacity(mergeLines.count)
        for (rank, line) in mergeLines.enumerated() {
            guard let (left, right) = Self.parts(of: line) else { continue }

            let leftSymbol = UInt64(symbols.insert(left).index)
            let rightSymbol = UInt64(symbols.insert(right).index)
            let merged = UInt64(symbols.insert(left + right).index)
            let key = leftSymbol << 32 | rightSymbol
            // llama.cpp's bpe_ranks.emplace keeps the first rank of a repeated pair.
            if merges[key] == nil {
                merges[key] = UInt64(rank) << 32 | merged
            }
        }
        self.merges = merges
        self.symbols = symbols
    }

    /// Splits "left right" at the first space after the first byte, as llama.cpp does
    /// (`word.find(' ', 1)`), so a left part may itself be a space.
    private static func parts(of line: String) -> (ArraySlice<UInt8>, ArraySlice<UInt8>)? {
        let bytes = Array(line.utf8)
        guard bytes.count > 1, let space = bytes[1...].firstIndex(of: 0x20) else { return nil }
        return (bytes[..<space], bytes[(space + 1)...])
    }

    /// Appends the tokens of a text fragment (no special tokens in it) to `output`.
    func encode(_ fragment: ArraySlice<UInt8>, into output: inout [Int]) {
        let (scalars, byteStarts) = Self.decodeScalars(fragment)
        var scratch = Scratch()
        var wordStart = 0
        for length in preTokenizer.split(scalars) {
            let bytes = fragment[byteStarts[wordStart]..<byteStarts[wordStart + length]]
            encodeWord(bytes, into: &output, scratch: &scratch)
            wordStart += length
        }
    }

    /// The scalars of valid UTF-8 and where each starts, with the end offset appended.
    private static func decodeScalars(_ bytes: ArraySlice<UInt8>) -> ([UInt32], [Int]) {
        var scalars: [UInt32] = []
        var starts: [Int] = []
        scalars.reserveCapacity(bytes.count)
        starts.reserveCapacity(bytes.count + 1)

        var index = bytes.startIndex
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        while case .scalarValue(let scalar) = decoder.decode(&iterator) {
            scalars.append(scalar.value)
            starts.append(index)
            index += UTF8.width(scalar)
        }
        starts.append(index)
        return (scalars, starts)
    }

    /// Buffers reused from word to word.
    private struct Scratch {
        var symbols: [Int32] = []
        var previous: [Int32] = []
        var next: [Int32] = []
        var queue = PriorityQueue<Candidate>()
        var spelled: [UInt8] = []
    }

    /// A mergeable pair: what it merges into, and the symbols it expects to find, so that a
    /// pair made stale by an earlier merge is recognised and dropped.
    private struct Candidate: Comparable {
        let rank: Int32
        let left: Int32
        let right: Int32
        let leftSymbol: Int32
        let rightSymbol: Int32
        let merged: Int32

        /// Lowest rank first, then leftmost: llm_bigram_bpe's comparator.
        static func < (a: Candidate, b: Candidate) -> Bool {
            a.rank != b.rank ? a.rank < b.rank : a.left < b.left
        }
    }

    private func encodeWord(
        _ bytes: ArraySlice<UInt8>, into output: inout [Int], scratch: inout Scratch
    ) {
        if preTokenizer.ignoresMerges, let token = wholeWordToken(bytes, scratch: &scratch) {
            output.append(token)
            return
        }

        scratch.symbols.removeAll(keepingCapacity: true)
        scratch.previous.removeAll(keepingCapacity: true)
        scratch.next.removeAll(keepingCapacity: true)
        for (offset, byte) in bytes.enumerated() {
            scratch.symbols.append(byteSymbols[Int(byte)])
            scratch.previous.append(Int32(offset - 1))
            scratch.next.append(offset + 1 < bytes.count ? Int32(offset + 1) : -1)
        }

        merge(&scratch)
        emitSymbols(scratch.symbols, next: scratch.next, into: &output)
    }

    /// The token for the whole word, if there is one (llama.cpp's `ignore_merges`).
    private func wholeWordToken(_ bytes: ArraySlice<UInt8>, scratch: inout Scratch) -> Int? {
        scratch.spelled.removeAll(keepingCapacity: true)
        for byte in bytes {
            scratch.spelled.append(contentsOf: ByteLevelAlphabet.encodedByte[Int(byte)])
        }
        guard let index = symbols.index(of: scratch.spelled[...]), index < vocabSize else {
            return nil
        }
        return index
    }

    /// Runs the merge queue over the linked list of symbols in `scratch`.
    private func merge(_ scratch: inout Scratch) {
        scratch.queue.removeAll()
        for left in 0..<max(0, scratch.symbols.count - 1) {
            enqueuePair(left: Int32(left), right: Int32(left + 1), scratch: &scratch)
        }

        while let pair = scratch.queue.popMin() {
            let left = Int(pair.left)
            let right = Int(pair.right)
            guard scratch.symbols[left] == pair.leftSymbol,
                scratch.symbols[right] == pair.rightSymbol
            else { continue }

            // The right symbol joins the left one and leaves the list.
            scratch.symbols[left] = pair.merged
            scratch.symbols[right] = -1
            let after = scratch.next[right]
            scratch.next[left] = after
            if after >= 0 {
                scratch.previous[Int(after)] = pair.left
            }

            enqueuePair(left: scratch.previous[left], right: pair.left, scratch: &scratch)
            enqueuePair(left: pair.left, right: after, scratch: &scratch)
        }
    }

    private func enqueuePair(left: Int32, right: Int32, scratch: inout Scratch) {
        guard left >= 0, right >= 0 else { return }

        let leftSymbol = scratch.symbols[Int(left)]
        let rightSymbol = scratch.symbols[Int(right)]
        let key = UInt64(UInt32(leftSymbol)) << 32 | UInt64(UInt32(rightSymbol))
        guard let entry = merges[key] else { return }

        scratch.queue.push(
            Candidate(
                rank: Int32(truncatingIfNeeded: entry >> 32), left: left, right: right,
                leftSymbol: leftSymbol, rightSymbol: rightSymbol,
                merged: Int32(truncatingIfNeeded: entry & 0xFFFF_FFFF)))
    }

    /// Emits the symbols left in the list. A symbol that is not a token is spelled out with
    /// single-byte tokens, byte by byte of its GPT-2 spelling, skipping bytes that have none,
    /// exactly as llama.cpp's fallback does.
    private func emitSymbols(_ list: [Int32], next: [Int32], into output: inout [Int]) {
        var index = list.isEmpty ? -1 : 0
        while index >= 0 {
            let symbol = Int(list[index])
            if symbol < vocabSize {
                output.append(symbol)
            } else {
                for byte in symbols[symbol] where singleByteTokens[Int(byte)] >= 0 {
                    output.append(Int(singleByteTokens[Int(byte)]))
                }
            }
            index = Int(next[index])
        }
    }
}
