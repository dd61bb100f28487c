import Foundation
import SwiftLMFormats

/// A chart of training loss (a line) and validation loss (a line with markers) against step,
/// written as a standalone SVG file, with an optional dashed line for a baseline such as
/// ``TokenDataset/unigramEntropy()``.
///
/// Points whose loss is NaN or infinite (a diverged run) are left out, and the chart says how
/// many were, so a run that blew up still gets its plot.
public struct LossCurvePlot: Sendable {
    public struct Point: Sendable, Equatable {
        public var step: Int
        public var loss: Double

        public init(step: Int, loss: Double) {
            self.step = step
            self.loss = loss
        }
    }

    /// A horizontal reference line, e.g. ("unigram baseline", 5.3).
    public struct Baseline: Sendable, Equatable {
        public var label: String
        public var loss: Double

        public init(label: String, loss: Double) {
            self.label = label
            self.loss = loss
        }
    }

    public var title: String
    public var training: [Point]
    public var validation: [Point]
    public var baseline: Baseline?
    /// The size of the picture in SVG user units (pixels).
    public var width = 800
    public var height = 500

    public init(
        title: String = "Loss", training: [Point], validation: [Point] = [],
        baseline: Baseline? = nil
    ) {
        self.title = title
        self.training = training
        self.validation = validation
        self.baseline = baseline
    }

    /// The curves of a metrics log: every record's loss, and the validation loss where a
    /// record has one.
    public init(title: String = "Loss", records: [MetricsRecord], baseline: Baseline? = nil) {
        self.init(
            title: title,
            training: records.map { Point(step: $0.step, loss: $0.loss) },
            validation: records.compactMap { record in
                record.validationLoss.map { Point(step: record.step, loss: $0) }
            },
            baseline: baseline)
    }

    /// Writes the SVG to `path` atomically.
    public func write(to path: String) throws(ReportingError) {
        do throws(FileIOError) {
            try AtomicFileWriter.write(Array(svg().utf8), to: path)
        } catch {
            throw ReportingError(error)
        }
    }

