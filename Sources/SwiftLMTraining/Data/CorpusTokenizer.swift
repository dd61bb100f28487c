import Foundation
import SwiftLMFormats
import SwiftLMTokenizers

/// Turns a text corpus into a ``TokenFile``.
///
/// A corpus is one text file, or a directory whose regular files (names starting with "." are
/// skipped; subdirectories are not entered) are taken in byte order of their names, so the same
/// directory always gives the same token file. Each file is one document. When the tokenizer has
/// an EOS token, it follows every document, which teaches the model where text ends; without one
/// but with a BOS token, BOS starts every document instead.
///
/// Invalid UTF-8 is decoded lossily: each bad sequence becomes U+FFFD, and the summary counts
/// them so the caller can warn.
///
/// Known limit: a file is tokenized in pieces of about 1 MiB cut after a line break (or, in a
/// line longer than that, at a character boundary), which bounds memory and paces the progress
/// callback. A piece is encoded as if it began a text, so at a cut the tokens can differ from
/// encoding the whole file at once; with a SentencePiece tokenizer the line after each cut gains
/// the leading "▁" of a text start.
public enum CorpusTokenizer {
    /// Bytes of text encoded per call to the tokenizer.
    public static let pieceSize = 1 << 20

    /// How far the tokenization has come, in bytes of corpus text.
    public struct Progress: Sendable, Equatable {
        public var bytesDone: Int
        public var totalBytes: Int
    }

    /// What was tokenized.
    public struct Summary: Sendable, Equatable {
        /// The files read, in the order their tokens appear.
        public var files: [String]
        public var byteCount: Int
        public var tokenCount: Int
        /// Invalid UTF-8 sequences replaced by U+FFFD.
        public var invalidUTF8Count: Int
    }

    /// Tokenizes the corpus at `corpusPath` into a token file at `outputPath`.
    ///
    /// - Parameters:
    ///   - outputPath: where the token file goes; if it lies in the corpus directory, an
    ///     earlier file there is not read as part of the corpus.
    ///   - minimumTokenCount: the fewest tokens the caller can train on: ``TokenDataset``
    ///     needs `seqLen + 1` in each part, so about `(seqLen + 1) / validationFraction`.
    ///   - parseSpecial: whether special tokens written in the text (such as `<|endoftext|>`
    ///     between stories) become single tokens. Off by default: plain text that happens to
    ///     contain a control token's spelling should stay plain text.
    ///   - progress: called after each piece, and once at the start with zero bytes done.
    /// - Throws: ``CorpusError``; on any error no token file is written.
    @discardableResult
    public static func tokenize(
        corpusPath: String, tokenizer: Tokenizer, outputPath: String, minimumTokenCount: Int = 1,
        parseSpecial: Bool = false, progress: (Progress) -> Void = { _ in }
    ) throws(CorpusError) -> Summary {
        // A token file written into the corpus directory by an earlier run is not text.
        let output = FileStatus.resolvedPath(outputPath)
        let files = try corpusFiles(at: corpusPath).filter {
            output == nil || FileStatus.resolvedPath($0.path) != output
        }
        let totalBytes = files.reduce(0) { $0 + $1.size }
        var summary = Summary(
            files: files.map(\.path), byteCount: totalBytes, tokenCount: 0, invalidUTF8Count: 0)

        // Encode every document into the writer; it publishes nothing until finish().
        let writer: TokenFileWriter
        do {
            writer = try TokenFileWriter(path: outputPath, vocabSize: tokenizer.vocabSize)
        } catch {
            throw .output(error)
        }
        var bytesDone = 0
        progress(Progress(bytesDone: 0, totalBytes: totalBytes))
        for file in files where file.size > 0 {
            // One file mapped at a time: a directory of many files stays far from the
            // system's limit on mappings.
            let mapping = try map(file.path)
            do {
                try encodeDocument(
                    mapping.bytes, tokenizer: tokenizer, parseSpecial: parseSpecial, into: writer,
                    invalidUTF8Count: &summary.invalidUTF8Count
                ) { pieceBytes in
                    // A file that grew since it was measured must not push past 100%.
                    bytesDone = min(bytesDone + pieceBytes, totalBytes)
                    progress(Progress(bytesDone: bytesDone, totalBytes: totalBytes))
                }
            } catch {
                throw .output(error)
            }
        }
        summary.tokenCount = writer.tokenCount

        // A corpus that cannot train is refused before it is published.
        guard summary.tokenCount > 0 else {
            writer.discard()
            throw .emptyCorpus(path: corpusPath, fileCount: files.count)
        }
        guard summary.tokenCount >= minimumTokenCount else {
            writer.discard()
            throw .tooSmall(
                path: corpusPath, tokenCount: summary.tokenCount, minimum: minimumTokenCount)
        }
        do {
            try writer.finish()
        } catch {
            throw .output(error)
        }
        return summary
    }

