import Foundation
import Testing

@testable import SwiftLMTraining

@Suite("Metrics log")
struct MetricsLogTests {
    func record(_ step: Int, validation: Double? = nil) -> MetricsRecord {
        MetricsRecord(
            step: step, loss: 5 - Double(step) / 8, validationLoss: validation,
            tokensPerSecond: 1000 + Double(step), learningRate: 0.001)
    }

    func logText(_ scratch: DataScratch) throws -> String {
        String(decoding: try scratch.read("run/metrics.jsonl"), as: UTF8.self)
    }

    @Test("each record is one line of JSON with sorted snake_case keys")
    func lineFormat() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }

        let log = try MetricsLog(directory: scratch.file("run"), resumingFrom: nil)
        try log.append(record(4))
        try log.append(record(8, validation: 4.25))

        #expect(
            try logText(scratch) == """
                {"learning_rate":0.001,"loss":4.5,"step":4,"tokens_per_second":1004}
                {"learning_rate":0.001,"loss":4,"step":8,"tokens_per_second":1008,"val_loss":4.25}

                """)
    }

    @Test("records read back as they were written")
    func readBack() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let records = (1...5).map { record($0, validation: $0 % 2 == 0 ? 4 : nil) }

        let log = try MetricsLog(directory: scratch.file("run"), resumingFrom: nil)
        for record in records { try log.append(record) }

        #expect(try MetricsLog.read(directory: scratch.file("run")) == records)
        #expect(try MetricsLog.read(directory: scratch.file("elsewhere")) == [])
    }

    @Test("resuming from step S drops the lines after S and keeps the rest byte for byte")
    func resume() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let run = scratch.file("run")
        do {
            let log = try MetricsLog(directory: run, resumingFrom: nil)
            for step in [10, 20, 30, 40] { try log.append(record(step)) }
        }
        let lines = try logText(scratch).split(separator: "\n")

        // The checkpoint of step 20 was the last saved: 30 and 40 are redone.
        let log = try MetricsLog(directory: run, resumingFrom: 20)
        #expect(try logText(scratch) == lines[0] + "\n" + lines[1] + "\n")
        try log.append(record(30, validation: 3))
        #expect(try MetricsLog.read(directory: run).map(\.step) == [10, 20, 30])
        #expect(try scratch.contents() == ["run"])
    }

    @Test("a fresh run replaces an earlier log")
    func freshRun() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let run = scratch.file("run")
        try MetricsLog(directory: run, resumingFrom: nil).append(record(1))

        _ = try MetricsLog(directory: run, resumingFrom: nil)

        #expect(try MetricsLog.read(directory: run) == [])
    }

    @Test("a last line cut off mid-write is ignored when reading and dropped on resume")
    func tornLine() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let run = scratch.file("run")
        try MetricsLog(directory: run, resumingFrom: nil).append(record(1))
        let whole = try scratch.read("run/metrics.jsonl")
        try scratch.write(
            whole + Array(#"{"learning_rate":0.001,"lo"#.utf8), named: "run/metrics.jsonl")

        #expect(try MetricsLog.read(directory: run) == [record(1)])
        let log = try MetricsLog(directory: run, resumingFrom: 5)
        #expect(try scratch.read("run/metrics.jsonl") == whole)
        try log.append(record(2))
        #expect(try MetricsLog.read(directory: run) == [record(1), record(2)])
    }

    @Test("a damaged line in the middle is an error naming its line")
    func malformed() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let text = """
            {"learning_rate":0.001,"loss":4.5,"step":4,"tokens_per_second":1004}
            {"learning_rate":0.001,"step":5,"tokens_per_second":1004}
            not json

            """
        let path = try scratch.write(Array(text.utf8), named: "metrics.jsonl")

        let error = #expect(throws: ReportingError.self) {
            try MetricsLog.read(directory: scratch.path)
        }
        #expect(error == .malformedRecord(path: path, line: 2, reason: "missing key 'loss'"))
        #expect(error?.description.contains("\n") == false)

        let lines = text.split(separator: "\n")
        try scratch.write(Array((lines[0] + "\n" + lines[2] + "\n").utf8), named: "metrics.jsonl")
        #expect(
            throws: ReportingError.malformedRecord(path: path, line: 2, reason: "not valid JSON")
        ) {
            try MetricsLog(directory: scratch.path, resumingFrom: 10)
        }
    }

    @Test("a diverged loss is logged as \"nan\" and read back as NaN")
    func nonFinite() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let log = try MetricsLog(directory: scratch.file("run"), resumingFrom: nil)
        try log.append(
            MetricsRecord(
                step: 3, loss: .nan, validationLoss: .infinity, tokensPerSecond: 1, learningRate: 0)
        )

        #expect(try logText(scratch).contains(#""loss":"nan""#))
        let back = try #require(try MetricsLog.read(directory: scratch.file("run")).first)
        #expect(back.loss.isNaN)
        #expect(back.validationLoss == .infinity)
    }
}
