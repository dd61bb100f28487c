import Foundation
import SwiftLMTestSupport
import SwiftLMTokenizers
import Testing

@testable import SwiftLMTraining

/// A fresh directory for one test's files, removed by `remove()`; shared by the data and
/// reporting tests.
struct DataScratch {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "swiftlm-data-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// The path of `name` in the directory.
    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ bytes: [UInt8], named name: String) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: file(name)))
        return file(name)
    }

    func read(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: file(name))))
    }

    /// Names in the directory, sorted.
    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }

    /// Writes a token file of `ids` and opens it.
    func tokenFile(
        _ ids: [Int], vocabSize: Int, named name: String = "corpus.tokens"
    ) throws
        -> TokenFile
    {
        try TokenFileWriter.write(ids, vocabSize: vocabSize, to: file(name))
        return try TokenFile(path: file(name))
    }
}

/// A byte-level tokenizer: ids 0..<256 are the bytes, 256 is BOS, 257 is EOS (each only when
/// asked for). Its one merge's result is not in the vocabulary, so every byte stays a token.
func byteTokenizer(bos: Bool = true, eos: Bool = true) throws -> Tokenizer {
    var vocabulary = TokenizerVocabulary(
        model: "gpt2", pre: "default", tokens: TinyModel.byteTokens + ["<|bos|>", "<|eos|>"],
        tokenTypes: [Int](repeating: 1, count: 256) + [3, 3], merges: ["h e"],
        bosTokenID: 256, eosTokenID: 257, addBOS: false)

    // Set after init: a nil there would mean "absent from the file" and take a default.
    if !bos { vocabulary.bosTokenID = nil }
    if !eos { vocabulary.eosTokenID = nil }
    return try Tokenizer(vocabulary: vocabulary)
}

/// A token file header with chosen fields, for building broken files.
func tokenHeader(
    magic: String = "SLMTOKS1", version: UInt32 = 1, vocabSize: UInt32, tokenCount: UInt64
) -> [UInt8] {
    var bytes = Array(magic.utf8)
    withUnsafeBytes(of: version.littleEndian) { bytes += $0 }
    withUnsafeBytes(of: vocabSize.littleEndian) { bytes += $0 }
    withUnsafeBytes(of: tokenCount.littleEndian) { bytes += $0 }
    return bytes
}

/// Token ids as little-endian UInt32 bytes.
func tokenBytes(_ ids: [UInt32]) -> [UInt8] {
    ids.flatMap { id in withUnsafeBytes(of: id.littleEndian) { Array($0) } }
}

@Suite("Token file")
struct TokenFileTests {
    @Test("written tokens read back with the same ids, count and vocabulary size")
    func roundTrip() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let ids = [0, 5, 1023, 17, 1023, 0]

        let file = try scratch.tokenFile(ids, vocabSize: 1024)