    /// The files of a corpus with their sizes: the path itself, or the visible regular files
    /// of a directory sorted by the bytes of their names.
    static func corpusFiles(at path: String) throws(CorpusError) -> [(path: String, size: Int)] {
        guard let status = FileStatus(path: path) else { throw .pathNotFound(path: path) }
        switch status.kind {
        case .other:
            throw .unreadable(path: path, reason: "neither a regular file nor a directory")
        case .regularFile:
            return [(path, status.size)]
        case .directory:
            return try directoryFiles(at: path)
        }
    }

    private static func directoryFiles(
        at directory: String
    ) throws(CorpusError) -> [(path: String, size: Int)] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .unreadable(path: directory, reason: "cannot list the directory")
        }
        let base = directory.hasSuffix("/") ? directory : directory + "/"

        // Byte order, not the locale's, so every machine reads the files in the same order.
        return
            names
            .filter { !$0.hasPrefix(".") }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .compactMap { name in
                guard let status = FileStatus(path: base + name), status.kind == .regularFile
                else { return nil }
                return (base + name, status.size)
            }
    }

    private static func map(_ file: String) throws(CorpusError) -> MemoryMappedFile {
        do throws(FileIOError) {
            return try MemoryMappedFile(path: file)
        } catch {
            switch error {
            case .notFound:
                throw .pathNotFound(path: file)
            case .unreadable(_, let reason), .writeFailed(_, let reason):
                throw .unreadable(path: file, reason: reason)
            }
        }
    }

    /// Encodes one document piece by piece, with the document separator, into `writer`.
    private static func encodeDocument(
        _ bytes: UnsafeRawBufferPointer, tokenizer: Tokenizer, parseSpecial: Bool,
        into writer: TokenFileWriter, invalidUTF8Count: inout Int, pieceDone: (Int) -> Void
    ) throws(TokenFileError) {
        let separator = tokenizer.eosTokenID ?? tokenizer.bosTokenID
        let separatorFollows = tokenizer.eosTokenID != nil
        if let separator, !separatorFollows { try writer.append([separator]) }

        var start = 0
        while start < bytes.count {
            let end = pieceEnd(bytes, from: start, limit: pieceSize)
            let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            let text = decodeLossily(piece, invalidCount: &invalidUTF8Count)
            try writer.append(tokenizer.encode(text, addSpecial: false, parseSpecial: parseSpecial))
            pieceDone(end - start)
            start = end
        }

        if let separator, separatorFollows { try writer.append([separator]) }
    }

    /// Where the piece starting at `start` ends: after the last line break within `limit`
    /// bytes, else before the character that the limit would split.
    static func pieceEnd(_ bytes: UnsafeRawBufferPointer, from start: Int, limit: Int) -> Int {
        let hardEnd = min(start + limit, bytes.count)
        guard hardEnd < bytes.count else { return hardEnd }

        if let newline = bytes[start..<hardEnd].lastIndex(of: UInt8(ascii: "\n")) {
            return newline + 1
        }

        // UTF-8 continuation bytes are 0b10xxxxxx; a character starts at any other byte, and
        // one never spans more than 4 bytes.
        var end = hardEnd
        while end > start && end > hardEnd - 4 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return end > start ? end : hardEnd
    }

    /// The text of UTF-8 bytes, each invalid sequence replaced by U+FFFD and counted.
    static func decodeLossily(_ bytes: UnsafeRawBufferPointer, invalidCount: inout Int) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }

        // Count the bad sequences the way the lossy decoder replaces them.
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        decoding: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .error: invalidCount += 1
            case .emptyInput: break decoding
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
