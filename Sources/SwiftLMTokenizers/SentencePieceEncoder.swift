// SentencePiece ("llama" vocabularies): bigram merges by score, with byte fallback.
//
// Follows llm_tokenizer_spm_session::tokenize in src/llama-vocab.cpp. The text is cut into
// UTF-8 characters; every adjacent pair whose concatenation is a token goes into a queue
// ordered by that token's score (highest first, then leftmost); the best pair still intact is
// merged until none is left. Merged symbols are always tokens. A single character that is not
// a token is spelled with the <0xAB> byte tokens.

/// The scores and byte tokens of one SentencePiece vocabulary.
struct SentencePieceEncoder: Sendable {
    private let tokens: ByteStringTable
    private let scores: [Float]
    /// The token for each byte: "<0xAB>", or else the one-byte text itself, or -1.
    private let byteTokens: [Int32]
    private let unknownTokenID: Int?

    init(tokens: ByteStringTable, scores: [Float], unknownTokenID: Int?) {
        self.tokens = tokens
        self.scores = scores
        self.unknownTokenID = unknownTokenID
        self.byteTokens = (0..<256).map { byte in
            // llama_vocab::byte_to_token: the hex spelling first, then the raw byte.
            let id =
                tokens.index(of: Self.hexSpelling(of: UInt8(byte))[...])
                ?? tokens.index(of: [UInt8(byte)][...])
            return Int32(id ?? -1)
        }
    }

    /// "<0xAB>": how SentencePiece vocabularies spell a byte.
    static func hexSpelling(of byte: UInt8) -> [UInt8] {
        let digits = Array("0123456789ABCDEF".utf8)
        return Array("<0x".utf8) + [digits[Int(byte >> 4)], digits[Int(byte & 15)], 0x3E]
    }

    /// "▁", which stands for a space inside SentencePiece tokens.
    static let escapedSpace: [UInt8] = [0xE2, 0x96, 0x81]

    /// Appends the tokens of a text fragment (no special tokens in it) to `output`.
    ///
    /// - Parameter spacePrefix: start with "▁" (llama.cpp's `add_space_prefix` on the first
    ///   fragment and on every fragment that follows a special token).
    func encode(_ fragment: ArraySlice<UInt8>, spacePrefix: Bool, into output: inout [Int]) {
        var text: [UInt8] = spacePrefix ? Self.escapedSpace : []
        text.reserveCapacity(fragment.count + 8)
        for byte in fragment {
            if byte == 0x20 {
                text.append(contentsOf: Self.escapedSpace)
            } else {
                text.append(byte)
            }
        }

        var symbols = Symbols(text)
        merge(&symbols, text: text)
        emit(symbols, text: text, into: &output)
    }

    /// A linked list of byte ranges of the text; a merged-away symbol has length 0.
    private struct Symbols {
        var starts: [Int] = []
        var lengths: [Int] = []
        var previous: [Int] = []
        var next: [Int] = []

        /// One symbol per UTF-8 character, its length read from the lead byte as in
        /// llama.cpp's unicode_len_utf8 and clipped at the end of the text.
        init(_ text: [UInt8]) {
            var offset = 0
            while offset < text.count {
                let width = min(Self.utf8Width(text[offset]), text.count - offset)
                previous.append(starts.count - 1)
                starts.append(offset)
                lengths.append(width)
                offset += width
                next.append(offset < text.count ? starts.count : -1)
            }
        }

        private static func utf8Width(_ lead: UInt8) -> Int {
            switch lead >> 4 {
            case 0xC, 0xD: 2
            case 0xE: 3
            case 0xF: 4
            default: 1
            }
        }
    }

    /// A mergeable pair and the combined length it had when queued, so a pair that an
    /// earlier merge changed is recognised and dropped.
    private struct Candidate: Comparable {
        let score: Float
        let left: Int
        let right: Int
        let length: Int

        /// Pops first: the highest score, then the leftmost (llm_bigram_spm's comparator).
        static func < (a: Candidate, b: Candidate) -> Bool {
            a.score != b.score ? a.score > b.score : a.left < b.left
        }
    }

    private func merge(_ symbols: inout Symbols, text: [UInt8]) {
        var queue = PriorityQueue<Candidate>()
        for left in 0..<max(0, symbols.starts.count - 1) {
            enqueuePair(left: left, right: left + 1, symbols: symbols, text: text, queue: &queue)
        }

        while let pair = queue.popMin() {
            let leftLength = symbols.lengths[pair.left]
            let rightLength = symbols.lengths[pair.right]
            guard leftLength > 0, rightLength > 0, leftLength + rightLength == pair.length else {
                continue
            }

            // The right symbol joins the left one and leaves the list.
            symbols.lengths[pair.left] += rightLength
            symbols.lengths[pair.right] = 0
            let after = symbols.next[pair.right]
            symbols.next[pair.left] = after
            if after >= 0 {
                symbols.previous[after] = pair.left
            }

            let before = symbols.previous[pair.left]
            enqueuePair(left: before, right: pair.left, symbols: symbols, text: text, queue: &queue)
            enqueuePair(left: pair.left, right: after, symbols: symbols, text: text, queue: &queue)
        }
    }

    private func enqueuePair(
        left: Int, right: Int, symbols: Symbols, text: [UInt8],
        queue: inout PriorityQueue<Candidate>
    ) {
        guard left >= 0, right >= 0 else { return }

        let start = symbols.starts[left]
        let length = symbols.lengths[left] + symbols.lengths[right]
        guard let token = tokens.index(of: text[start..<start + length]) else { return }

        queue.push(Candidate(score: scores[token], left: left, right: right, length: length))
    }

    /// Emits each symbol left in the list: its token, or its bytes as byte tokens.
    ///
    /// llama.cpp can also look a symbol up in its record of merges (`rev_merge`) to undo one,
    /// but only a symbol that is not a token gets there, and merged symbols always are; with
    /// valid UTF-8 a single character never equals a recorded pair, so that path never runs.
    /// A byte without a byte token makes llama.cpp throw; we emit the unknown token for the
    /// symbol instead, or nothing if the vocabulary has none.
    private func emit(_ symbols: Symbols, text: [UInt8], into output: inout [Int]) {
        var index = symbols.starts.isEmpty ? -1 : 0
        while index >= 0 {
            let start = symbols.starts[index]
            let bytes = text[start..<start + symbols.lengths[index]]
            if let token = tokens.index(of: bytes) {
                output.append(token)
            } else if bytes.allSatisfy({ byteTokens[Int($0)] >= 0 }) {
                output.append(contentsOf: bytes.map { Int(byteTokens[Int($0)]) })
            } else if let unknownTokenID {
                output.append(unknownTokenID)
            }
            index = symbols.next[index]
        }
    }
}
