// Errors of training data: token files, corpus tokenization, datasets.
//
// Every `description` is one line naming the problem, the field or path, the bad value and what
// is allowed. Paths are shown with control characters escaped so a hostile name cannot break it.

import SwiftLMFormats

/// Why a token file could not be read or written.
public enum TokenFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing exists at the path.
    case fileNotFound(path: String)

    /// The path exists but could not be opened, inspected or memory-mapped.
    case unreadable(path: String, reason: String)

    /// Writing the file failed; the destination is left as it was.
    case writeFailed(path: String, reason: String)

    /// The file is shorter than the header.
    case truncatedHeader(path: String, fileSize: Int, headerSize: Int)

    /// The first eight bytes are not ``TokenFile/magic``; `found` holds them in hex.
    case notTokenFile(path: String, found: String)

    /// The version field holds a version this reader does not understand.
    case unsupportedVersion(path: String, version: UInt32, supported: UInt32)

    /// The header's vocabulary size is outside `1...TokenFile.maxVocabSize`.
    case invalidVocabSize(path: String, vocabSize: UInt32, maximum: Int)

    /// The header's token count does not match the bytes after the header.
    case sizeMismatch(path: String, tokenCount: UInt64, fileSize: Int)

    /// A token id is not below the header's vocabulary size.
    case tokenOutOfRange(path: String, index: Int, id: UInt32, vocabSize: Int)

    /// A file-layer error in the token file's words.
    init(_ error: FileIOError) {
        switch error {
        case .notFound(let path): self = .fileNotFound(path: path)
        case .unreadable(let path, let reason): self = .unreadable(path: path, reason: reason)
        case .writeFailed(let path, let reason): self = .writeFailed(path: path, reason: reason)
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "token file not found: \(oneLine(path))"
        case .unreadable(let path, let reason):
            return "cannot read token file \(oneLine(path)): \(oneLine(reason))"
        case .writeFailed(let path, let reason):
            return "cannot write token file \(oneLine(path)): \(oneLine(reason))"
        case .truncatedHeader(let path, let fileSize, let headerSize):
            return "token file \(oneLine(path)): truncated header: file has \(fileSize) bytes, "
                + "the header needs \(headerSize)"
        case .notTokenFile(let path, let found):
            return "not a token file (magic \(found) at offset 0, expected "
                + "\"\(TokenFile.magic)\"): \(oneLine(path))"
        case .unsupportedVersion(let path, let version, let supported):
            return "token file \(oneLine(path)): unsupported version \(version) at offset 8 "
                + "(supported: \(supported))"
        case .invalidVocabSize(let path, let vocabSize, let maximum):
            return "token file \(oneLine(path)): vocabSize is \(vocabSize) at offset 12, "
                + "expected 1...\(maximum)"
        case .sizeMismatch(let path, let tokenCount, let fileSize):
            let needed = TokenFile.fileSize(tokenCount: tokenCount).map(String.init) ?? "over 2^64"
            return "token file \(oneLine(path)): tokenCount is \(tokenCount) at offset 16, "
                + "which needs \(needed) bytes, but the file has \(fileSize)"
        case .tokenOutOfRange(let path, let index, let id, let vocabSize):
            return "token file \(oneLine(path)): token \(index) is \(id), expected "
                + "0..<\(vocabSize) (the header's vocabSize)"
        }
    }
}

/// Why a corpus could not be tokenized into a token file.
public enum CorpusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing exists at the corpus path.
    case pathNotFound(path: String)

    /// A corpus file or directory could not be read, or the path is neither a file nor a
    /// directory.
    case unreadable(path: String, reason: String)

    /// The corpus produced no tokens: no files, or only empty ones.
    case emptyCorpus(path: String, fileCount: Int)

    /// The corpus produced fewer tokens than one training window needs.
    case tooSmall(path: String, tokenCount: Int, minimum: Int)

    /// Writing the token file failed.
    case output(TokenFileError)

    public var description: String {
        switch self {
        case .pathNotFound(let path):
            return "corpus not found: \(oneLine(path))"
        case .unreadable(let path, let reason):
            return "cannot read corpus \(oneLine(path)): \(oneLine(reason))"
        case .emptyCorpus(let path, let fileCount):
            return "empty corpus: \(oneLine(path)) (\(fileCount) files) holds no text to "
                + "tokenize"
        case .tooSmall(let path, let tokenCount, let minimum):
            return "corpus too small: \(oneLine(path)) gives \(tokenCount) tokens, one training "
                + "window needs at least \(minimum); add text or shorten the sequence length"
        case .output(let error):
            return error.description
        }
    }
}

/// Why a token file cannot serve as a training dataset.
public enum TokenDatasetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The validation fraction is outside the open interval (0, 1).
    case invalidValidationFraction(Double)

    /// The training or validation part is shorter than one window of `seqLen + 1` tokens.
    case partTooSmall(part: String, tokenCount: Int, required: Int, fileTokenCount: Int)

    public var description: String {
        switch self {
        case .invalidValidationFraction(let fraction):
            return "validationFraction is \(fraction), expected a value between 0 and 1 "
                + "(exclusive)"
        case .partTooSmall(let part, let tokenCount, let required, let fileTokenCount):
            return "the \(part) part holds \(tokenCount) of the file's \(fileTokenCount) tokens, "
                + "one window needs \(required) (seqLen + 1); use a larger corpus, a shorter "
                + "seqLen or another validationFraction"
        }
    }
}
