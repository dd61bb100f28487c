import Foundation

/// A usage error: the command line asked for something we cannot do. Printed as one line.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Parsed `--name value`, `--name=value` and `--flag` options of one command.
///
/// Each command declares its options up front, so an unknown or misspelled option is an error
/// rather than silently ignored.
struct Arguments {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    /// - Parameters:
    ///   - valued: options that take a value.
    ///   - flags: options that take none.
    init(
        _ arguments: ArraySlice<String>, valued: Set<String>, flags allowedFlags: Set<String>
    )
        throws
    {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            guard argument.hasPrefix("--") else {
                throw UsageError("unexpected argument '\(argument)'")
            }
            var name = String(argument.dropFirst(2))
            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }

            guard values[name] == nil && !flags.contains(name) else {
                throw UsageError("option --\(name) is given twice")
            }
            if allowedFlags.contains(name) && inlineValue == nil {
                flags.insert(name)
            } else if valued.contains(name) {
                guard let value = inlineValue ?? iterator.next() else {
                    throw UsageError("option --\(name) needs a value")
                }
                values[name] = value
            } else {
                throw UsageError("unknown option --\(name)")
            }
        }
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    func string(_ name: String) -> String? { values[name] }

    func requiredString(_ name: String) throws -> String {
        guard let value = values[name] else {
            throw UsageError("missing required option --\(name)")
        }
        return value
    }

    func int(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw UsageError("--\(name) must be an integer in \(range), got '\(text)'")
        }
        return value
    }

    func double(_ name: String, default fallback: Double, range: ClosedRange<Double>) throws
        -> Double
    {
        guard let text = values[name] else { return fallback }
        guard let value = Double(text), range.contains(value) else {
            throw UsageError("--\(name) must be a number in \(range), got '\(text)'")
        }
        return value
    }

    func float(_ name: String, default fallback: Float, range: ClosedRange<Float>) throws -> Float {
        guard let text = values[name] else { return fallback }
        guard let value = Float(text), range.contains(value) else {
            throw UsageError("--\(name) must be a number in \(range), got '\(text)'")
        }
        return value
    }
}

/// Writes to standard error: diagnostics, progress and timings, never results.
func printError(_ text: String, terminator: String = "\n") {
    FileHandle.standardError.write(Data((text + terminator).utf8))
}

/// Writes to standard output immediately, for streamed tokens.
func printStreamed(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}
