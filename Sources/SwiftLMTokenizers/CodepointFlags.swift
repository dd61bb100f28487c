// Unicode classes of code points, as llama.cpp's pre-tokenizers see them.
//
// llama.cpp classifies code points with tables generated from Unicode 15.1
// (src/unicode-data.cpp, read through `unicode_cpt_flags_from_cpt` in src/unicode.cpp).
// We use the general categories the Swift runtime ships, which are newer, and treat every
// code point that Unicode assigned after 15.1 as unassigned, as llama.cpp does. With that
// one rule the two agree on every code point (checked over all 0x110000 of them against
// unicode-data.cpp when this file was written).

/// The classes of one code point that the pre-tokenizer rules ask about.
///
/// Mirrors llama.cpp's `unicode_cpt_flags`: one general-category group bit (or `undefined`),
/// plus `whitespace`. A position outside the text being split has no flags at all, which is how
/// the splitters tell "end of this fragment" from any real code point.
struct CodepointFlags: OptionSet, Sendable {
    let rawValue: UInt16

    /// Not assigned in Unicode 15.1.
    static let undefined = CodepointFlags(rawValue: 1 << 0)
    /// `\p{N}`: decimal digits, letter numbers and other numbers.
    static let number = CodepointFlags(rawValue: 1 << 1)
    /// `\p{L}`: all letters.
    static let letter = CodepointFlags(rawValue: 1 << 2)
    /// `\p{Z}`: space, line and paragraph separators.
    static let separator = CodepointFlags(rawValue: 1 << 3)
    /// `\p{M}`: combining marks.
    static let mark = CodepointFlags(rawValue: 1 << 4)
    /// `\p{P}`: punctuation.
    static let punctuation = CodepointFlags(rawValue: 1 << 5)
    /// `\p{S}`: symbols.
    static let symbol = CodepointFlags(rawValue: 1 << 6)
    /// `\p{C}`: controls, format characters, private use and surrogates.
    static let control = CodepointFlags(rawValue: 1 << 7)
    /// `\s` in llama.cpp: the Unicode White_Space property (unicode-data.cpp's
    /// `unicode_set_whitespace`), which includes U+0085 and U+00A0.
    static let whitespace = CodepointFlags(rawValue: 1 << 8)

    /// The newest Unicode version llama.cpp's tables know; later code points are unassigned.
    static let unicodeVersion = (major: 15, minor: 1)

    /// Flags of a code point, with a table for ASCII because nearly all text is ASCII.
    static func of(_ codepoint: UInt32) -> CodepointFlags {
        if codepoint < 0x80 {
            return asciiTable[Int(codepoint)]
        }
        return computed(codepoint)
    }

    private static let asciiTable: [CodepointFlags] = (0..<0x80).map { computed(UInt32($0)) }

    private static func computed(_ codepoint: UInt32) -> CodepointFlags {
        // Swift strings never hold surrogates; llama.cpp files them under \p{C}.
        guard let scalar = Unicode.Scalar(codepoint) else { return .control }

        var flags = category(of: scalar)
        if isWhitespace(codepoint) {
            flags.insert(.whitespace)
        }
        return flags
    }

    private static func category(of scalar: Unicode.Scalar) -> CodepointFlags {
        let properties = scalar.properties
        if let age = properties.age,
            (age.major, age.minor) > (unicodeVersion.major, unicodeVersion.minor)
        {
            return .undefined
        }

        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        case .spaceSeparator, .lineSeparator, .paragraphSeparator:
            return .separator
        case .nonspacingMark, .spacingMark, .enclosingMark:
            return .mark
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return .punctuation
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return .symbol
        case .control, .format, .surrogate, .privateUse:
            return .control
        case .unassigned:
            return .undefined
        @unknown default:
            return .undefined
        }
    }

    /// The White_Space code points, written out as in unicode-data.cpp so that a change of
    /// the property in a later Unicode version cannot move us away from llama.cpp.
    private static func isWhitespace(_ codepoint: UInt32) -> Bool {
        switch codepoint {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F,
            0x205F, 0x3000:
            return true
        default:
            return false
        }
    }
}