        #expect(file.vocabSize == 1024)
        #expect(file.tokenCount == ids.count)
        #expect(file.tokens(0..<ids.count) == ids)
        #expect(file[2] == 1023)
        #expect(file.tokens(2..<4) == [1023, 17])
    }

    @Test("the file is the documented header followed by little-endian UInt32 ids")
    func layout() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }

        try TokenFileWriter.write([1, 258], vocabSize: 300, to: scratch.file("t.tokens"))

        let expected =
            Array("SLMTOKS1".utf8) + [1, 0, 0, 0] + [44, 1, 0, 0] + [2, 0, 0, 0, 0, 0, 0, 0]
            + [1, 0, 0, 0] + [2, 1, 0, 0]
        #expect(try scratch.read("t.tokens") == expected)
    }

    @Test("a writer flushes in blocks and still counts every token")
    func manyTokens() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let ids = (0..<300_001).map { $0 % 50_000 }

        let writer = try TokenFileWriter(path: scratch.file("big.tokens"), vocabSize: 50_000)
        for chunk in stride(from: 0, to: ids.count, by: 70_000) {
            try writer.append(ids[chunk..<min(chunk + 70_000, ids.count)])
        }
        #expect(writer.tokenCount == ids.count)
        #expect(try writer.finish() == ids.count)

        let file = try TokenFile(path: scratch.file("big.tokens"))
        #expect(file.tokenCount == ids.count)
        #expect(file.tokens(0..<ids.count) == ids)
    }

    @Test("a file of no tokens is valid")
    func empty() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }

        let file = try scratch.tokenFile([], vocabSize: 10)

        #expect(file.tokenCount == 0)
        #expect(file.tokens(0..<0) == [])
    }

    @Test("nothing is published until finish, and a discarded writer leaves no file")
    func atomicWrite() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let path = scratch.file("t.tokens")
        try scratch.write(Array("old".utf8), named: "t.tokens")

        let writer = try TokenFileWriter(path: path, vocabSize: 10)
        try writer.append([1, 2, 3])
        #expect(try scratch.read("t.tokens") == Array("old".utf8))
        writer.discard()
        #expect(try scratch.contents() == ["t.tokens"])

        do {
            let dropped = try TokenFileWriter(path: scratch.file("u.tokens"), vocabSize: 10)
            try dropped.append([4])
        }
        #expect(try scratch.contents() == ["t.tokens"])
    }

    @Test("writing into a missing directory is a write error naming the path")
    func missingDirectory() throws {
        let path = NSTemporaryDirectory() + "swiftlm-no-such-dir-\(UUID().uuidString)/t.tokens"
        let reason = "open: No such file or directory"
        #expect(throws: TokenFileError.writeFailed(path: path, reason: reason)) {
            try TokenFileWriter.write([1], vocabSize: 10, to: path)
        }
    }
}

@Suite("Token file: corrupt and hostile files")
struct TokenFileCorruptionTests {
    /// The error opening `bytes` as a token file throws; nil when it opens.
    func openingError(_ bytes: [UInt8]) throws -> TokenFileError? {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let path = try scratch.write(bytes, named: "bad.tokens")
        do {
            _ = try TokenFile(path: path)
            return nil
        } catch {
            // Every message is one line naming the file.
            #expect(!error.description.contains("\n"))
            #expect(error.description.contains(path))
            return error.withPath("bad.tokens")
        }
    }

    @Test("a missing file is fileNotFound")
    func missing() {
        let path = NSTemporaryDirectory() + "swiftlm-missing-\(UUID().uuidString).tokens"
        #expect(throws: TokenFileError.fileNotFound(path: path)) { try TokenFile(path: path) }
    }

