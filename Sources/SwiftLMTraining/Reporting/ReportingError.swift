import SwiftLMFormats

/// Why a training report (the metrics log, a plot) could not be read or written.
///
/// Every `description` is one line naming the path and the problem.
public enum ReportingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file or its directory could not be opened or read.
    case unreadable(path: String, reason: String)

    /// Writing failed; a file written atomically is left as it was.
    case writeFailed(path: String, reason: String)

    /// A line of the metrics log is not a metrics record. `line` counts from 1.
    case malformedRecord(path: String, line: Int, reason: String)

    /// A file-layer error in the report's words.
    init(_ error: FileIOError) {
        switch error {
        case .notFound(let path): self = .unreadable(path: path, reason: "file not found")
        case .unreadable(let path, let reason): self = .unreadable(path: path, reason: reason)
        case .writeFailed(let path, let reason): self = .writeFailed(path: path, reason: reason)
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "cannot read \(oneLine(path)): \(oneLine(reason))"
        case .writeFailed(let path, let reason):
            return "cannot write \(oneLine(path)): \(oneLine(reason))"
        case .malformedRecord(let path, let line, let reason):
            return "\(oneLine(path)), line \(line): not a metrics record: \(oneLine(reason))"
        }
    }
}
