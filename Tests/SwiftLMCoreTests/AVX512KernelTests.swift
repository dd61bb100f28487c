import Foundation
import SwiftLMKernelsAVX512
import Testing

@testable import SwiftLMCore

/// The AVX-512 kernels held to the portable ones bit for bit. They run only where the CPU
/// has VNNI; elsewhere these tests are skipped, since nothing could run them.
@Suite("AVX-512 kernels", .enabled(if: AVX512Kernels.isSupported))
struct VNNIKernelTests {
    #if arch(x86_64)
        /// The portable kernel, the VNNI dot kernel and the VNNI tile kernel of each type.
        static let kernels: [ElementType: (DotKernel, DotKernel, TileKernel)] = [
            .q4_1: (FastDot.q4_1, AVX512Kernels.dotQ4_1, AVX512Kernels.productQ4_1),
            .q8_0: (FastDot.q8_0, AVX512Kernels.dotQ8_0, AVX512Kernels.productQ8_0),
        ]

        @Test(
            "the dot kernel gives FastDot's bits, odd and even block counts",
            arguments: [ElementType.q4_1, .q8_0])
        func dotMatchesPortable(type: ElementType) throws {
            let (portable, vnni, _) = try #require(Self.kernels[type])
            var random = SplitMix64(seed: 41)
            for blocks in [1, 2, 3, 18, 48] {
                let count = blocks * 32
                for _ in 0..<20 {
                    let weights = randomRow(type, count: count, using: &random)
                    let x = (0..<count).map { _ in random.nextGaussian() }
                    let activations = quantizeActivations(x, for: type)
                    let expected = dot(portable, weights, activations, count: count)
                    let result = dot(vnni, weights, activations, count: count)
                    #expect(result.bitPattern == expected.bitPattern, "\(blocks) blocks")
                }
            }
        }

        @Test(
            "the tile kernel gives each element FastDot's bits",
            arguments: [ElementType.q4_1, .q8_0], [1, 2, 3, 4, 5, 6, 7, 9, 16])
        func tileMatchesPortable(type: ElementType, rowCount: Int) throws {
            let (portable, _, tile) = try #require(Self.kernels[type])
            var random = SplitMix64(seed: 42 + UInt64(rowCount))
            let count = 3 * 32
            let rowBytes = type.byteCount(elements: count)!
            let activationType = Quantization.activationType(for: type)
            let activationBytes = activationType.byteCount(elements: count)!
            let weights = (0..<4).flatMap { _ in randomRow(type, count: count, using: &random) }
            let activations = (0..<rowCount).flatMap { _ in
                quantizeActivations((0..<count).map { _ in random.nextGaussian() }, for: type)
            }
            // A stride wider than four, as in a product with more output features.
            let stride = 7
            var output = [Float](repeating: .nan, count: rowCount * stride)
            weights.withUnsafeBytes { w in
                activations.withUnsafeBytes { a in
                    output.withUnsafeMutableBufferPointer { y in
                        tile(
                            w.baseAddress!, rowBytes, a.baseAddress!, activationBytes, rowCount,
                            count, y.baseAddress!, stride)
                    }
                }
            }
            for row in 0..<rowCount {
                for feature in 0..<4 {
                    let expected = dot(
                        portable, Array(weights[(feature * rowBytes)...].prefix(rowBytes)),
                        Array(activations[(row * activationBytes)...].prefix(activationBytes)),
                        count: count)
                    let result = output[row * stride + feature]
                    #expect(
                        result.bitPattern == expected.bitPattern, "row \(row) feature \(feature)")
                }
                let untouched = output[(row * stride + 4)..<(row * stride + stride)]
                let allNaN = untouched.allSatisfy { $0.isNaN }
                #expect(allNaN, "row \(row): columns past the tile written")
            }
        }

        @Test(
            "the rows kernel gives FastDot's bits for each row",
            arguments: [ElementType.q4_1, .q8_0])
        func rowsMatchPortable(type: ElementType) throws {
            let (portable, _, _) = try #require(Self.kernels[type])
            let rowsKernel = try #require(Quantization.rowsKernel(for: type))
            var random = SplitMix64(seed: 45)
            let count = 5 * 32
            let rowBytes = type.byteCount(elements: count)!
            let weights = (0..<6).flatMap { _ in randomRow(type, count: count, using: &random) }
            let activations = quantizeActivations(
                (0..<count).map { _ in random.nextGaussian() }, for: type)
            var output = [Float](repeating: .nan, count: 6)
            weights.withUnsafeBytes { w in
                activations.withUnsafeBytes { a in
                    output.withUnsafeMutableBufferPointer { y in
                        rowsKernel(
                            w.baseAddress!, rowBytes, a.baseAddress!, count, y.baseAddress!,
                            1..<5)
                    }
                }
            }
            for row in 1..<5 {
                let expected = dot(
                    portable, Array(weights[(row * rowBytes)...].prefix(rowBytes)), activations,
                    count: count)
                #expect(output[row].bitPattern == expected.bitPattern, "row \(row)")
            }
            #expect(output[0].isNaN && output[5].isNaN)
        }

        @Test("softmax gives the portable softmax's bits, masked and far-out scores included")
        func softmaxMatchesPortable() {
            var random = SplitMix64(seed: 43)
            for count in [1, 15, 16, 17, 100, 1088] {
                var row = (0..<count).map { _ in random.nextGaussian() * 8 }
                // Masked positions, and scores so far below the maximum that e^x leaves
                // the range where the polynomial holds (|n| > 192).
                for i in stride(from: 3, to: count, by: 7) { row[i] = -.infinity }
                for i in stride(from: 5, to: count, by: 11) { row[i] = -200 }
                var portable = row
                var fast = row
                portable.withUnsafeMutableBufferPointer {
                    FloatKernels.softmaxPortable($0.baseAddress!, count: count)
                }
                fast.withUnsafeMutableBufferPointer {
                    AVX512Kernels.softmax($0.baseAddress!, count: count)
                }
                #expect(fast.map(\.bitPattern) == portable.map(\.bitPattern), "count \(count)")
            }
        }

        @Test("SwiGLU gives the portable SwiGLU's bits")
        func swiGLUMatchesPortable() {
            var random = SplitMix64(seed: 44)
            for count in [1, 16, 33, 1536] {
                let gate = (0..<count).map { _ in random.nextGaussian() * 30 }
                let up = (0..<count).map { _ in random.nextGaussian() }
                var portable = gate
                var fast = gate
                portable.withUnsafeMutableBufferPointer { g in
                    FloatKernels.swiGLUPortable(gate: g.baseAddress!, up: up, count: count)
                }
                fast.withUnsafeMutableBufferPointer { g in
                    AVX512Kernels.swiGLU(gate: g.baseAddress!, up: up, count: count)
                }
                #expect(fast.map(\.bitPattern) == portable.map(\.bitPattern), "count \(count)")
            }
        }
    #endif
}
