/// Python's `json.dumps`, which Hugging Face's `tojson` filter calls.
///
/// Output must match byte for byte: tool schemas serialized here become part of the prompt. That
/// means Python's separators (`", "` and `": "` without indent, `","` with it), its escapes, its
/// float formatting and its `NaN` and `Infinity`.
enum PythonJSON {
    struct Options {
        /// Escape every non-ASCII character as `\uXXXX` (Hugging Face's default is false).
        var ensureASCII = false
        var sortKeys = false
        /// Indentation per level; nil puts everything on one line.
        var indent: String? = nil
        var itemSeparator = ", "
        var keySeparator = ": "
    }

    static func dumps(_ value: TemplateValue, options: Options) throws(ValueFailure) -> String {
        var output = ""
        try encode(value, options: options, level: 0, into: &output)
        return output
    }

    private static func encode(
        _ value: TemplateValue, options: Options, level: Int, into output: inout String
    ) throws(ValueFailure) {
        switch value {
        case .none: output += "null"
        case .bool(let flag): output += flag ? "true" : "false"
        case .int(let number): output += String(number)
        case .float(let number): output += formatFloat(number)
        case .string(let text): output += quote(text, ensureASCII: options.ensureASCII)
        case .list(let items), .tuple(let items):
            try encodeContainer(
                items.count, open: "[", close: "]", options: options, level: level, into: &output
            ) { index, output throws(ValueFailure) in
                try encode(items[index], options: options, level: level + 1, into: &output)
            }
        case .dictionary(let dictionary):
            var entries = Array(dictionary.entries)
            if options.sortKeys { entries = try sorted(entries) }
            try encodeContainer(
                entries.count, open: "{", close: "}", options: options, level: level, into: &output
            ) { index, output throws(ValueFailure) in
                output += quote(try key(entries[index].0), ensureASCII: options.ensureASCII)
                output += options.keySeparator
                try encode(entries[index].1, options: options, level: level + 1, into: &output)
            }
        default:
            throw .type("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    /// The brackets, separators and indentation around `count` items.
    private static func encodeContainer(
        _ count: Int, open: String, close: String, options: Options, level: Int,
        into output: inout String,
        item: (Int, inout String) throws(ValueFailure) -> Void
    ) throws(ValueFailure) {
        guard count > 0 else {
            output += open + close
            return
        }

        output += open
        var separator = options.itemSeparator
        if let indent = options.indent {
            let newline = "\n" + String(repeating: indent, count: level + 1)
            separator += newline
            output += newline
        }
        for index in 0..<count {
            if index > 0 { output += separator }
            try item(index, &output)
        }
        if let indent = options.indent {
            output += "\n" + String(repeating: indent, count: level)
        }
        output += close
    }

    /// Python converts `str`, `int`, `float`, `bool` and `None` keys to strings.
    private static func key(_ value: TemplateValue) throws(ValueFailure) -> String {
        switch value {
        case .string(let text): text
        case .int(let number): String(number)
        case .float(let number): formatFloat(number)
        case .bool(let flag): flag ? "true" : "false"
        case .none: "null"
        default:
            throw .type("keys must be str, int, float, bool or None, not \(value.typeName)")
        }
    }

    private static func sorted(
        _ entries: [(TemplateValue, TemplateValue)]
    ) throws(ValueFailure) -> [(TemplateValue, TemplateValue)] {
        var keys: [String] = []
        for (key, _) in entries {
            guard case .string(let text) = key else {
                throw .unsupported("tojson(sort_keys=true) with non-string keys")
            }
            keys.append(text)
        }
        let order = keys.indices.sorted { PythonString.less(keys[$0], keys[$1]) }
        return order.map { entries[$0] }
    }

    private static func formatFloat(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        return PythonString.formatFloat(value)
    }

    /// A JSON string as Python's encoder writes it: short escapes for `"`, `\`, and `\b \f \n
    /// \r \t`, `\u00XX` for other control characters, and with `ensureASCII` `\uXXXX` (as
    /// surrogate pairs above U+FFFF) for everything outside printable ASCII.
    private static func quote(_ text: String, ensureASCII: Bool) -> String {
        var output = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 || (ensureASCII && scalar.value >= 0x7F) {
                    for unit in String(scalar).utf16 { output += unicodeEscape(unit) }
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        return output + "\""
    }

    private static func unicodeEscape(_ unit: UInt16) -> String {
        let digits = String(unit, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
    }
}
