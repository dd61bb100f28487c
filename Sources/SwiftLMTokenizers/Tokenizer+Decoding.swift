// Token ids -> bytes -> text.
//
// A token's piece is what llama_token_to_piece gives with `special = true`
// (src/llama-vocab.cpp): control, unknown and user-defined tokens render as their text,
// normal tokens undo their vocabulary's spelling (GPT-2 characters, or "▁" for a space), byte
// tokens are their byte, and anything else renders as nothing. Decoding a sequence follows
// llama_detokenize, including its leading-space and clean-up rules.

/// Every token's piece, rendered once: one byte buffer and an offset per token.
struct ByteStringPieces: Sendable {
    private var bytes: [UInt8] = []
    private var starts: [Int] = [0]

    init(texts: ByteStringTable, attributes: [TokenAttributes], algorithm: Tokenizer.Algorithm) {
        bytes.reserveCapacity(texts.count * 6)
        starts.reserveCapacity(texts.count + 1)
        for id in 0..<texts.count {
            Self.render(texts[id], attributes: attributes[id], algorithm: algorithm, into: &bytes)
            starts.append(bytes.count)
        }
    }

    subscript(id: Int) -> ArraySlice<UInt8> {
        bytes[starts[id]..<starts[id + 1]]
    }

    private static func render(
        _ text: ArraySlice<UInt8>, attributes: TokenAttributes, algorithm: Tokenizer.Algorithm,
        into output: inout [UInt8]
    ) {
        if !attributes.isDisjoint(with: .special) {
            output.append(contentsOf: text)
        } else if attributes.contains(.normal) {
            switch algorithm {
            case .bytePairEncoding: appendByteLevelDecoded(text, into: &output)
            case .sentencePiece: appendUnescapingSpaces(text, into: &output)
            }
        } else if attributes.contains(.byte) {
            output.append(byteValue(of: text))
        }
    }

    /// GPT-2 characters back to bytes. A character outside the table renders as
    /// "[UNK_BYTE_0x<its UTF-8 in hex><the whole token>]", as llama_decode_text writes it.
    private static func appendByteLevelDecoded(
        _ text: ArraySlice<UInt8>, into output: inout [UInt8]
    ) {
        for scalar in String(decoding: text, as: UTF8.self).unicodeScalars {
            if let byte = ByteLevelAlphabet.byte(for: scalar.value) {
                output.append(byte)
                continue
            }

            let hex = String(scalar).utf8.map { byte in
                let digits = Array("0123456789abcdef".utf8)
                return [digits[Int(byte >> 4)], digits[Int(byte & 15)]]
            }
            output.append(contentsOf: "[UNK_BYTE_0x".utf8)
            output.append(contentsOf: hex.joined())
            output.append(contentsOf: text)
            output.append(UInt8(ascii: "]"))
        }
    }

    private static func appendUnescapingSpaces(
        _ text: ArraySlice<UInt8>, into output: inout [UInt8]
    ) {
        let escape = SentencePieceEncoder.escapedSpace
        var index = text.startIndex
        while index < text.endIndex {
            if text[index...].starts(with: escape) {
                output.append(0x20)
                index += escape.count
            } else {
                output.append(text[index])
                index += 1
            }
        }
    }

    /// The byte of a "<0xAB>" token: the hex digits at offsets 3 and 4, read as strtol
    /// reads them (stopping at the first non-digit), as llama.cpp's token_to_byte does.
    private static func byteValue(of text: ArraySlice<UInt8>) -> UInt8 {
        var value = 0
        for byte in text.dropFirst(3).prefix(2) {
            guard let digit = Int(String(UnicodeScalar(byte)), radix: 16) else { break }
            value = value * 16 + digit
        }
        return UInt8(truncatingIfNeeded: value)
    }
}

extension Tokenizer {
    /// The bytes token `id` stands for (llama_token_to_piece with `special = true`).
    ///
    /// A piece need not be valid UTF-8 on its own: byte tokens and byte-level BPE tokens can
    /// hold part of a character. ``StreamingDecoder`` joins them.
    public func piece(_ id: Int) -> [UInt8] {
        precondition((0..<vocabSize).contains(id), "token id \(id) outside 0..<\(vocabSize)")
        return Array(pieces[id])
    }

