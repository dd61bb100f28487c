/// Python's `str` semantics, on Unicode scalars.
///
/// Swift's `String` compares under canonical equivalence and counts grapheme clusters; CPython
/// compares code point by code point and counts code points. A template that slices, measures or
/// compares text must behave as it does in Python, so every string operation the interpreter
/// exposes goes through here rather than through `String`'s own operators.
enum PythonString {
    /// Python's `str.isspace` for one character: the characters `str.strip()` and `str.split()`
    /// remove, and `\s` in Python's `re`.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029,
            0x202F, 0x205F, 0x3000:
            true
        default:
            false
        }
    }

    static func equal(_ lhs: String, _ rhs: String) -> Bool {
        lhs.unicodeScalars.elementsEqual(rhs.unicodeScalars)
    }

    /// Python's `<` on strings: lexicographic by code point.
    static func less(_ lhs: String, _ rhs: String) -> Bool {
        lhs.unicodeScalars.lexicographicallyPrecedes(rhs.unicodeScalars)
    }

    static func length(_ text: String) -> Int {
        text.unicodeScalars.count
    }

    static func contains(_ haystack: String, _ needle: String) -> Bool {
        firstIndex(of: Array(needle.unicodeScalars), in: Array(haystack.unicodeScalars), from: 0)
            != nil
    }

    static func hasPrefix(_ text: String, _ prefix: String) -> Bool {
        text.unicodeScalars.starts(with: prefix.unicodeScalars)
    }

    static func hasSuffix(_ text: String, _ suffix: String) -> Bool {
        text.unicodeScalars.reversed().starts(with: suffix.unicodeScalars.reversed())
    }

    /// The first position at or after `start` where `needle` occurs in `haystack`.
    static func firstIndex(
        of needle: [Unicode.Scalar], in haystack: [Unicode.Scalar], from start: Int
    ) -> Int? {
        guard needle.count <= haystack.count - start else { return nil }
        for index in start...(haystack.count - needle.count)
        where haystack[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }

    // MARK: Stripping, splitting, replacing

    /// `str.strip`, `str.lstrip` and `str.rstrip`: `characters` nil strips whitespace.
    static func strip(
        _ text: String, characters: String?, leading: Bool = true, trailing: Bool = true
    ) -> String {
        let scalars = Array(text.unicodeScalars)
        let removable: (Unicode.Scalar) -> Bool
        if let characters {
            let set = Set(characters.unicodeScalars)
            removable = { set.contains($0) }
        } else {
            removable = isSpace
        }

        var start = 0
        var end = scalars.count
        if leading {
            while start < end, removable(scalars[start]) { start += 1 }
        }
        if trailing {
            while end > start, removable(scalars[end - 1]) { end -= 1 }
        }
        return String(scalars: scalars[start..<end])
    }

    /// `str.split(separator, maxsplit)`. A nil separator splits on runs of whitespace and drops
    /// empty pieces; a separator splits on each occurrence and keeps them. The caller rejects an
    /// empty separator, as Python does.
    static func split(_ text: String, separator: String?, maxSplit: Int) -> [String] {
        let scalars = Array(text.unicodeScalars)
        let limit = maxSplit < 0 ? Int.max : maxSplit
        guard let separator else { return splitOnWhitespace(scalars, limit: limit) }

        let needle = Array(separator.unicodeScalars)
        var pieces: [String] = []
        var start = 0
        while pieces.count < limit, let found = firstIndex(of: needle, in: scalars, from: start) {
            pieces.append(String(scalars: scalars[start..<found]))
            start = found + needle.count
        }
        pieces.append(String(scalars: scalars[start...]))
        return pieces
    }

    private static func splitOnWhitespace(_ scalars: [Unicode.Scalar], limit: Int) -> [String] {
        var pieces: [String] = []
        var index = 0
        while true {
            while index < scalars.count, isSpace(scalars[index]) { index += 1 }
            guard index < scalars.count else { break }

            // Past the limit Python keeps the rest whole, trailing whitespace included.
            if pieces.count == limit {
                pieces.append(String(scalars: scalars[index...]))
                break
            }
            let start = index
            while index < scalars.count, !isSpace(scalars[index]) { index += 1 }
            pieces.append(String(scalars: scalars[start..<index]))
        }
        return pieces
    }

    /// `str.replace(old, new, count)`; a negative count replaces every occurrence. An empty `old`
    /// inserts `new` before every character and at the end, as Python does.
    static func replace(_ text: String, old: String, new: String, count: Int) -> String {
        let scalars = Array(text.unicodeScalars)
        let needle = Array(old.unicodeScalars)
        let limit = count < 0 ? Int.max : count
        var result = String.UnicodeScalarView()
        var replaced = 0

        if needle.isEmpty {
            for scalar in scalars {
                if replaced < limit {
                    result.append(contentsOf: new.unicodeScalars)
                    replaced += 1
                }
                result.append(scalar)
            }
            if replaced < limit { result.append(contentsOf: new.unicodeScalars) }
            return String(result)
        }

        var start = 0
        while replaced < limit, let found = firstIndex(of: needle, in: scalars, from: start) {
            result.append(contentsOf: scalars[start..<found])
            result.append(contentsOf: new.unicodeScalars)
            start = found + needle.count
            replaced += 1
        }
        result.append(contentsOf: scalars[start...])
        return String(result)
    }

    // MARK: Case

    /// `str.upper()`: each character's full uppercase mapping ("ß" becomes "SS").
    static func uppercased(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars { result += scalar.properties.uppercaseMapping }
        return result
    }

    /// `str.lower()`: each character's full lowercase mapping, with the final-sigma rule.
    static func lowercased(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var result = ""
        for index in scalars.indices { result += lowercaseMapping(scalars, at: index) }
        return result
    }

    /// `str.capitalize()`: the first character in title case, the rest lowercase.
    static func capitalized(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        guard let first = scalars.first else { return "" }
        var result = first.properties.titlecaseMapping
        for index in scalars.indices.dropFirst() { result += lowercaseMapping(scalars, at: index) }
        return result
    }

    /// `str.title()`: title case after an uncased character, lowercase after a cased one.
    static func titlecased(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var result = ""
        var previousIsCased = false
        for index in scalars.indices {
            let scalar = scalars[index]
            result +=
                previousIsCased
                ? lowercaseMapping(scalars, at: index) : scalar.properties.titlecaseMapping
            previousIsCased = scalar.properties.isCased
        }
        return result
    }

    /// Jinja2's `title` filter, which is not `str.title()`: it splits on runs of whitespace and
    /// `-({[<`, then uppercases the first character of each word and lowercases the rest.
    static func jinjaTitle(_ text: String) -> String {
        func isBoundary(_ scalar: Unicode.Scalar) -> Bool {
            isSpace(scalar) || "-({[<".unicodeScalars.contains(scalar)
        }

        let scalars = Array(text.unicodeScalars)
        var result = ""
        var index = 0
        while index < scalars.count {
            let start = index
            let boundary = isBoundary(scalars[index])
            while index < scalars.count, isBoundary(scalars[index]) == boundary { index += 1 }
            if boundary {
                result += String(scalars: scalars[start..<index])
            } else {
                result += scalars[start].properties.uppercaseMapping
                result += lowercased(String(scalars: scalars[(start + 1)..<index]))
            }
        }
        return result
    }

    /// CPython lowercases a capital sigma to the final form "ς" when it ends a word: a cased
    /// letter before it and none after it, skipping case-ignorable characters both ways.
    private static func lowercaseMapping(_ scalars: [Unicode.Scalar], at index: Int) -> String {
        let scalar = scalars[index]
        guard scalar == "\u{03A3}" else { return scalar.properties.lowercaseMapping }

        var before = index - 1
        while before >= 0, scalars[before].properties.isCaseIgnorable { before -= 1 }
        var after = index + 1
        while after < scalars.count, scalars[after].properties.isCaseIgnorable { after += 1 }

        let casedBefore = before >= 0 && scalars[before].properties.isCased
        let casedAfter = after < scalars.count && scalars[after].properties.isCased
        return casedBefore && !casedAfter ? "\u{03C2}" : "\u{03C3}"
    }

    // MARK: Representations

    /// Python's `repr` of a string: single quotes unless only double quotes avoid escaping,
    /// backslash escapes for control and unprintable characters.
    static func repr(_ text: String) -> String {
        let scalars = text.unicodeScalars
        let quote: Unicode.Scalar =
            scalars.contains("'") && !scalars.contains("\"") ? "\"" : "'"
        var result = String.UnicodeScalarView()
        result.append(quote)
        for scalar in scalars {
            switch scalar {
            case quote, "\\":
                result.append("\\")
                result.append(scalar)
            case "\t": result.append(contentsOf: "\\t".unicodeScalars)
            case "\n": result.append(contentsOf: "\\n".unicodeScalars)
            case "\r": result.append(contentsOf: "\\r".unicodeScalars)
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    result.append(contentsOf: hexEscape(scalar).unicodeScalars)
                } else if scalar.value < 0x7F || isPrintable(scalar) {
                    result.append(scalar)
                } else {
                    result.append(contentsOf: hexEscape(scalar).unicodeScalars)
                }
            }
        }
        result.append(quote)
        return String(result)
    }

    /// CPython's `Py_UNICODE_ISPRINTABLE`: everything but separators, controls, format
    /// characters, surrogates, private use and unassigned code points; the space is printable.
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator,
            .paragraphSeparator, .spaceSeparator:
            scalar == " "
        default:
            true
        }
    }

    /// `\xhh`, `\uhhhh` or `\Uhhhhhhhh`, the shortest that fits, as both `repr` and the
    /// `backslashreplace` codec write them.
    static func hexEscape(_ scalar: Unicode.Scalar) -> String {
        let (prefix, width) =
            scalar.value <= 0xFF ? ("\\x", 2) : scalar.value <= 0xFFFF ? ("\\u", 4) : ("\\U", 8)
        let digits = String(scalar.value, radix: 16)
        return prefix + String(repeating: "0", count: width - digits.count) + digits
    }

    /// Python's `repr` of a float: the shortest digits that round-trip, in positional notation
    /// for decimal exponents from -4 to 15 and scientific notation outside them.
    static func formatFloat(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }

        // Swift prints the same shortest round-trip digits, but changes notation at other
        // magnitudes; take its digits and lay them out as Python does.
        var text = value.magnitude.description
        var exponent = 0
        if let marker = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: marker)...]) ?? 0
            text = String(text[..<marker])
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        var digits = Array(parts[0] + (parts.count > 1 ? parts[1] : ""))
        var pointPosition = parts[0].count + exponent
        while digits.first == "0" {
            digits.removeFirst()
            pointPosition -= 1
        }
        while digits.last == "0" { digits.removeLast() }

        let sign = value < 0 ? "-" : ""
        let scientificExponent = pointPosition - 1
        if scientificExponent < -4 || scientificExponent >= 16 {
            let mantissa =
                digits.count > 1 ? "\(digits[0]).\(String(digits[1...]))" : String(digits)
            let magnitude = String(abs(scientificExponent))
            let exponentText =
                (scientificExponent < 0 ? "-" : "+") + (magnitude.count < 2 ? "0" : "") + magnitude
            return sign + mantissa + "e" + exponentText
        }
        if pointPosition <= 0 {
            return sign + "0." + String(repeating: "0", count: -pointPosition) + String(digits)
        }
        if pointPosition >= digits.count {
            let zeros = String(repeating: "0", count: pointPosition - digits.count)
            return sign + String(digits) + zeros + ".0"
        }
        return sign + String(digits[..<pointPosition]) + "." + String(digits[pointPosition...])
    }

    // MARK: Slicing

    /// CPython's `PySlice_AdjustIndices`: the positions a slice selects from `count` items.
    static func sliceIndices(count: Int, start: Int?, stop: Int?, step: Int) -> [Int] {
        func clamp(_ bound: Int?, default defaultValue: Int) -> Int {
            guard var bound else { return defaultValue }
            if bound < 0 {
                bound += count
                if bound < 0 { bound = step < 0 ? -1 : 0 }
            } else if bound >= count {
                bound = step < 0 ? count - 1 : count
            }
            return bound
        }

        let first = clamp(start, default: step < 0 ? count - 1 : 0)
        let end = clamp(stop, default: step < 0 ? -1 : count)
        return Array(stride(from: first, to: end, by: step))
    }
}

