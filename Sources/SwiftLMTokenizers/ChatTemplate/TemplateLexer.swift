/// One token of a template, as jinja2's lexer produces them.
struct TemplateToken: Sendable {
    enum Kind: Sendable, Equatable {
        /// Literal template text, whitespace control already applied.
        case text(String)
        case variableBegin
        case variableEnd
        case blockBegin
        case blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        /// An operator or punctuation mark: `+`, `//`, `==`, `(`, `|`, `,` and so on.
        case symbol(String)
        case endOfInput
    }

    var kind: Kind
    var location: SourceLocation
}

/// Splits template source into tokens the way jinja2's `Lexer` does for Hugging Face's environment:
/// `trim_blocks` and `lstrip_blocks` on, `keep_trailing_newline` off.
///
/// Whitespace control happens here, as in jinja2: `{%-` strips all whitespace before a tag, `-%}`
/// all whitespace after it; `trim_blocks` drops the one newline after a block or comment tag;
/// `lstrip_blocks` drops the whitespace between the start of a line and a block or comment tag;
/// `{%+` and `+%}` turn the last two off for one tag. Inside a tag, an end delimiter only counts
/// when brackets balance, so `{{ {'a': 1}}}` ends at the last `}}`.
struct TemplateLexer {
    private let source: [Unicode.Scalar]
    private var position = 0
    private var tokens: [TemplateToken] = []

    /// Whether the text ahead starts a line: true at the start and after a tag end that consumed
    /// a newline. `lstrip_blocks` applies to text with no newline only when it does.
    private var lineStarting = true

    /// Offsets where lines start, for turning an offset into a line and column.
    private let lineStarts: [Int]

    /// Prepares `source` as jinja2 does: `\r\n` and `\r` become `\n`, and one trailing newline
    /// is dropped.
    init(source text: String) {
        var scalars: [Unicode.Scalar] = []
        var previousWasReturn = false
        for scalar in text.unicodeScalars {
            if scalar == "\n" && previousWasReturn {
                previousWasReturn = false
                continue
            }
            previousWasReturn = scalar == "\r"
            scalars.append(scalar == "\r" ? "\n" : scalar)
        }
        if scalars.last == "\n" { scalars.removeLast() }
        source = scalars

        var starts = [0]
        for (offset, scalar) in scalars.enumerated() where scalar == "\n" {
            starts.append(offset + 1)
        }
        lineStarts = starts
    }

    /// The whole token list, ending in `.endOfInput`.
    mutating func tokenize() throws(ChatTemplateError) -> [TemplateToken] {
        while position < source.count {
            guard let tagStart = nextTagStart() else {
                appendText(Array(source[position...]), at: position)
                position = source.count
                break
            }
            try lexTag(at: tagStart)
        }
        tokens.append(TemplateToken(kind: .endOfInput, location: location(of: source.count)))
        return tokens
    }

    // MARK: Text and tag starts

    /// The offset of the next `{{`, `{%` or `{#`.
    private func nextTagStart() -> Int? {
        var offset = position
        while offset + 1 < source.count {
            if source[offset] == "{", "{%#".unicodeScalars.contains(source[offset + 1]) {
                return offset
            }
            offset += 1
        }
        return nil
    }

    /// Lexes the text before the tag at `tagStart`, then the tag itself.
    private mutating func lexTag(at tagStart: Int) throws(ChatTemplateError) {
        let opener = source[tagStart + 1]
        let signOffset = tagStart + 2
        let sign: Unicode.Scalar? =
            signOffset < source.count && (source[signOffset] == "-" || source[signOffset] == "+")
            ? source[signOffset] : nil

        if opener == "%", startsRawBlock(after: sign == nil ? signOffset : signOffset + 1) {
            throw .unsupported("tag 'raw' at \(location(of: tagStart))")
        }

        // Whitespace control on the text before the tag.
        var text = Array(source[position..<tagStart])
        if sign == "-" {
            while let last = text.last, PythonString.isSpace(last) { text.removeLast() }
        } else if sign != "+" && opener != "{" {
            text = leftStrippedForBlock(text)
        }
        appendText(text, at: position)

        position = sign == nil ? signOffset : signOffset + 1
        switch opener {
        case "#":
            try skipComment(openedAt: tagStart)
        case "%":
            tokens.append(TemplateToken(kind: .blockBegin, location: location(of: tagStart)))
            try lexTagContents(isBlock: true, openedAt: tagStart)
        default:
            tokens.append(TemplateToken(kind: .variableBegin, location: location(of: tagStart)))
            try lexTagContents(isBlock: false, openedAt: tagStart)
        }
    }