    /// The chart as SVG text.
    public func svg() -> String {
        let shownTraining = training.filter { $0.loss.isFinite }
        let shownValidation = validation.filter { $0.loss.isFinite }
        let shownBaseline = baseline.flatMap { $0.loss.isFinite ? $0 : nil }
        let omitted =
            training.count + validation.count - shownTraining.count - shownValidation.count
            + (baseline != nil && shownBaseline == nil ? 1 : 0)

        // Axes span every point shown; steps are whole numbers, so their ticks are too.
        let allPoints = shownTraining + shownValidation
        let xAxis = Axis(
            values: allPoints.map { Double($0.step) }, tickCount: 5, wholeNumbers: true)
        let yAxis = Axis(
            values: allPoints.map(\.loss) + (shownBaseline.map { [$0.loss] } ?? []), tickCount: 5,
            wholeNumbers: false)
        let frame = Frame(width: Double(width), height: Double(height), x: xAxis, y: yAxis)

        var svg = SVGText(width: width, height: height)
        svg.text(title, x: frame.plotCenterX, y: 24, anchor: "middle", extra: #"font-size="16""#)
        drawAxes(into: &svg, frame: frame)
        if let shownBaseline { drawBaseline(shownBaseline, into: &svg, frame: frame) }
        drawSeries(
            shownTraining, id: "training-loss", color: trainingColor, into: &svg, frame: frame)
        drawSeries(
            shownValidation, id: "validation-loss", color: validationColor, markers: true,
            into: &svg, frame: frame)
        drawLegend(
            into: &svg, frame: frame, validation: !shownValidation.isEmpty,
            baseline: shownBaseline)
        if omitted > 0 {
            svg.text(
                "\(omitted) non-finite point\(omitted == 1 ? "" : "s") omitted", x: 8,
                y: Double(height) - 8, anchor: "start", extra: ##"fill="#b00""##)
        }
        return svg.finished()
    }

    private let trainingColor = "#1f77b4"
    private let validationColor = "#ff7f0e"
    private let baselineColor = "#555555"

    private func drawAxes(into svg: inout SVGText, frame: Frame) {
        // Grid lines and tick labels first, so the curves are drawn over them.
        for tick in frame.x.ticks {
            let x = frame.pixelX(tick)
            svg.line(x, frame.top, x, frame.bottom, stroke: "#e5e5e5")
            svg.text(frame.x.label(tick), x: x, y: frame.bottom + 18, anchor: "middle")
        }
        for tick in frame.y.ticks {
            let y = frame.pixelY(tick)
            svg.line(frame.left, y, frame.right, y, stroke: "#e5e5e5")
            svg.text(frame.y.label(tick), x: frame.left - 6, y: y + 4, anchor: "end")
        }

        svg.line(frame.left, frame.bottom, frame.right, frame.bottom, stroke: "#000")
        svg.line(frame.left, frame.top, frame.left, frame.bottom, stroke: "#000")
        svg.text("step", x: frame.plotCenterX, y: frame.bottom + 40, anchor: "middle")
        let middleY = (frame.top + frame.bottom) / 2
        svg.text(
            "loss (nats per token)", x: 18, y: middleY, anchor: "middle",
            extra: "transform=\"rotate(-90 18 \(SVGText.number(middleY)))\"")
    }

    private func drawSeries(
        _ points: [Point], id: String, color: String, markers: Bool = false,
        into svg: inout SVGText, frame: Frame
    ) {
        guard !points.isEmpty else { return }
        let pixels = points.map { (frame.pixelX(Double($0.step)), frame.pixelY($0.loss)) }
        svg.polyline(pixels, id: id, stroke: color)

        // A polyline of one point draws nothing, so a lone point gets a marker too.
        if markers || points.count == 1 {
            for (x, y) in pixels { svg.circle(x, y, radius: 3, fill: color) }
        }
    }

    private func drawBaseline(_ baseline: Baseline, into svg: inout SVGText, frame: Frame) {
        let y = frame.pixelY(baseline.loss)
        svg.line(
            frame.left, y, frame.right, y, stroke: baselineColor,
            extra: #"id="baseline" stroke-dasharray="6 4""#)
        svg.text(
            "\(baseline.label) \(String(format: "%.3f", baseline.loss))", x: frame.right - 4,
            y: y - 5, anchor: "end", extra: "fill=\"\(baselineColor)\"")
    }

    private func drawLegend(
        into svg: inout SVGText, frame: Frame, validation: Bool, baseline: Baseline?
    ) {
        var entries: [(label: String, color: String, dashed: Bool, marker: Bool)] = [
            ("training loss", trainingColor, false, false)
        ]
        if validation { entries.append(("validation loss", validationColor, false, true)) }
        if let baseline { entries.append((baseline.label, baselineColor, true, false)) }

        // A box in the top right corner of the plot, one row per entry, wide enough for the
        // longest label at about 7 units a character of the 12-unit font.
        let rowHeight = 18.0
        let boxWidth = 52 + 7 * Double(entries.map(\.label.count).max()!)
        let boxLeft = frame.right - boxWidth - 8
        let boxTop = frame.top + 8
        svg.rect(
            boxLeft, boxTop, boxWidth, rowHeight * Double(entries.count) + 8,
            extra: ##"fill="#fff" fill-opacity="0.85" stroke="#ccc""##)
        for (row, entry) in entries.enumerated() {
            let y = boxTop + 4 + rowHeight * (Double(row) + 0.5)
            svg.line(
                boxLeft + 8, y, boxLeft + 36, y, stroke: entry.color,
                extra: entry.dashed ? #"stroke-dasharray="6 4""# : #"stroke-width="1.5""#)
            if entry.marker { svg.circle(boxLeft + 22, y, radius: 3, fill: entry.color) }
            svg.text(entry.label, x: boxLeft + 44, y: y + 4, anchor: "start")
        }
    }
}

/// One axis: the data range widened to nice tick values.
struct Axis {
    let lower: Double
    let upper: Double
    let spacing: Double

    /// Ticks at round numbers (1, 2 or 5 times a power of ten apart) covering `values`, about
    /// `tickCount` of them: Heckbert's "Nice numbers for graph labels" (Graphics Gems, 1990).
    init(values: [Double], tickCount: Int, wholeNumbers: Bool) {
        var low = values.min() ?? 0
        var high = values.max() ?? 1

        // A single value or a constant curve still needs a range to spread ticks over.
        if high - low < max(abs(high), 1) * 1e-9 {
            let pad = wholeNumbers ? 1 : max(abs(low) * 0.1, 0.1)
            low = wholeNumbers && low >= 0 ? max(low - pad, 0) : low - pad
            high += pad
        }

        let span = Axis.niceNumber(high - low, rounding: false)
        var spacing = Axis.niceNumber(span / Double(tickCount - 1), rounding: true)
        if wholeNumbers { spacing = max(spacing, 1) }
        self.spacing = spacing
        lower = (low / spacing).rounded(.down) * spacing
        upper = (high / spacing).rounded(.up) * spacing
    }

    var ticks: [Double] {
        let count = Int(((upper - lower) / spacing).rounded())
        return (0...count).map { lower + Double($0) * spacing }
    }

    /// A tick value with as many decimals as the spacing needs.
    func label(_ value: Double) -> String {
        let decimals = max(0, Int(-log10(spacing).rounded(.down)))
        return String(format: "%.\(decimals)f", value)
    }

    /// The nice number nearest `x` (`rounding`) or at least `x`.
    static func niceNumber(_ x: Double, rounding: Bool) -> Double {
        let power = pow(10, log10(x).rounded(.down))
        let fraction = x / power
        let nice: Double
        if rounding {
            nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10
        } else {
            nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
        }
        return nice * power
    }
}

/// Where the plot area lies in the picture, and the mapping of data to pixels.
struct Frame {
    let left = 70.0
    let top = 40.0
    let right: Double
    let bottom: Double
    let x: Axis
    let y: Axis

    init(width: Double, height: Double, x: Axis, y: Axis) {
        right = width - 20
        bottom = height - 60
        self.x = x
        self.y = y
    }

    var plotCenterX: Double { (left + right) / 2 }

    func pixelX(_ value: Double) -> Double {
        left + (value - x.lower) / (x.upper - x.lower) * (right - left)
    }

    func pixelY(_ value: Double) -> Double {
        bottom - (value - y.lower) / (y.upper - y.lower) * (bottom - top)
    }
}

/// SVG elements appended as text, with attribute values escaped.
struct SVGText {
    private var body: String

    init(width: Int, height: Int) {
        body = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" \
            viewBox="0 0 \(width) \(height)" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="#fff"/>

            """
    }

    mutating func line(
        _ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String, extra: String = ""
    ) {
        body += "<line x1=\"\(Self.number(x1))\" y1=\"\(Self.number(y1))\" "
        body +=
            "x2=\"\(Self.number(x2))\" y2=\"\(Self.number(y2))\" stroke=\"\(stroke)\" \(extra)/>\n"
    }

    mutating func polyline(_ points: [(Double, Double)], id: String, stroke: String) {
        let coordinates = points.map { "\(Self.number($0.0)),\(Self.number($0.1))" }
        body += "<polyline id=\"\(id)\" fill=\"none\" stroke=\"\(stroke)\" stroke-width=\"1.5\" "
        body += "points=\"\(coordinates.joined(separator: " "))\"/>\n"
    }

    mutating func circle(_ x: Double, _ y: Double, radius: Double, fill: String) {
        body += "<circle cx=\"\(Self.number(x))\" cy=\"\(Self.number(y))\" "
        body += "r=\"\(Self.number(radius))\" fill=\"\(fill)\"/>\n"
    }

    mutating func rect(
        _ x: Double, _ y: Double, _ width: Double, _ height: Double, extra: String
    ) {
        body += "<rect x=\"\(Self.number(x))\" y=\"\(Self.number(y))\" "
        body += "width=\"\(Self.number(width))\" height=\"\(Self.number(height))\" \(extra)/>\n"
    }

    mutating func text(_ content: String, x: Double, y: Double, anchor: String, extra: String = "")
    {
        body += "<text x=\"\(Self.number(x))\" y=\"\(Self.number(y))\" text-anchor=\"\(anchor)\" "
        body += "\(extra)>\(Self.escaped(content))</text>\n"
    }

    func finished() -> String { body + "</svg>\n" }

    /// A coordinate with two decimals: a hundredth of a pixel is finer than any screen.
    static func number(_ value: Double) -> String { String(format: "%.2f", value) }

    /// Text made safe inside an element or an attribute value. Control characters are
    /// dropped: XML 1.0 allows none but tab and the line breaks, even escaped.
    static func escaped(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&apos;"
            case "\t", "\n", "\r": result += " "
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value): continue
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