    @Test("a directory is unreadable, not a crash")
    func directory() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        #expect(throws: TokenFileError.unreadable(path: scratch.path, reason: "not a regular file"))
        {
            try TokenFile(path: scratch.path)
        }
    }

    @Test("a file shorter than the header is a truncated header")
    func shortHeader() throws {
        #expect(
            try openingError([])
                == .truncatedHeader(path: "bad.tokens", fileSize: 0, headerSize: 24))
        let partial = Array(tokenHeader(vocabSize: 10, tokenCount: 0).prefix(23))
        #expect(
            try openingError(partial)
                == .truncatedHeader(path: "bad.tokens", fileSize: 23, headerSize: 24))
    }

    @Test("wrong magic bytes are reported in hex")
    func wrongMagic() throws {
        let error = try openingError(
            tokenHeader(magic: "GGUF\u{3}\0\0\0", vocabSize: 10, tokenCount: 0))
        #expect(error == .notTokenFile(path: "bad.tokens", found: "0x4747554603000000"))
    }

    @Test("an unknown version is refused")
    func version() throws {
        let error = try openingError(tokenHeader(version: 2, vocabSize: 10, tokenCount: 0))
        #expect(error == .unsupportedVersion(path: "bad.tokens", version: 2, supported: 1))
    }

    @Test("a vocabulary size of zero or above the cap is refused")
    func vocabSize() throws {
        for vocabSize: UInt32 in [0, 1 << 24 + 1, .max] {
            let error = try openingError(tokenHeader(vocabSize: vocabSize, tokenCount: 0))
            #expect(
                error
                    == .invalidVocabSize(path: "bad.tokens", vocabSize: vocabSize, maximum: 1 << 24)
            )
        }
    }

    @Test("a token count that disagrees with the file size is a size mismatch")
    func sizeMismatch() throws {
        let ids = tokenBytes([1, 2, 3])

        // Truncated ids, a trailing extra byte, and counts whose byte size overflows 64 bits.
        for (count, extra) in [(UInt64(4), [UInt8]()), (3, [0]), (.max, []), (1 << 62, [])] {
            let error = try openingError(
                tokenHeader(vocabSize: 10, tokenCount: count) + ids + extra)
            #expect(
                error
                    == .sizeMismatch(
                        path: "bad.tokens", tokenCount: count, fileSize: 36 + extra.count))
        }
        #expect(
            TokenFileError.sizeMismatch(path: "f", tokenCount: .max, fileSize: 36).description
                == "token file f: tokenCount is 18446744073709551615 at offset 16, which needs "
                + "over 2^64 bytes, but the file has 36")
    }

    @Test("an id at or above the vocabulary size is refused with its index")
    func idOutOfRange() throws {
        // Far past the first scanning block, so the block search is exercised.
        var ids = [UInt32](repeating: 7, count: 70_000)
        ids[68_123] = 10
        let error = try openingError(
            tokenHeader(vocabSize: 10, tokenCount: 70_000) + tokenBytes(ids))
        #expect(error == .tokenOutOfRange(path: "bad.tokens", index: 68_123, id: 10, vocabSize: 10))

        let huge = try openingError(tokenHeader(vocabSize: 10, tokenCount: 1) + tokenBytes([.max]))
        #expect(huge == .tokenOutOfRange(path: "bad.tokens", index: 0, id: .max, vocabSize: 10))
    }
}

@Suite("Corpus tokenization")
struct CorpusTokenizerTests {
    @Test("a text file becomes its tokens followed by EOS")
    func singleFile() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let tokenizer = try byteTokenizer()
        let text = "hello world\nsecond line\n"
        let corpus = try scratch.write(Array(text.utf8), named: "corpus.txt")

        let summary = try CorpusTokenizer.tokenize(
            corpusPath: corpus, tokenizer: tokenizer, outputPath: scratch.file("out.tokens"))

