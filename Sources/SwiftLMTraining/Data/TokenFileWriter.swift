import SwiftLMFormats

/// Writes a ``TokenFile`` as the tokens come, in constant memory, and publishes it atomically:
/// until ``finish()`` the destination is untouched, and a writer dropped without it leaves
/// nothing behind.
///
/// ```swift
/// let writer = try TokenFileWriter(path: "corpus.tokens", vocabSize: tokenizer.vocabSize)
/// try writer.append(tokenizer.encode(text))
/// try writer.finish()
/// ```
public final class TokenFileWriter {
    public let path: String
    public let vocabSize: Int
    /// The tokens appended so far.
    public var tokenCount: Int { writtenCount + pending.count }

    private var writtenCount = 0

    private let output: AtomicFileWriter
    /// Ids not yet written, already little-endian.
    private var pending: [UInt32] = []
    /// Ids gathered before a write: 1 MiB of them.
    private let flushCount = 1 << 18

    /// Starts a token file at `path`, which is only created by ``finish()``.
    ///
    /// - Precondition: `vocabSize` is in `1...TokenFile.maxVocabSize`.
    public init(path: String, vocabSize: Int) throws(TokenFileError) {
        precondition(
            vocabSize >= 1 && vocabSize <= TokenFile.maxVocabSize,
            "vocabSize \(vocabSize) outside 1...\(TokenFile.maxVocabSize)")
        self.path = path
        self.vocabSize = vocabSize
        do throws(FileIOError) {
            output = try AtomicFileWriter(path: path)
        } catch {
            throw TokenFileError(error)
        }
        pending.reserveCapacity(flushCount)

        // A placeholder header keeps the ids at their final offset; finish() fills in the count.
        try write(TokenFile.header(vocabSize: vocabSize, tokenCount: 0))
    }

    /// Appends token ids.
    ///
    /// - Precondition: every id is in `0..<vocabSize`: ids come from a tokenizer of that
    ///   vocabulary, so one outside it is a bug, not bad input.
    public func append(_ ids: some Sequence<Int>) throws(TokenFileError) {
        for id in ids {
            precondition(id >= 0 && id < vocabSize, "token id \(id) outside 0..<\(vocabSize)")
            pending.append(UInt32(id).littleEndian)
            if pending.count == flushCount { try flush() }
        }
    }

    /// Writes the remaining ids and the final header, flushes the file to disk and renames it
    /// into place. Returns the number of tokens written.
    @discardableResult
    public func finish() throws(TokenFileError) -> Int {
        try flush()
        let header = TokenFile.header(vocabSize: vocabSize, tokenCount: tokenCount)
        do throws(FileIOError) {
            try output.write(header, at: 0)
            try output.commit()
        } catch {
            throw TokenFileError(error)
        }
        return tokenCount
    }

    /// Abandons the file: the temporary file is removed and `path` is left as it was.
    public func discard() {
        output.discard()
    }

    /// Writes a whole token file at once.
    public static func write(
        _ ids: some Sequence<Int>, vocabSize: Int, to path: String
    ) throws(TokenFileError) {
        let writer = try TokenFileWriter(path: path, vocabSize: vocabSize)
        try writer.append(ids)
        try writer.finish()
    }

    private func flush() throws(TokenFileError) {
        guard !pending.isEmpty else { return }
        try write(pending)
        writtenCount += pending.count
        pending.removeAll(keepingCapacity: true)
    }

    private func write(_ elements: [some BitwiseCopyable]) throws(TokenFileError) {
        do throws(FileIOError) {
            try output.write(elements)
        } catch {
            throw TokenFileError(error)
        }
    }
}
