import Foundation
import Testing

@testable import SwiftLMTraining

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The elements of an XML document, parsed by Foundation's XMLParser: a check that the SVG is
/// well-formed that shares no code with the writer.
final class ParsedXML: NSObject, XMLParserDelegate {
    struct Element {
        let name: String
        let attributes: [String: String]
        var text = ""
    }

    private(set) var elements: [Element] = []
    private var open: [Int] = []

    /// Parses `text`; nil when it is not well-formed XML.
    static func parse(_ text: String) -> ParsedXML? {
        let document = ParsedXML()
        let parser = XMLParser(data: Data(text.utf8))
        parser.delegate = document
        return parser.parse() ? document : nil
    }

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
        qualifiedName: String?, attributes: [String: String]
    ) {
        open.append(elements.count)
        elements.append(Element(name: name, attributes: attributes))
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let current = open.last { elements[current].text += string }
    }

    func parser(
        _ parser: XMLParser, didEndElement name: String, namespaceURI: String?,
        qualifiedName: String?
    ) {
        open.removeLast()
    }

    func named(_ name: String) -> [Element] { elements.filter { $0.name == name } }

    func withID(_ id: String) -> Element? { elements.first { $0.attributes["id"] == id } }

    /// The coordinates of a polyline's `points` attribute.
    func points(of id: String) -> [(Double, Double)] {
        guard let points = withID(id)?.attributes["points"] else { return [] }
        return points.split(separator: " ").map { pair in
            let parts = pair.split(separator: ",").map { Double($0)! }
            return (parts[0], parts[1])
        }
    }
}

@Suite("Loss curve plot")
struct LossCurvePlotTests {
    /// 21 steps 50 apart of a decaying loss, validated every fifth.
    let records = (0...20).map { (step: Int) -> MetricsRecord in
        let decay: Double = 6 * exp(-Double(step) / 8)
        return MetricsRecord(
            step: step * 50, loss: decay + 1.5, validationLoss: step % 5 == 0 ? decay + 1.7 : nil,
            tokensPerSecond: 1000, learningRate: 1e-3)
    }

    @Test("the SVG is well-formed XML with one polyline point per logged step")
    func wellFormed() throws {
        let plot = LossCurvePlot(
            title: "tiny run", records: records,
            baseline: .init(label: "unigram baseline", loss: 5.25))

        let xml = try #require(ParsedXML.parse(plot.svg()))

        #expect(xml.elements.first?.name == "svg")
        #expect(xml.points(of: "training-loss").count == 21)
        #expect(xml.points(of: "validation-loss").count == 5)
        #expect(xml.named("circle").count == 5 + 1)  // markers, and the legend's
        #expect(xml.named("text").contains { $0.text == "tiny run" })
        #expect(xml.named("text").contains { $0.text == "step" })
        #expect(xml.named("text").contains { $0.text == "loss (nats per token)" })
        #expect(xml.named("text").contains { $0.text == "unigram baseline 5.250" })
        #expect(xml.named("text").contains { $0.text == "validation loss" })
    }

    @Test("points land inside the plot area, later steps further right, lower loss lower")
    func geometry() throws {
        let xml = try #require(ParsedXML.parse(LossCurvePlot(records: records).svg()))
        let points = xml.points(of: "training-loss")

        #expect(points.allSatisfy { (70...780).contains($0.0) && (40...440).contains($0.1) })
        #expect(zip(points, points.dropFirst()).allSatisfy { $0.0 < $1.0 && $0.1 < $1.1 })
    }

    @Test("the baseline is a dashed horizontal line inside the y range")
    func baseline() throws {
        // A baseline above every loss must widen the axis to include it.
        let plot = LossCurvePlot(records: records, baseline: .init(label: "unigram", loss: 9.6))
        let xml = try #require(ParsedXML.parse(plot.svg()))

        let line = try #require(xml.withID("baseline"))
        #expect(line.attributes["stroke-dasharray"] != nil)
        #expect(line.attributes["y1"] == line.attributes["y2"])
        let y = try #require(Double(line.attributes["y1"] ?? ""))
        #expect((40...440).contains(y))
        #expect(xml.named("text").contains { $0.text == "10" })
    }

    @Test("a single point still draws, with a marker and finite coordinates")
    func singlePoint() throws {
        let plot = LossCurvePlot(training: [.init(step: 0, loss: 3.2)])
        let svg = plot.svg()
        let xml = try #require(ParsedXML.parse(svg))

        #expect(xml.points(of: "training-loss").count == 1)
        #expect(xml.named("circle").count == 1)
        #expect(!svg.lowercased().contains("nan") && !svg.contains("inf"))
    }

    @Test("a constant loss gets a y range around it")
    func constantLoss() throws {
        let training = (1...10).map { LossCurvePlot.Point(step: $0, loss: 2) }
        let svg = LossCurvePlot(training: training).svg()
        let xml = try #require(ParsedXML.parse(svg))

        let ys = Set(xml.points(of: "training-loss").map(\.1))
        #expect(ys.count == 1)
        #expect((40.0...440).contains(ys.first!))
        #expect(!svg.lowercased().contains("nan") && !svg.contains("inf"))
    }

    @Test("non-finite losses are left out and counted on the chart")
    func nonFinite() throws {
        let training = [
            LossCurvePlot.Point(step: 1, loss: 4), .init(step: 2, loss: .nan),
            .init(step: 3, loss: .infinity), .init(step: 4, loss: 3),
        ]
        let svg = LossCurvePlot(training: training).svg()
        let xml = try #require(ParsedXML.parse(svg))

        #expect(xml.points(of: "training-loss").count == 2)
        #expect(xml.named("text").contains { $0.text == "2 non-finite points omitted" })
    }

    @Test("a title with markup characters is escaped, not interpreted")
    func escaping() throws {
        let title = "loss <b>&</b> \"quoted\"\u{1}"
        let xml = try #require(ParsedXML.parse(LossCurvePlot(title: title, records: records).svg()))
        #expect(xml.named("text").contains { $0.text == "loss <b>&</b> \"quoted\"" })
    }

    @Test("ticks are round numbers, about five to an axis, labelled with the decimals needed")
    func niceTicks() {
        func labels(_ values: [Double], wholeNumbers: Bool = false) -> [String] {
            let axis = Axis(values: values, tickCount: 5, wholeNumbers: wholeNumbers)
            return axis.ticks.map(axis.label)
        }
        #expect(
            labels([0, 1000], wholeNumbers: true) == ["0", "200", "400", "600", "800", "1000"])
        #expect(labels([0, 3], wholeNumbers: true) == ["0", "1", "2", "3"])
        #expect(labels([0], wholeNumbers: true) == ["0", "1"])
        #expect(labels([2.1, 4.7]) == ["2", "3", "4", "5"])
        #expect(labels([0.02, 0.09]) == ["0.02", "0.04", "0.06", "0.08", "0.10"])
        #expect(labels([3.2]) == ["2.8", "3.0", "3.2", "3.4", "3.6"])
    }

    @Test("write(to:) publishes the SVG atomically")
    func write() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let plot = LossCurvePlot(records: records)

        try plot.write(to: scratch.file("loss.svg"))

        #expect(String(decoding: try scratch.read("loss.svg"), as: UTF8.self) == plot.svg())
        #expect(try scratch.contents() == ["loss.svg"])
        #expect(throws: ReportingError.self) { try plot.write(to: scratch.file("no/such/dir.svg")) }
    }
}
