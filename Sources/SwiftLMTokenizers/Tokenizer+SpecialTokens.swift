// Splitting text on special tokens before tokenizing it.
//
// llama.cpp's tokenizer_st_partition (src/llama-vocab.cpp) takes the special tokens one at a
// time, longest text first, and cuts every still-plain fragment at each occurrence of that
// token, left to right. So "<|im_start|>" becomes one token however its pieces would merge,
// and a longer special token wins over a shorter one it contains. We run the same loop.
//
// llama.cpp also strips whitespace beside tokens marked LSTRIP/RSTRIP; it sets those marks
// only for a few models picked by their general.name (Phi-3, some BERT variants), which this
// tokenizer does not see, so that stripping is not done here.

extension Tokenizer {
    /// A piece of the input: plain text to tokenize, or a special token found in it.
    enum Fragment: Equatable {
        case text(Range<Int>)
        case token(Int)
    }

    /// Cuts `bytes` into plain text and special tokens.
    ///
    /// - Parameter parseSpecial: when `false`, control and unknown tokens stay plain text;
    ///   user-defined tokens are split out regardless, as in llama.cpp (and Hugging Face).
    func fragments(of bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        guard !bytes.isEmpty else { return [] }

        var fragments: [Fragment] = [.text(0..<bytes.count)]
        for id in specialTokens {
            if !parseSpecial && !attributes[id].isDisjoint(with: .hiddenWhenPlain) {
                continue
            }
            fragments = split(fragments, on: id, in: bytes)
        }
        return fragments
    }

    private func split(_ fragments: [Fragment], on id: Int, in bytes: [UInt8]) -> [Fragment] {
        let needle = texts[id]
        var output: [Fragment] = []
        output.reserveCapacity(fragments.count)

        for fragment in fragments {
            guard case .text(var rest) = fragment else {
                output.append(fragment)
                continue
            }

            while let match = Self.firstRange(of: needle, in: bytes, within: rest) {
                if match.lowerBound > rest.lowerBound {
                    output.append(.text(rest.lowerBound..<match.lowerBound))
                }
                output.append(.token(id))
                rest = match.upperBound..<rest.upperBound
            }
            if !rest.isEmpty {
                output.append(.text(rest))
            }
        }
        return output
    }

    /// Where `needle` first occurs in `bytes[range]`.
    private static func firstRange(
        of needle: ArraySlice<UInt8>, in bytes: [UInt8], within range: Range<Int>
    ) -> Range<Int>? {
        guard let first = needle.first, needle.count <= range.count else { return nil }

        let lastStart = range.upperBound - needle.count
        var start = range.lowerBound
        while start <= lastStart {
            if bytes[start] == first && bytes[start..<start + needle.count].elementsEqual(needle) {
                return start..<start + needle.count
            }
            start += 1
        }
        return nil
    }
}
