import SwiftLMFormats

/// A tokenized corpus: written once by ``TokenFileWriter``, then memory-mapped by every
/// training run over it, so a run starts without re-tokenizing and shares the page cache.
///
/// Layout, every integer little-endian:
///
/// | offset | bytes | field |
/// |---|---|---|
/// | 0 | 8 | magic, the ASCII text `SLMTOKS1` |
/// | 8 | 4 | `version`, UInt32, 1 |
/// | 12 | 4 | `vocabSize`, UInt32 |
/// | 16 | 8 | `tokenCount`, UInt64 |
/// | 24 | 4 × `tokenCount` | token ids, UInt32 each, every one below `vocabSize` |
///
/// The ids start at offset 24, a multiple of 4, so the mapped ids are naturally aligned.
///
/// Opening checks the whole file (header, size, every id), so a reader never has to: a
/// corrupt file is a ``TokenFileError``, never a crash or an out-of-range embedding row.
public final class TokenFile: @unchecked Sendable {
    // Sendable: the mapping is read-only and nothing changes after init.

    public static let magic = "SLMTOKS1"
    public static let version: UInt32 = 1
    public static let headerSize = 24
    /// The largest vocabulary a header may claim. Real vocabularies stay under 2^18; the cap
    /// keeps a hostile header from making a reader allocate per-token tables of gigabytes.
    public static let maxVocabSize = 1 << 24

    public let path: String
    public let vocabSize: Int
    public let tokenCount: Int

    private let mapping: MemoryMappedFile
    /// The ids as stored: little-endian, so read through `UInt32(littleEndian:)`.
    private let storedIDs: UnsafeBufferPointer<UInt32>

    /// Maps and validates a token file.
    ///
    /// - Complexity: O(tokenCount): every id is checked against `vocabSize` once, here.
    public init(path: String) throws(TokenFileError) {
        self.path = path
        do throws(FileIOError) {
            mapping = try MemoryMappedFile(path: path)
        } catch {
            throw TokenFileError(error)
        }
        let bytes = mapping.bytes

        // The header, field by field, each checked before the next is trusted.
        guard bytes.count >= Self.headerSize else {
            throw .truncatedHeader(path: path, fileSize: bytes.count, headerSize: Self.headerSize)
        }
        let magic = Array(bytes[0..<8])
        guard magic == Array(Self.magic.utf8) else {
            throw .notTokenFile(path: path, found: hex(magic))
        }
        let version = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard version == Self.version else {
            throw .unsupportedVersion(path: path, version: version, supported: Self.version)
        }
        let vocab = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard vocab >= 1 && vocab <= Self.maxVocabSize else {
            throw .invalidVocabSize(path: path, vocabSize: vocab, maximum: Self.maxVocabSize)
        }
        let count = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        guard Self.fileSize(tokenCount: count) == UInt64(bytes.count) else {
            throw .sizeMismatch(path: path, tokenCount: count, fileSize: bytes.count)
        }
        vocabSize = Int(vocab)
        tokenCount = Int(count)

        // The file is page-aligned and the ids start at a multiple of 4, so they can be read
        // in place.
        storedIDs =
            tokenCount == 0
            ? UnsafeBufferPointer(start: nil, count: 0)
            : UnsafeBufferPointer(
                start: (bytes.baseAddress! + Self.headerSize).bindMemory(
                    to: UInt32.self, capacity: tokenCount),
                count: tokenCount)
        if let bad = Self.firstOutOfRange(storedIDs, vocabSize: vocab) {
            throw .tokenOutOfRange(
                path: path, index: bad, id: UInt32(littleEndian: storedIDs[bad]),
                vocabSize: vocabSize)
        }
    }

    /// The id at `index`, in `0..<vocabSize`.
    public subscript(index: Int) -> Int {
        precondition(index >= 0 && index < tokenCount, "token index \(index) of \(tokenCount)")
        return Int(UInt32(littleEndian: storedIDs[index]))
    }

    /// The ids in `range`, which must lie inside `0..<tokenCount`.
    public func tokens(_ range: Range<Int>) -> [Int] {
        precondition(
            range.lowerBound >= 0 && range.upperBound <= tokenCount,
            "token range \(range) of \(tokenCount)")
        return storedIDs[range].map { Int(UInt32(littleEndian: $0)) }
    }

    /// The size of a file of `tokenCount` tokens, or nil where it would not fit in 64 bits.
    public static func fileSize(tokenCount: UInt64) -> UInt64? {
        let (tokenBytes, overflowed) = tokenCount.multipliedReportingOverflow(by: 4)
        let (total, overflowedAgain) = tokenBytes.addingReportingOverflow(UInt64(headerSize))
        return overflowed || overflowedAgain ? nil : total
    }

    /// The header of a file of `tokenCount` tokens over `vocabSize` ids.
    static func header(vocabSize: Int, tokenCount: Int) -> [UInt8] {
        var header = Array(magic.utf8)
        withUnsafeBytes(of: version.littleEndian) { header += $0 }
        withUnsafeBytes(of: UInt32(vocabSize).littleEndian) { header += $0 }
        withUnsafeBytes(of: UInt64(tokenCount).littleEndian) { header += $0 }
        assert(header.count == headerSize)
        return header
    }

    /// The index of the first id not below `vocabSize`, or nil.
    private static func firstOutOfRange(
        _ ids: UnsafeBufferPointer<UInt32>, vocabSize: UInt32
    ) -> Int? {
        // A running maximum per block vectorizes, where a loop that can stop at each id does
        // not; only a block that holds a bad id is searched again.
        let blockSize = 1 << 16
        for start in stride(from: 0, to: ids.count, by: blockSize) {
            let block = UnsafeBufferPointer(
                rebasing: ids[start..<min(start + blockSize, ids.count)])
            var largest: UInt32 = 0
            for id in block { largest = max(largest, UInt32(littleEndian: id)) }
            if largest >= vocabSize {
                return start + block.firstIndex { UInt32(littleEndian: $0) >= vocabSize }!
            }
        }
        return nil
    }
}

/// Bytes as lowercase hex with a 0x prefix, for messages.
private func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return "0x" + String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
}