        let file = try TokenFile(path: scratch.file("out.tokens"))
        let expected = tokenizer.encode(text, addSpecial: false) + [257]
        #expect(file.tokens(0..<file.tokenCount) == expected)
        #expect(file.vocabSize == tokenizer.vocabSize)
        #expect(summary.files == [corpus])
        #expect(summary.byteCount == text.utf8.count)
        #expect(summary.tokenCount == expected.count)
        #expect(summary.invalidUTF8Count == 0)
    }

    @Test("a directory's visible regular files are read in byte order of their names")
    func directory() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let tokenizer = try byteTokenizer()
        let corpus = scratch.file("corpus")
        try FileManager.default.createDirectory(
            atPath: corpus + "/sub", withIntermediateDirectories: true)
        for (name, text) in [
            ("b.txt", "bee"), ("a.txt", "ay"), ("B.txt", "big"), (".hidden", "no"),
        ] {
            try scratch.write(Array(text.utf8), named: "corpus/" + name)
        }
        try scratch.write(Array("nested".utf8), named: "corpus/sub/c.txt")

        let summary = try CorpusTokenizer.tokenize(
            corpusPath: corpus, tokenizer: tokenizer, outputPath: scratch.file("out.tokens"))

        // "B" (0x42) sorts before "a" (0x61) by bytes, whatever the locale.
        #expect(summary.files == ["B.txt", "a.txt", "b.txt"].map { corpus + "/" + $0 })
        let file = try TokenFile(path: scratch.file("out.tokens"))
        let expected = ["big", "ay", "bee"].flatMap {
            tokenizer.encode($0, addSpecial: false) + [257]
        }
        #expect(file.tokens(0..<file.tokenCount) == expected)
    }

    @Test("a token file written into the corpus directory is not read back as text")
    func outputInsideCorpus() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let corpus = scratch.file("corpus")
        try FileManager.default.createDirectory(atPath: corpus, withIntermediateDirectories: true)
        try scratch.write(Array("text".utf8), named: "corpus/a.txt")
        let output = corpus + "/corpus.tokens"

        let first = try CorpusTokenizer.tokenize(
            corpusPath: corpus, tokenizer: try byteTokenizer(), outputPath: output)
        let second = try CorpusTokenizer.tokenize(
            corpusPath: corpus + "/", tokenizer: try byteTokenizer(), outputPath: output)

        #expect(second.files == [corpus + "/a.txt"])
        #expect(second.tokenCount == first.tokenCount)
    }

    @Test("without an EOS token, BOS starts every document; with neither, nothing separates")
    func separators() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let corpus = scratch.file("corpus")
        try FileManager.default.createDirectory(atPath: corpus, withIntermediateDirectories: true)
        try scratch.write(Array("one".utf8), named: "corpus/1.txt")
        try scratch.write([], named: "corpus/2.txt")
        try scratch.write(Array("two".utf8), named: "corpus/3.txt")

        let bosOnly = try byteTokenizer(eos: false)
        try CorpusTokenizer.tokenize(
            corpusPath: corpus, tokenizer: bosOnly, outputPath: scratch.file("bos.tokens"))
        let bosFile = try TokenFile(path: scratch.file("bos.tokens"))
        #expect(
            bosFile.tokens(0..<bosFile.tokenCount) == [256] + Array("one".utf8).map(Int.init) + [
                256
            ] + Array("two".utf8).map(Int.init))

        let plain = try byteTokenizer(bos: false, eos: false)
        try CorpusTokenizer.tokenize(
            corpusPath: corpus, tokenizer: plain, outputPath: scratch.file("plain.tokens"))
        let plainFile = try TokenFile(path: scratch.file("plain.tokens"))
        #expect(plainFile.tokens(0..<plainFile.tokenCount) == Array("onetwo".utf8).map(Int.init))
    }

    @Test("progress starts at zero, never goes back and ends at the total")
    func progress() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let corpus = scratch.file("corpus")
        try FileManager.default.createDirectory(atPath: corpus, withIntermediateDirectories: true)
        try scratch.write(Array("first file\n".utf8), named: "corpus/a.txt")
        try scratch.write(Array("second\n".utf8), named: "corpus/b.txt")

        var reports: [CorpusTokenizer.Progress] = []
        try CorpusTokenizer.tokenize(
            corpusPath: corpus, tokenizer: try byteTokenizer(),
            outputPath: scratch.file("out.tokens")
        ) { reports.append($0) }

        #expect(reports.first == .init(bytesDone: 0, totalBytes: 18))
        #expect(reports.last == .init(bytesDone: 18, totalBytes: 18))
        #expect(zip(reports, reports.dropFirst()).allSatisfy { $0.bytesDone <= $1.bytesDone })
    }

    @Test("invalid UTF-8 is replaced by U+FFFD and counted")
    func invalidUTF8() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let tokenizer = try byteTokenizer()
        let corpus = try scratch.write(
            Array("ok ".utf8) + [0xFF, 0xC3] + Array(" end".utf8), named: "bad.txt")

        let summary = try CorpusTokenizer.tokenize(
            corpusPath: corpus, tokenizer: tokenizer, outputPath: scratch.file("out.tokens"))

        #expect(summary.invalidUTF8Count == 2)
        let file = try TokenFile(path: scratch.file("out.tokens"))
        let expected = tokenizer.encode("ok \u{FFFD}\u{FFFD} end", addSpecial: false) + [257]
        #expect(file.tokens(0..<file.tokenCount) == expected)
    }

    @Test("pieces end after a line break, or before a character the limit would split")
    func pieceEnds() {
        let text = Array("ab\ncd\néé".utf8)  // é is two bytes: C3 A9
        text.withUnsafeBytes { bytes in
            #expect(CorpusTokenizer.pieceEnd(bytes, from: 0, limit: 5) == 3)
            #expect(CorpusTokenizer.pieceEnd(bytes, from: 0, limit: 7) == 6)
            // From 6: "éé" with a limit of 3 would split the second é after its first byte.
            #expect(CorpusTokenizer.pieceEnd(bytes, from: 6, limit: 3) == 8)
            #expect(CorpusTokenizer.pieceEnd(bytes, from: 6, limit: 1) == 7)
            #expect(CorpusTokenizer.pieceEnd(bytes, from: 3, limit: 100) == 10)
        }
    }

    @Test("a missing corpus path is refused and writes nothing")
    func missingPath() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let path = scratch.file("nothing-here")
        #expect(throws: CorpusError.pathNotFound(path: path)) {
            try CorpusTokenizer.tokenize(
                corpusPath: path, tokenizer: try byteTokenizer(), outputPath: scratch.file("o"))
        }
        #expect(try scratch.contents() == [])
    }

    @Test("an empty file or a directory of no files is an empty corpus, and writes nothing")
    func emptyCorpus() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let tokenizer = try byteTokenizer()
        let emptyFile = try scratch.write([], named: "empty.txt")
        let emptyDirectory = scratch.file("dir")
        try FileManager.default.createDirectory(
            atPath: emptyDirectory, withIntermediateDirectories: true)

        #expect(throws: CorpusError.emptyCorpus(path: emptyFile, fileCount: 1)) {
            try CorpusTokenizer.tokenize(
                corpusPath: emptyFile, tokenizer: tokenizer, outputPath: scratch.file("o"))
        }
        #expect(throws: CorpusError.emptyCorpus(path: emptyDirectory, fileCount: 0)) {
            try CorpusTokenizer.tokenize(
                corpusPath: emptyDirectory, tokenizer: tokenizer, outputPath: scratch.file("o"))
        }
        #expect(try scratch.contents() == ["dir", "empty.txt"])
    }

    @Test("a corpus shorter than the caller's minimum is too small, and writes nothing")
    func tooSmall() throws {
        let scratch = try DataScratch()
        defer { scratch.remove() }
        let corpus = try scratch.write(Array("tiny".utf8), named: "tiny.txt")

        let error = #expect(throws: CorpusError.self) {
            try CorpusTokenizer.tokenize(
                corpusPath: corpus, tokenizer: try byteTokenizer(), outputPath: scratch.file("o"),
                minimumTokenCount: 129)
        }
        #expect(error == .tooSmall(path: corpus, tokenCount: 5, minimum: 129))
        #expect(error?.description.contains("at least 129") == true)
        #expect(try scratch.contents() == ["tiny.txt"])
    }
}

extension TokenFileError {
    /// The same error with its path replaced, so expectations need not know temporary paths.
    func withPath(_ path: String) -> TokenFileError {
        switch self {
        case .fileNotFound: .fileNotFound(path: path)
        case .unreadable(_, let reason): .unreadable(path: path, reason: reason)
        case .writeFailed(_, let reason): .writeFailed(path: path, reason: reason)
        case .truncatedHeader(_, let fileSize, let headerSize):
            .truncatedHeader(path: path, fileSize: fileSize, headerSize: headerSize)
        case .notTokenFile(_, let found): .notTokenFile(path: path, found: found)
        case .unsupportedVersion(_, let version, let supported):
            .unsupportedVersion(path: path, version: version, supported: supported)
        case .invalidVocabSize(_, let vocabSize, let maximum):
            .invalidVocabSize(path: path, vocabSize: vocabSize, maximum: maximum)
        case .sizeMismatch(_, let tokenCount, let fileSize):
            .sizeMismatch(path: path, tokenCount: tokenCount, fileSize: fileSize)
        case .tokenOutOfRange(_, let index, let id, let vocabSize):
            .tokenOutOfRange(path: path, index: index, id: id, vocabSize: vocabSize)
        }
    }
}
