// The pre-tokenizers of byte-level BPE vocabularies, chosen by `tokenizer.ggml.pre`.
//
// llama.cpp cuts text into words with a list of regular expressions per pre-tokenizer type
// (llm_tokenizer_bpe's constructor in src/llama-vocab.cpp). Each expression in the list splits
// every piece the previous ones left, keeping both its matches and the text between them
// (unicode_regex_split in src/unicode.cpp). The GPT-2, Llama 3 and Qwen 2 expressions run as
// hand-written matchers there; the small ones (`\p{N}`, `[0-9][0-9][0-9]` ...) run through
// std::regex. We write all of them by hand over Unicode scalars, pass for pass, so that the
// piece boundaries — which also bound the `(?!\S)` look-ahead — fall where llama.cpp's do.

/// How one byte-level BPE vocabulary cuts text into words, and the vocabulary-wide switches
/// llama.cpp ties to the same `tokenizer.ggml.pre` name.
struct PreTokenizer: Sendable {
    /// One splitting expression of llama.cpp's list, in the order they are applied.
    enum Pass: Sendable, Equatable {
        /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
        case gpt2
        /// Llama 3: case-insensitive contractions, `[^\r\n\p{L}\p{N}]?\p{L}+`, `\p{N}{1,3}`,
        /// ` ?[^\s\p{L}\p{N}]+[\r\n]*`, `\s*[\r\n]+`, `\s+(?!\S)`, `\s+`.
        case llama3
        /// Qwen 2: as Llama 3 but every `\p{N}` stands alone.
        case qwen2
        /// `\p{N}`: every number scalar becomes its own piece.
        case isolatedNumbers
        /// `\p{N}+`: runs of number scalars become pieces.
        case numberRuns
        /// `[\p{P}\$\+<=>\^~\|]+`: runs of punctuation and these ASCII symbols.
        case punctuationRuns
        /// `[0-9][0-9][0-9]`: ASCII digits in threes, from the left.
        case asciiDigitTriples
    }

    /// The `tokenizer.ggml.pre` name this was made from ("default" when the key is absent).
    let name: String
    let passes: [Pass]
    /// llama.cpp's `ignore_merges`: a word that is itself a token is emitted whole, before
    /// any merge is tried (Llama 3 family).
    let ignoresMerges: Bool
    /// llama.cpp's `clean_spaces` (Hugging Face's `clean_up_tokenization_spaces`), applied
    /// when decoding.
    let cleansSpaces: Bool
    /// Whether llama.cpp adds BOS when the GGUF has no `tokenizer.ggml.add_bos_token`.
    let addsBOSByDefault: Bool

    /// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre == name`.
    ///
    /// The names and their settings follow `llama_vocab::impl::load` in src/llama-vocab.cpp.
    /// A missing name means "default", as there. "gpt2" is accepted as a spelling of
    /// llama.cpp's "gpt-2".
    ///
    /// - Throws: ``TokenizerError/unsupported(_:)`` for a name we do not implement, naming it.
    init(name: String?) throws(TokenizerError) {
        let name = name ?? "default"
        guard let family = Self.families.first(where: { $0.names.contains(name) }) else {
            throw .unsupported(
                "byte-level BPE pre-tokenizer '\(name)' (tokenizer.ggml.pre); supported: "
                    + Self.supportedNames.joined(separator: ", "))
        }

        self.name = name
        self.passes = family.passes
        self.ignoresMerges = family.ignoresMerges
        self.cleansSpaces = !family.keepsSpaces.contains(name)
        self.addsBOSByDefault = family.addsBOS
    }

    /// Every pre-tokenizer name we accept.
    static var supportedNames: [String] { families.flatMap(\.names) }

    /// Names grouped by the expression list they share in llama.cpp. `keepsSpaces` lists the
    /// names for which llama.cpp turns `clean_spaces` off.
    private struct Family {
        let names: [String]
        let passes: [Pass]
        var ignoresMerges = false
        var addsBOS = false
        var keepsSpaces: Set<String> = []
    }

    private static let families: [Family] = [
        Family(
            names: ["default"],
            passes: [.punctuationRuns, .gpt2, .numberRuns, .asciiDigitTriples]),
        Family(
            names: [
                "gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "exaone4", "a.x-4.0", "mellum",
                "trillion", "granite-docling",
            ],
            passes: [.gpt2],
            keepsSpaces: ["trillion", "granite-docling"]),
        Family(
            names: [
                "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone",
                "minerva-7b", "mellum2",
            ],
            passes: [.isolatedNumbers, .gpt2],
            keepsSpaces: ["smollm", "command-r"]),
        Family(
            names: [
                "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                "midm-2.0", "lfm2", "jina-v5-nano",
            ],
            passes: [.llama3], ignoresMerges: true, addsBOS: true),
        Family(
            names: ["dbrx", "smaug-bpe"],
            passes: [.llama3]),
        Family(
            names: [
                "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2",
                "hunyuan", "solar-open",
            ],
            passes: [.qwen2],
            keepsSpaces: [
                "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open",
            ]),
    ]

    /// Cuts `scalars` into words.
    ///
    /// - Returns: the length, in scalars, of each word in order; they add up to
    ///   `scalars.count` and none is zero.
    func split(_ scalars: [UInt32]) -> [Int] {
        guard !scalars.isEmpty else { return [] }

        var pieces = [scalars.count]
        for pass in passes {
            pieces = apply(pass, to: scalars, pieces: pieces)
        }
        return pieces
    }

    private func apply(_ pass: Pass, to scalars: [UInt32], pieces: [Int]) -> [Int] {
        var output: [Int] = []
        output.reserveCapacity(pieces.count * 2)

        var start = 0
        for length in pieces {
            let piece = PieceCursor(scalars: scalars, start: start, end: start + length)
            switch pass {
            case .gpt2: piece.splitGPT2(into: &output)
            case .llama3: piece.splitLlama3(into: &output, numberRun: 3)
            case .qwen2: piece.splitLlama3(into: &output, numberRun: 1)
            case .isolatedNumbers:
                piece.splitMatches(into: &output, runs: false) { $1.contains(.number) }
            case .numberRuns:
                piece.splitMatches(into: &output, runs: true) { $1.contains(.number) }
            case .punctuationRuns:
                piece.splitMatches(into: &output, runs: true, where: Self.isPunctuationOrSign)
            case .asciiDigitTriples:
                piece.splitDigitTriples(into: &output)
            }
            start += length
        }
        return output
    }

    /// `[\p{P}\$\+<=>\^~\|]`: what llama.cpp's collapsed std::regex matches for the default
    /// pre-tokenizer's first expression.
    private static func isPunctuationOrSign(_ scalar: UInt32, _ flags: CodepointFlags) -> Bool {
        switch scalar {
        case 0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C:  // $ + < = > ^ ~ |
            return true
        default:
            return flags.contains(.punctuation)
        }
    }
}