    /// `lstrip_blocks`: drops the text after the last newline when it is only whitespace, and the
    /// whole text when it has no newline but starts a line.
    private func leftStrippedForBlock(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        let lineStart = (text.lastIndex(of: "\n") ?? -1) + 1
        guard lineStart > 0 || lineStarting, lineStart < text.count else { return text }
        guard text[lineStart...].allSatisfy(PythonString.isSpace) else { return text }
        return Array(text[..<lineStart])
    }

    /// Whether `{% raw %}` starts here: jinja2 matches `raw` before any other tag.
    private func startsRawBlock(after offset: Int) -> Bool {
        var index = offset
        while index < source.count, PythonString.isSpace(source[index]) { index += 1 }
        guard matches("raw", at: index) else { return false }
        index += 3
        while index < source.count, PythonString.isSpace(source[index]) { index += 1 }
        return matches("%}", at: index) || matches("-%}", at: index)
    }

    private mutating func appendText(_ text: [Unicode.Scalar], at offset: Int) {
        guard !text.isEmpty else { return }
        tokens.append(
            TemplateToken(kind: .text(String(scalars: text)), location: location(of: offset)))
    }

    /// Skips a comment up to its first `#}`, with the same end controls as a block tag.
    private mutating func skipComment(openedAt tagStart: Int) throws(ChatTemplateError) {
        // jinja2's lexer stops quietly when the source ends right after `{#`.
        guard position < source.count else { return }

        var end = position
        while end + 1 < source.count, !(source[end] == "#" && source[end + 1] == "}") {
            end += 1
        }
        guard end + 1 < source.count else {
            throw syntaxError("Missing end of comment tag", at: tagStart)
        }

        let marker: Unicode.Scalar? = end > position ? source[end - 1] : nil
        position = end + 2
        consumeAfterTagEnd(marker: marker == "-" || marker == "+" ? marker : nil)
    }

    // MARK: Inside tags

    /// Lexes expression tokens up to the tag's end delimiter.
    private mutating func lexTagContents(
        isBlock: Bool, openedAt tagStart: Int
    ) throws(ChatTemplateError) {
        var brackets: [Unicode.Scalar] = []
        while true {
            guard position < source.count else {
                throw syntaxError("unexpected end of template inside a tag", at: tagStart)
            }
            if brackets.isEmpty, lexTagEnd(isBlock: isBlock) { return }

            let scalar = source[position]
            if PythonString.isSpace(scalar) {
                position += 1
                continue
            }
            let start = position
            let kind = try lexExpressionToken()
            if case .symbol(let symbol) = kind {
                try balance(symbol, brackets: &brackets, at: start)
            }
            tokens.append(TemplateToken(kind: kind, location: location(of: start)))
        }
    }

    /// Consumes an end delimiter (`%}`, `-%}`, `+%}` or `}}`, `-}}`) if one starts here.
    private mutating func lexTagEnd(isBlock: Bool) -> Bool {
        // A sign, then the closer's first scalar, then `}`; `+` only ends blocks.
        let closer: Unicode.Scalar = isBlock ? "%" : "}"
        let start = position
        var marker: Unicode.Scalar? = nil
        if source[position] == "-" || source[position] == "+" {
            guard source[position] == "-" || isBlock,
                position + 2 < source.count, source[position + 1] == closer,
                source[position + 2] == "}"
            else { return false }
            marker = source[position]
        } else {
            guard source[position] == closer, position + 1 < source.count,
                source[position + 1] == "}"
            else { return false }
        }

        position += marker == nil ? 2 : 3
        tokens.append(
            TemplateToken(kind: isBlock ? .blockEnd : .variableEnd, location: location(of: start)))
        if isBlock {
            consumeAfterTagEnd(marker: marker)
        } else {
            // Variable tags strip only with `-}}` and never trim a newline.
            consumeAfterTagEnd(marker: marker == "-" ? "-" : "+")
        }
        return true
    }

