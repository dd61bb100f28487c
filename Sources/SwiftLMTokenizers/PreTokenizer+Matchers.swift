// The hand-written matchers behind each pre-tokenizer pass.
//
// Each follows the expression it stands for alternative by alternative, leftmost first, the
// way llama.cpp's unicode_regex_split_custom_gpt2 / _llama3 / _qwen2 (src/unicode.cpp) do,
// including where those differ from a textbook regex engine: the look-ahead of `\s+(?!\S)`
// and every class test stop at the end of the piece being split, not of the whole text.

/// One piece of text that a pass splits further, with bounds-checked access.
struct PieceCursor {
    let scalars: [UInt32]
    let start: Int
    let end: Int

    /// The scalar at `index`, or `nil` past the piece (llama.cpp's OUT_OF_RANGE).
    @inline(__always)
    func scalar(_ index: Int) -> UInt32? {
        index >= start && index < end ? scalars[index] : nil
    }

    /// The flags at `index`, or none past the piece, so no class test matches there.
    @inline(__always)
    func flags(_ index: Int) -> CodepointFlags {
        index >= start && index < end ? CodepointFlags.of(scalars[index]) : []
    }

    /// `[^\s\p{L}\p{N}]` at a position whose flags are `flags`: anything real that is not
    /// whitespace, a letter or a number.
    @inline(__always)
    static func isOther(_ flags: CodepointFlags) -> Bool {
        !flags.isEmpty && flags.isDisjoint(with: [.whitespace, .letter, .number])
    }

    /// Length of the contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `position`, or 0.
    ///
    /// - Parameter ignoringCase: Llama 3 and Qwen 2 match `(?i:...)`; GPT-2 does not.
    func contractionLength(at position: Int, ignoringCase: Bool) -> Int {
        guard scalars[position] == 0x27, position + 1 < end else { return 0 }  // '

        let fold: (UInt32?) -> UInt32? = { scalar in
            // Only ASCII capitals lower-case onto these letters (unicode_tolower's table).
            guard ignoringCase, let scalar, scalar >= 0x41, scalar <= 0x5A else { return scalar }
            return scalar + 0x20
        }
        let first = fold(scalar(position + 1))
        if first == 0x73 || first == 0x74 || first == 0x6D || first == 0x64 {  // s t m d
            return 2
        }

        guard position + 2 < end else { return 0 }
        let second = fold(scalar(position + 2))
        switch (first, second) {
        case (0x72, 0x65), (0x76, 0x65), (0x6C, 0x6C):  // re ve ll
            return 3
        default:
            return 0
        }
    }

    /// How many whitespace scalars start at `position`.
    func whitespaceRunLength(at position: Int) -> Int {
        var count = 0
        while flags(position + count).contains(.whitespace) {
            count += 1
        }
        return count
    }

    // MARK: - GPT-2

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    func splitGPT2(into output: inout [Int]) {
        var words = WordEmitter(start: start)
        var position = start
        while position < end {
            let scalar = scalars[position]

            let contraction = contractionLength(at: position, ignoringCase: false)
            if contraction > 0 {
                position += contraction
                words.emit(upTo: position, into: &output)
                continue
            }

            // ` ?\p{L}+`, ` ?\p{N}+` and ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run
            // of the class of the scalar after it.
            let leadingSpace = scalar == 0x20 ? 1 : 0
            let lead = flags(position + leadingSpace)
            let runClass: ((CodepointFlags) -> Bool)?
            if lead.contains(.letter) {
                runClass = { $0.contains(.letter) }
            } else if lead.contains(.number) {
                runClass = { $0.contains(.number) }
            } else if Self.isOther(lead) {
                runClass = Self.isOther
            } else {
                runClass = nil
            }
            if let runClass {
                position += leadingSpace
                while runClass(flags(position)) {
                    position += 1
                }
                words.emit(upTo: position, into: &output)
                continue
            }

            position = endOfWhitespace(at: position)
            words.emit(upTo: position, into: &output)
        }
    }

    /// `\s+(?!\S)|\s+`, or a single unmatched scalar, from `position`; returns where it ends.
    ///
    /// A run of several whitespace scalars followed by more text leaves its last one for the
    /// next word, so " world" keeps its space.
    private func endOfWhitespace(at position: Int) -> Int {
        let count = whitespaceRunLength(at: position)
        if count > 1 && position + count < end {
            return position + count - 1
        }
        if count > 0 {
            return position + count
        }
        return position + 1
    }

