import Foundation
import SwiftLMFormats

/// One logged training step: a line of `metrics.jsonl`.
///
/// The JSON keys are snake_case (`step`, `loss`, `val_loss`, `tokens_per_second`,
/// `learning_rate`) for the plotting scripts people already have; `val_loss` is present only
/// on steps where validation ran. A diverged run's NaN or infinite loss is written as the
/// strings "nan", "inf" or "-inf", which keeps every line valid JSON.
public struct MetricsRecord: Codable, Equatable, Sendable {
    public var step: Int
    /// Mean training loss of the step, in nats per token.
    public var loss: Double
    /// Mean loss over the validation batches, when computed at this step.
    public var validationLoss: Double?
    public var tokensPerSecond: Double
    public var learningRate: Double

    public init(
        step: Int, loss: Double, validationLoss: Double? = nil, tokensPerSecond: Double,
        learningRate: Double
    ) {
        self.step = step
        self.loss = loss
        self.validationLoss = validationLoss
        self.tokensPerSecond = tokensPerSecond
        self.learningRate = learningRate
    }

    enum CodingKeys: String, CodingKey {
        case step
        case loss
        case validationLoss = "val_loss"
        case tokensPerSecond = "tokens_per_second"
        case learningRate = "learning_rate"
    }
}

/// The metrics of a training run, one JSON object per line in `DIR/metrics.jsonl`.
///
/// A run can be killed after logging a step but before saving the checkpoint of that step;
/// resuming from the checkpoint then repeats those steps. So opening for a resume from step
/// `S` first drops every record after `S`, and the file never holds a step twice.
public final class MetricsLog {
    public static let fileName = "metrics.jsonl"

    public let path: String
    private let output: AppendingFileWriter

    /// Opens the log of the run in `directory`, creating the directory if needed.
    ///
    /// - Parameter step: the step of the checkpoint a resumed run starts from: records after
    ///   it are dropped (the file is rewritten atomically). `nil` for a fresh run, which
    ///   replaces any earlier log with an empty one.
    /// - Throws: ``ReportingError``; on resume, `malformedRecord` for a damaged line. A last
    ///   line without its line break, the trace of a run killed mid-write, is dropped rather
    ///   than refused.
    public init(directory: String, resumingFrom step: Int?) throws(ReportingError) {
        path = (directory.hasSuffix("/") ? directory : directory + "/") + Self.fileName
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .writeFailed(path: path, reason: "cannot create the directory")
        }

        // Keep the lines up to the resumed step, byte for byte.
        var kept: [UInt8] = []
        if let step {
            for (line, record) in try Self.lines(at: path) where record.step <= step {
                kept += line + [UInt8(ascii: "\n")]
            }
        }
        do throws(FileIOError) {
            try AtomicFileWriter.write(kept, to: path)
            output = try AppendingFileWriter(path: path)
        } catch {
            throw ReportingError(error)
        }
    }

    /// Appends one record as a line.
    public func append(_ record: MetricsRecord) throws(ReportingError) {
        let line: Data
        do {
            line = try Self.encoder.encode(record)
        } catch {
            // Every field is a number that the string strategy can always encode.
            preconditionFailure("a metrics record failed to encode: \(error)")
        }
        do throws(FileIOError) {
            try output.write(Array(line) + [UInt8(ascii: "\n")])
        } catch {
            throw ReportingError(error)
        }
    }

    /// The records of the log in `directory`, in file order; empty when there is no log.
    public static func read(directory: String) throws(ReportingError) -> [MetricsRecord] {
        let path = (directory.hasSuffix("/") ? directory : directory + "/") + fileName
        return try lines(at: path).map(\.record)
    }

    /// The complete lines of the log at `path` with their records; none when there is no log.
    /// A last line without a line break is left out: the run was killed while writing it.
    static func lines(
        at path: String
    ) throws(ReportingError) -> [(line: [UInt8], record: MetricsRecord)] {
        let mapping: MemoryMappedFile
        do throws(FileIOError) {
            mapping = try MemoryMappedFile(path: path)
        } catch .notFound {
            return []
        } catch {
            throw ReportingError(error)
        }

        var lines = mapping.bytes.split(
            separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        lines.removeLast()  // after the last line break: empty, or a torn line
        var result: [(line: [UInt8], record: MetricsRecord)] = []
        for (index, line) in lines.enumerated() where !line.isEmpty {
            do {
                result.append(
                    (Array(line), try decoder.decode(MetricsRecord.self, from: Data(line))))
            } catch {
                throw .malformedRecord(path: path, line: index + 1, reason: explain(error))
            }
        }
        return result
    }

    private static let nonFiniteNames = (positive: "inf", negative: "-inf", nan: "nan")

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: nonFiniteNames.positive, negativeInfinity: nonFiniteNames.negative,
            nan: nonFiniteNames.nan)
        return encoder
    }

    private static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: nonFiniteNames.positive, negativeInfinity: nonFiniteNames.negative,
            nan: nonFiniteNames.nan)
        return decoder
    }

    /// A short reason for a decoding failure; Foundation's own texts span lines.
    private static func explain(_ error: any Error) -> String {
        func field(_ path: [any CodingKey]) -> String {
            path.isEmpty ? "the line" : "'" + path.map(\.stringValue).joined(separator: ".") + "'"
        }
        switch error {
        case DecodingError.keyNotFound(let key, _):
            return "missing key '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context),
            DecodingError.valueNotFound(_, let context):
            return "\(field(context.codingPath)) has the wrong type"
        case DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty:
            return "\(field(context.codingPath)) is invalid"
        default:
            return "not valid JSON"
        }
    }
}