    /// The text of a token sequence; invalid UTF-8 becomes U+FFFD.
    ///
    /// - Parameter skipSpecial: leave out control and unknown tokens, and a leading BOS or
    ///   trailing EOS that the vocabulary adds (llama_detokenize with `remove_special` and
    ///   without `unparse_special`). User-defined tokens are always rendered.
    public func decode(_ ids: [Int], skipSpecial: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecial: skipSpecial), as: UTF8.self)
    }

    /// The bytes of a token sequence, exactly as llama_detokenize writes them.
    public func decodeBytes(_ ids: [Int], skipSpecial: Bool = false) -> [UInt8] {
        var ids = ids[...]
        // SentencePiece text starts with the "▁" that encoding added; drop that space
        // unless a BOS was removed in front of it (llama.cpp's rule, kept as is).
        var dropsLeadingSpace = addsSpacePrefix
        if skipSpecial && addsBOS && ids.first == bosTokenID {
            ids = ids.dropFirst()
            dropsLeadingSpace = false
        }
        if skipSpecial && addsEOS && ids.last == eosTokenID {
            ids = ids.dropLast()
        }

        var output: [UInt8] = []
        for id in ids {
            precondition((0..<vocabSize).contains(id), "token id \(id) outside 0..<\(vocabSize)")
            defer { dropsLeadingSpace = false }
            if skipSpecial && !attributes[id].isDisjoint(with: .hiddenWhenPlain) {
                continue
            }

            var piece = pieces[id]
            if dropsLeadingSpace && piece.first == 0x20 {
                piece = piece.dropFirst()
            }
            output.append(contentsOf: piece)
        }

        return cleansSpaces ? Self.cleanSpaces(output) : output
    }

    /// Hugging Face's `clean_up_tokenization_spaces`, in llama_detokenize's three passes:
    /// drop the space before "?", "!", ".", ","; turn " ' " into "'"; and drop the space
    /// before "'s", "'m", "'re", "'ve".
    static func cleanSpaces(_ text: [UInt8]) -> [UInt8] {
        let space = UInt8(ascii: " ")
        let apostrophe = UInt8(ascii: "'")

        // Pass 1: " ?", " !", " .", " ,".
        var first: [UInt8] = []
        first.reserveCapacity(text.count)
        for (index, byte) in text.enumerated() {
            let next = index + 1 < text.count ? text[index + 1] : 0
            if byte == space && "?!.,".utf8.contains(next) {
                continue
            }
            first.append(byte)
        }

        // Pass 2: " ' " -> "'". llama.cpp blanks the skipped space in place, so the next
        // apostrophe does not see a space before it.
        var marked = first
        var second: [UInt8] = []
        var index = 0
        while index < marked.count {
            let byte = marked[index]
            if index > 0 && byte == apostrophe && index + 1 < marked.count
                && marked[index - 1] == space && marked[index + 1] == space
            {
                second.removeLast()
                marked[index + 1] = 0
                second.append(byte)
                index += 2
                continue
            }
            second.append(byte)
            index += 1
        }

        // Pass 3: " 's", " 'm", " 're", " 've" (but not " 't", " 'd", " 'll").
        var third: [UInt8] = []
        third.reserveCapacity(second.count)
        for (index, byte) in second.enumerated() {
            if byte == space && Self.isContractionToJoin(second, at: index + 1) {
                continue
            }
            third.append(byte)
        }
        return third
    }

    private static func isContractionToJoin(_ text: [UInt8], at index: Int) -> Bool {
        guard index + 1 < text.count, text[index] == UInt8(ascii: "'") else { return false }

        let first = text[index + 1]
        if first == UInt8(ascii: "s") || first == UInt8(ascii: "m") {
            return true
        }
        guard index + 2 < text.count else { return false }
        let second = text[index + 2]
        return second == UInt8(ascii: "e")
            && (first == UInt8(ascii: "r") || first == UInt8(ascii: "v"))
    }
}