    // MARK: - Llama 3 and Qwen 2

    /// The Llama 3 expression, or Qwen 2's when `numberRun` is 1:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,numberRun}|`
    /// ` ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    func splitLlama3(into output: inout [Int], numberRun: Int) {
        var words = WordEmitter(start: start)
        var position = start
        while position < end {
            let scalar = scalars[position]
            let here = CodepointFlags.of(scalar)
            let isNewline = scalar == 0x0D || scalar == 0x0A

            let contraction = contractionLength(at: position, ignoringCase: true)
            if contraction > 0 {
                position += contraction
                words.emit(upTo: position, into: &output)
                continue
            }

            // `[^\r\n\p{L}\p{N}]?\p{L}+`: one optional non-letter prefix, then letters.
            if !isNewline && !here.contains(.number)
                && (here.contains(.letter) || flags(position + 1).contains(.letter))
            {
                position += 1
                while flags(position).contains(.letter) {
                    position += 1
                }
                words.emit(upTo: position, into: &output)
                continue
            }

            // `\p{N}{1,3}` (or `\p{N}`): numbers in groups from the left.
            if here.contains(.number) {
                var groupStart = position
                while flags(position).contains(.number) {
                    position += 1
                    if position - groupStart >= numberRun {
                        words.emit(upTo: position, into: &output)
                        groupStart = position
                    }
                }
                words.emit(upTo: position, into: &output)
                continue
            }

            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`. llama.cpp tests the scalar itself, not the one after
            // the space, for being real; both are, except a lone space ending the piece, which
            // this branch then takes as a word of its own.
            let leadingSpace = scalar == 0x20 ? 1 : 0
            var lead = flags(position + leadingSpace)
            if lead.isDisjoint(with: [.whitespace, .letter, .number]) {
                position += leadingSpace
                while Self.isOther(lead) {
                    position += 1
                    lead = flags(position)
                }
                while let next = self.scalar(position), next == 0x0D || next == 0x0A {
                    position += 1
                }
                words.emit(upTo: position, into: &output)
                continue
            }

            // `\s*[\r\n]+`: whitespace up to and including its last line break.
            let count = whitespaceRunLength(at: position)
            if let lastBreak = (position..<position + count).last(where: {
                scalars[$0] == 0x0D || scalars[$0] == 0x0A
            }) {
                position = lastBreak + 1
                words.emit(upTo: position, into: &output)
                continue
            }

            position = endOfWhitespace(at: position)
            words.emit(upTo: position, into: &output)
        }
    }

    // MARK: - Simple expressions

    /// Splits around the scalars `matches` accepts, keeping the text between them as pieces.
    ///
    /// - Parameter runs: `true` for `X+` (a maximal run is one piece), `false` for `X` (each
    ///   matching scalar is a piece of its own).
    func splitMatches(
        into output: inout [Int], runs: Bool, where matches: (UInt32, CodepointFlags) -> Bool
    ) {
        var words = WordEmitter(start: start)
        var position = start
        while position < end {
            guard matches(scalars[position], CodepointFlags.of(scalars[position])) else {
                position += 1
                continue
            }

            words.emit(upTo: position, into: &output)
            position += 1
            while runs, position < end,
                matches(scalars[position], CodepointFlags.of(scalars[position]))
            {
                position += 1
            }
            words.emit(upTo: position, into: &output)
        }
        words.emit(upTo: end, into: &output)
    }

    /// `[0-9][0-9][0-9]`: each leftmost run of three ASCII digits is a piece.
    func splitDigitTriples(into output: inout [Int]) {
        let isDigit: (Int) -> Bool = { (0x30...0x39).contains(scalars[$0]) }

        var words = WordEmitter(start: start)
        var position = start
        while position < end {
            guard position + 2 < end, isDigit(position), isDigit(position + 1),
                isDigit(position + 2)
            else {
                position += 1
                continue
            }

            words.emit(upTo: position, into: &output)
            position += 3
            words.emit(upTo: position, into: &output)
        }
        words.emit(upTo: end, into: &output)
    }
}

/// Turns successive end positions into word lengths, dropping empty words.
struct WordEmitter {
    private var previousEnd: Int

    init(start: Int) {
        previousEnd = start
    }

    @inline(__always)
    mutating func emit(upTo end: Int, into output: inout [Int]) {
        if end > previousEnd {
            output.append(end - previousEnd)
        }
        previousEnd = end
    }
}
