import Foundation
import SwiftLM
import SwiftLMTestSupport
import Testing

/// Heap allocations of a decode step, counted by valgrind (which scripts/install-deps installs):
/// unlike time, a count is stable on a shared machine. `swiftlm bench` runs the same prompt
/// with 8 and with 40 generated tokens; after its warm-up, 32 more decode steps must not add a
/// single allocation, with one thread or two.
///
/// Valgrind does not know AVX-512, so the runs use the portable kernels (`SWIFTLM_NO_AVX512`);
/// the products' work objects and the pool, where allocations could hide, are the same.
@Suite("Decode steps allocate nothing", .enabled(if: EndToEnd.enabled), .serialized)
struct DecodeAllocationTests {
    static let valgrind = "/usr/bin/valgrind"

    /// The heap allocations of one `swiftlm bench` run under valgrind.
    static func allocations(model: String, threads: Int, genTokens: Int) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: valgrind)
        process.arguments = [
            "--tool=memcheck", CommandLineRun.binary.path, "bench", "--model", model,
            "--threads", "\(threads)", "--prompt-tokens", "8", "--gen-tokens", "\(genTokens)",
            "--repetitions", "1",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFTLM_NO_AVX512"] = "1"
        process.environment = environment
        let error = Pipe()
        process.standardError = error
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "valgrind: \(text.suffix(2000))")

        // "==123==   total heap usage: 1,860 allocs, 1,467 frees, 456,117 bytes allocated"
        let line = try #require(
            text.split(separator: "\n").first { $0.contains("total heap usage:") },
            "no heap summary from valgrind: \(text.suffix(2000))")
        let afterLabel = try #require(line.split(separator: ":").last)
        let count = try #require(afterLabel.split(separator: " ").first)
        return try #require(Int(count.replacingOccurrences(of: ",", with: "")))
    }

    @Test(
        "32 more decode steps add no allocation",
        arguments: [1, 2], ["exact", "sliding window"])
    func decodeAllocatesNothing(threads: Int, attention: String) throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.valgrind),
            "valgrind is missing: scripts/install-deps installs it")
        var writer = try TinyModel.writer(weightType: .q4_1)
        if attention == "sliding window" {
            // A window much shorter than the run. (At 48 positions the cache keeps them all:
            // a ring of window + chunk - 1 slots would be no smaller.)
            let json = #"{"kind": "sliding_window", "window": 6, "global_positions": [0]}"#
            writer.set(LlamaConfig.attentionKey, .string(json))
        }
        let model = try TinyModel.write(writer)
        defer { try? FileManager.default.removeItem(atPath: model) }

        let short = try Self.allocations(model: model, threads: threads, genTokens: 8)
        let long = try Self.allocations(model: model, threads: threads, genTokens: 40)
        #expect(short > 0, "valgrind counted no allocation at all")
        #expect(
            long == short,
            "\(attention), \(threads) threads: \(long - short) allocations in 32 steps")
    }
}
