import Foundation
import SwiftLMFormats
import Testing

@Suite("File layer: atomic and appending writers, memory maps, status, messages")
struct FileIOTests {
    @Test("an atomic write replaces the file whole and leaves no temporary file")
    func atomicReplace() throws {
        try withTemporaryDirectory { directory in
            let path = try directory.write([9, 9, 9, 9, 9], named: "out.bin")
            let file = try AtomicFileWriter(path: path)
            #expect(file.temporaryPath.hasPrefix(path + ".tmp-"))
            try file.write([1, 2] as [UInt8])
            try [UInt16(0x0403).littleEndian].withUnsafeBytes { bytes in try file.write(bytes) }

            // Until the commit a reader sees the old file.
            #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == [9, 9, 9, 9, 9])
            try file.commit()

            #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == [1, 2, 3, 4])
            #expect(try directory.fileNames() == ["out.bin"])
        }
    }

    @Test("a writer dropped or discarded before its commit leaves the destination as it was")
    func abandonedWrites() throws {
        try withTemporaryDirectory { directory in
            let path = try directory.write([7], named: "keep.bin")
            do {
                let dropped = try AtomicFileWriter(path: path)
                try dropped.write([1, 2, 3] as [UInt8])
            }
            let discarded = try AtomicFileWriter(path: path)
            try discarded.write([4] as [UInt8])
            discarded.discard()
            discarded.discard()

            #expect(try directory.fileNames() == ["keep.bin"])
            #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == [7])
        }
    }

    @Test("a write at an offset patches the start and appending goes on at the end")
    func writeAtOffset() throws {
        try withTemporaryDirectory { directory in
            let path = directory.path + "/patched.bin"
            let file = try AtomicFileWriter(path: path)
            try file.write([0, 0, 0, 0] as [UInt8])
            try file.write([UInt32(5).littleEndian])
            try file.write([1, 2] as [UInt8], at: 1)
            try file.write([6] as [UInt8])
            try file.commit()
            #expect(
                try Array(Data(contentsOf: URL(fileURLWithPath: path)))
                    == [0, 1, 2, 0, 5, 0, 0, 0, 6])
        }
    }

    @Test("a write into a missing directory names the path and the system's reason")
    func missingDirectory() throws {
        try withTemporaryDirectory { directory in
            let path = directory.path + "/no/such/dir/out.bin"
            let expected = FileIOError.writeFailed(
                path: path, reason: "open: No such file or directory")
            #expect(throws: expected) { try AtomicFileWriter.write([1], to: path) }
            #expect(throws: expected) { try AppendingFileWriter(path: path) }
            #expect(expected.description == "cannot write \(path): open: No such file or directory")
            let names = try directory.fileNames()
            #expect(names.isEmpty)
        }
    }

    @Test("an appending writer creates the file or adds to its end")
    func appending() throws {
        try withTemporaryDirectory { directory in
            let path = directory.path + "/log.txt"
            do {
                let log = try AppendingFileWriter(path: path)
                try log.write(Array("a\n".utf8))
            }
            let log = try AppendingFileWriter(path: path)
            try log.write(Array("b\n".utf8))
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "a\nb\n")
        }
    }

    @Test("a mapped file holds its bytes, and an empty one maps to no bytes")
    func mapping() throws {
        try withTemporaryDirectory { directory in
            let mapped = try MemoryMappedFile(path: directory.write([1, 2, 3], named: "a.bin"))
            #expect(Array(mapped.bytes) == [1, 2, 3])

            let empty = try MemoryMappedFile(path: directory.write([], named: "empty.bin"))
            #expect(empty.bytes.isEmpty)
            #expect(empty.bytes.baseAddress == nil)
        }
    }

    @Test("mapping a missing path or a directory gives its own one-line error")
    func mappingFailures() throws {
        try withTemporaryDirectory { directory in
            let missing = directory.path + "/missing\nname.bin"
            #expect(throws: FileIOError.notFound(path: missing)) {
                try MemoryMappedFile(path: missing)
            }
            #expect(
                FileIOError.notFound(path: missing).description
                    == "file not found: \(directory.path)/missing\\nname.bin")

            let notRegular = FileIOError.unreadable(
                path: directory.path, reason: "not a regular file")
            #expect(throws: notRegular) { try MemoryMappedFile(path: directory.path) }
            #expect(notRegular.path == directory.path)
        }
    }

    @Test("file status tells files from directories, and resolved paths see through links")
    func status() throws {
        try withTemporaryDirectory { directory in
            let file = try directory.write([1, 2, 3], named: "a.bin")
            #expect(FileStatus(path: file) != nil)
            #expect(FileStatus(path: file)?.kind == .regularFile)
            #expect(FileStatus(path: file)?.size == 3)
            #expect(FileStatus(path: directory.path)?.kind == .directory)
            #expect(FileStatus(path: directory.path + "/missing") == nil)

            let link = directory.path + "/link.bin"
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file)
            #expect(FileStatus.resolvedPath(link) == FileStatus.resolvedPath(file))
            #expect(FileStatus.resolvedPath(directory.path + "/./a.bin") != nil)
            #expect(FileStatus.resolvedPath(directory.path + "/missing") == nil)
        }
    }

    @Test("untrusted text is escaped onto one line, and long names are cut")
    func messageText() {
        #expect(oneLine("plain name") == "plain name")
        #expect(oneLine("a\nb\u{1B}[2J\u{2028}") == "a\\nb\\u{1B}[2J\\u{2028}")
        #expect(quoted("w\t") == "'w\\t'")

        let long = String(repeating: "x", count: 81)
        #expect(excerpt(long) == String(repeating: "x", count: 80) + "...")
        #expect(
            quoted(String(repeating: "x", count: 80)) == "'" + String(repeating: "x", count: 80)
                + "'")
    }
}
