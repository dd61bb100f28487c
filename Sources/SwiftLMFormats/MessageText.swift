// Text from files, paths and requests, made safe to show in a one-line error message.
//
// Every error of SwiftLM describes itself in one line. A hostile file can hold a key of
// gigabytes, or a name with line breaks or terminal escapes that would forge further lines;
// these helpers are the one place where such text is escaped and cut.

/// `text` with every control character escaped, so a message that shows it stays on one line.
package func oneLine(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: isControl) else { return text }

    var escaped = ""
    for scalar in text.unicodeScalars {
        escaped += isControl(scalar) ? scalar.escaped(asASCII: true) : String(scalar)
    }
    return escaped
}

/// A name or value from a file on one line and cut after 80 characters, for a message.
package func excerpt(_ text: String) -> String {
    let limit = 80
    return oneLine(text.count > limit ? String(text.prefix(limit)) + "..." : text)
}

/// A name from a file in single quotes, on one line and cut after 80 characters.
package func quoted(_ name: String) -> String {
    "'" + excerpt(name) + "'"
}

/// Whether a scalar would move the cursor or otherwise garble a terminal line: the C0 and C1
/// controls, and the Unicode line and paragraph separators.
private func isControl(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029: true
    default: false
    }
}