extension String {
    init<Scalars: Sequence<Unicode.Scalar>>(scalars: Scalars) {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self.init(view)
    }
}

/// Why a string literal's escapes could not be decoded.
enum LiteralError: Error {
    /// Python's `unicode-escape` codec rejects the escape; jinja2 reports a syntax error.
    case invalid(String)
    /// Python accepts the escape, but this interpreter does not decode it.
    case unsupported(String)

    var message: String {
        switch self {
        case .invalid(let message), .unsupported(let message): message
        }
    }
}

/// Python's decoding of string literal bodies.
enum PythonLiteral {
    /// What jinja2 does to a string literal's body: escape every non-ASCII character with the
    /// `backslashreplace` codec, then decode with `unicode-escape`. Doing both steps keeps the
    /// odd cases identical, such as a backslash before a non-ASCII character.
    static func decodeEscapes(_ body: [Unicode.Scalar]) throws(LiteralError) -> String {
        var ascii: [Unicode.Scalar] = []
        for scalar in body {
            if scalar.isASCII {
                ascii.append(scalar)
            } else {
                ascii.append(contentsOf: PythonString.hexEscape(scalar).unicodeScalars)
            }
        }

        var result = String.UnicodeScalarView()
        var index = 0
        while index < ascii.count {
            let scalar = ascii[index]
            index += 1
            guard scalar == "\\" else {
                result.append(scalar)
                continue
            }
            guard index < ascii.count else { throw .invalid("\\ at end of string") }

            let escape = ascii[index]
            index += 1
            switch escape {
            case "\n":
                break
            case "\\", "'", "\"":
                result.append(escape)
            case "a": result.append("\u{07}")
            case "b": result.append("\u{08}")
            case "f": result.append("\u{0C}")
            case "n": result.append("\n")
            case "r": result.append("\r")
            case "t": result.append("\t")
            case "v": result.append("\u{0B}")
            case "0"..."7":
                var value = escape.value - 0x30
                var digits = 1
                while digits < 3, index < ascii.count, ("0"..."7").contains(ascii[index]) {
                    value = value * 8 + ascii[index].value - 0x30
                    index += 1
                    digits += 1
                }
                result.append(Unicode.Scalar(value)!)
            case "x", "u", "U":
                let width = escape == "x" ? 2 : escape == "u" ? 4 : 8
                let hex = ascii[index..<min(index + width, ascii.count)]
                guard hex.count == width, let value = UInt32(String(scalars: hex), radix: 16),
                    !hex.contains("+"), !hex.contains("-")
                else {
                    let pattern = escape == "x" ? "XX" : escape == "u" ? "XXXX" : "XXXXXXXX"
                    throw .invalid("truncated \\\(escape)\(pattern) escape")
                }
                index += width
                guard value <= 0x10FFFF else { throw .invalid("illegal Unicode character") }
                guard let decoded = Unicode.Scalar(value) else {
                    throw .unsupported("string literal with a lone surrogate")
                }
                result.append(decoded)
            case "N":
                throw .unsupported("named escape \\N{...} in a string literal")
            default:
                // Python keeps unknown escapes as written.
                result.append("\\")
                result.append(escape)
            }
        }
        return String(result)
    }
}