    /// After a tag end: `-` eats all whitespace, `+` nothing, no marker one newline
    /// (`trim_blocks`). Records whether what was consumed ended a line.
    private mutating func consumeAfterTagEnd(marker: Unicode.Scalar?) {
        switch marker {
        case "-":
            while position < source.count, PythonString.isSpace(source[position]) {
                position += 1
            }
        case "+":
            break
        default:
            if position < source.count, source[position] == "\n" { position += 1 }
        }
        lineStarting = source[position - 1] == "\n"
    }

    /// Tracks `(`, `[`, `{` so that end delimiters inside brackets stay operators.
    private func balance(
        _ symbol: String, brackets: inout [Unicode.Scalar], at offset: Int
    ) throws(ChatTemplateError) {
        switch symbol {
        case "(": brackets.append(")")
        case "[": brackets.append("]")
        case "{": brackets.append("}")
        case ")", "]", "}":
            guard let expected = brackets.popLast() else {
                throw syntaxError("unexpected '\(symbol)'", at: offset)
            }
            guard String(expected) == symbol else {
                throw syntaxError("unexpected '\(symbol)', expected '\(expected)'", at: offset)
            }
        default:
            break
        }
    }

    private mutating func lexExpressionToken() throws(ChatTemplateError) -> TemplateToken.Kind {
        let scalar = source[position]
        if isASCIIDigit(scalar) {
            return try lexNumber()
        }
        if isNameCharacter(scalar) {
            return try lexName()
        }
        if scalar == "'" || scalar == "\"" {
            return try lexString()
        }
        if let symbol = lexSymbol() {
            return .symbol(symbol)
        }
        throw syntaxError("unexpected char \(PythonString.repr(String(scalar)))", at: position)
    }

    /// jinja2's operators and punctuation; a two-character operator wins over its first
    /// character (`//` over `/`).
    private mutating func lexSymbol() -> String? {
        let first = source[position]
        if position + 1 < source.count {
            switch (first, source[position + 1]) {
            case ("/", "/"), ("*", "*"), ("=", "="), ("!", "="), (">", "="), ("<", "="):
                defer { position += 2 }
                return String(first) + String(source[position + 1])
            default:
                break
            }
        }
        switch first {
        case "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":",
            "|", ",", ";":
            position += 1
            return String(first)
        default:
            return nil
        }
    }

    // MARK: Literals

