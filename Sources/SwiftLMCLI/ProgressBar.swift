import Foundation

/// A progress bar on standard error with the rate and the time left, redrawn in place.
struct ProgressBar {
    let total: Int
    let unit: String
    /// Work already done when the bar started (a resumed run), left out of the rate.
    let initial: Int
    private let start = Date()
    private let isTerminal = isatty(STDERR_FILENO) != 0

    init(total: Int, unit: String, startingAt initial: Int = 0) {
        self.total = total
        self.unit = unit
        self.initial = initial
    }

    /// Shows `done` of `total`, with an optional `detail` such as the current loss. Off a
    /// terminal it prints a plain line per update instead.
    func update(_ done: Int, detail: String = "") {
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done - initial) / elapsed : 0
        let remaining = rate > 0 ? Double(total - done) / rate : 0
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let bar =
            String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let rateText = String(format: "%.2f", rate)
        let line =
            "[\(bar)] \(done)/\(total) \(unit)  \(rateText) \(unit)/s  "
            + "ETA \(Self.clock(remaining))" + (detail.isEmpty ? "" : "  " + detail)
        if isTerminal {
            printError("\r" + line, terminator: done == total ? "\n" : "")
        } else {
            printError(line)
        }
    }

    /// Prints a line of its own above the bar (the bar is redrawn at the next update).
    func interrupt(_ line: String) {
        printError(isTerminal ? "\r\u{1B}[K" + line : line)
    }

    private static func clock(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        return String(format: "%d:%02d", whole / 60, whole % 60)
    }
}