    /// A Python identifier character: jinja2 takes runs of `\w` and requires an identifier.
    private func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            return scalar == "_" || ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
                || isASCIIDigit(scalar)
        }
        return scalar.properties.isXIDContinue
    }

    private mutating func lexName() throws(ChatTemplateError) -> TemplateToken.Kind {
        let start = position
        while position < source.count, isNameCharacter(source[position]) { position += 1 }
        guard source[start].properties.isXIDStart || source[start] == "_" else {
            throw syntaxError("Invalid character in identifier", at: start)
        }
        return .name(String(scalars: source[start..<position]))
    }

    /// Numbers as jinja2 reads them: floats first (`1.5`, `1e3`, `1_000.0`), then integers in
    /// decimal, `0b`, `0o` or `0x`, with `_` between digits.
    private mutating func lexNumber() throws(ChatTemplateError) -> TemplateToken.Kind {
        let start = position
        if let end = floatEnd(from: start) {
            position = end
            let text = String(scalars: source[start..<end].filter { $0 != "_" })
            guard let value = Double(text) else {
                throw syntaxError("invalid float literal '\(text)'", at: start)
            }
            return .float(value)
        }

        let (end, radix) = integerEnd(from: start)
        position = end
        var digits = source[start..<end].filter { $0 != "_" }
        if radix != 10 { digits.removeFirst(2) }
        guard let value = Int(String(scalars: digits), radix: radix) else {
            throw .unsupported("integer literal beyond 64 bits at \(location(of: start))")
        }
        return .integer(value)
    }

    /// The end of jinja2's float pattern at `start`, if it matches there.
    private func floatEnd(from start: Int) -> Int? {
        // `(?<!\.)`: in `items.0.1` the `0` is an index, not the start of `0.1`.
        if start > 0, source[start - 1] == "." { return nil }
        guard let integerPart = digitRunEnd(from: start) else { return nil }

        var end = integerPart
        var hasFraction = false
        if end < source.count, source[end] == ".", let fraction = digitRunEnd(from: end + 1) {
            end = fraction
            hasFraction = true
        }
        if end < source.count, source[end] == "e" || source[end] == "E" {
            var exponentStart = end + 1
            if exponentStart < source.count,
                source[exponentStart] == "+" || source[exponentStart] == "-"
            {
                exponentStart += 1
            }
            if let exponent = digitRunEnd(from: exponentStart) { return exponent }
        }
        return hasFraction ? end : nil
    }

    /// The end of `(\d+_)*\d+` at `start`.
    private func digitRunEnd(from start: Int) -> Int? {
        var end = start
        var lastDigitEnd: Int? = nil
        while end < source.count {
            if isASCIIDigit(source[end]) {
                end += 1
                lastDigitEnd = end
            } else if source[end] == "_", lastDigitEnd == end, end + 1 < source.count,
                isASCIIDigit(source[end + 1])
            {
                end += 1
            } else {
                break
            }
        }
        return lastDigitEnd
    }

    /// The end and radix of jinja2's integer pattern at `start`, which starts with a digit.
    private func integerEnd(from start: Int) -> (end: Int, radix: Int) {
        if source[start] == "0", start + 1 < source.count {
            let letter = Character(source[start + 1]).lowercased()
            for (name, radix) in [("b", 2), ("o", 8), ("x", 16)] where letter == name {
                let end = digitsEnd(from: start + 2, radix: radix)
                if end > start + 2 { return (end, radix) }
            }
        }
        // `[1-9](_?\d)*` or `0(_?0)*`: a leading zero only continues with zeros.
        let end = digitsEnd(from: start + 1, radix: 10, onlyZeros: source[start] == "0")
        return (end, 10)
    }

    /// The end of `(_?digit)*` from `start`.
    private func digitsEnd(from start: Int, radix: Int, onlyZeros: Bool = false) -> Int {
        func isDigit(_ scalar: Unicode.Scalar) -> Bool {
            guard scalar.isASCII, let value = Int(String(scalar), radix: radix) else {
                return false
            }
            return !onlyZeros || value == 0
        }

        var end = start
        while end < source.count {
            if isDigit(source[end]) {
                end += 1
            } else if source[end] == "_", end + 1 < source.count, isDigit(source[end + 1]) {
                end += 2
            } else {
                break
            }
        }
        return end
    }

    private func isASCIIDigit(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value >= 0x30 && scalar.value <= 0x39
    }

    /// A quoted string. jinja2 decodes the body with Python's `unicode-escape` codec after
    /// escaping non-ASCII characters, so `\n`, `\x41`, `\u00e9` and `\'` work as in Python.
    private mutating func lexString() throws(ChatTemplateError) -> TemplateToken.Kind {
        let start = position
        let quote = source[position]
        var end = position + 1
        while end < source.count, source[end] != quote {
            end += source[end] == "\\" ? 2 : 1
        }
        guard end < source.count else {
            throw syntaxError("unexpected char \(PythonString.repr(String(quote)))", at: start)
        }

        position = end + 1
        do {
            return .string(try PythonLiteral.decodeEscapes(Array(source[(start + 1)..<end])))
        } catch {
            switch error {
            case .unsupported(let construct):
                throw .unsupported("\(construct) at \(location(of: start))")
            default:
                throw syntaxError(error.message, at: start)
            }
        }
    }

    // MARK: Positions

    private func matches(_ text: String, at offset: Int) -> Bool {
        matches(Array(text.unicodeScalars), at: offset)
    }

    private func matches(_ scalars: [Unicode.Scalar], at offset: Int) -> Bool {
        guard offset + scalars.count <= source.count else { return false }
        return source[offset..<(offset + scalars.count)].elementsEqual(scalars)
    }

    private func location(of offset: Int) -> SourceLocation {
        // The last line start at or before `offset`.
        var low = 0
        var high = lineStarts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if lineStarts[middle] <= offset { low = middle } else { high = middle - 1 }
        }
        return SourceLocation(line: low + 1, column: offset - lineStarts[low] + 1)
    }

    private func syntaxError(_ message: String, at offset: Int) -> ChatTemplateError {
        let place = location(of: offset)
        return .syntax(message, line: place.line, column: place.column)
    }
}
