import Testing

@testable import SwiftLMCore

/// Block layouts, 16-bit float conversions and the activation quantizers' own rules.
@Suite("Quantization formats")
struct QuantizationFormatTests {
    @Test("block layouts span ElementType's block sizes")
    func layoutsMatchElementType() {
        #expect(BlockLayout.Q4_0.bytes == ElementType.q4_0.blockBytes)
        #expect(BlockLayout.Q4_1.bytes == ElementType.q4_1.blockBytes)
        #expect(BlockLayout.Q8_0.bytes == ElementType.q8_0.blockBytes)
        #expect(BlockLayout.Q8_1.bytes == ElementType.q8_1.blockBytes)
        #expect(BlockLayout.Q4_K.bytes == ElementType.q4_K.blockBytes)
        #expect(BlockLayout.Q5_K.bytes == ElementType.q5_K.blockBytes)
        #expect(BlockLayout.Q6_K.bytes == ElementType.q6_K.blockBytes)
        #expect(BlockLayout.Q8_K.bytes == ElementType.q8_K.blockBytes)
    }

    @Test("binary16 widening matches Swift's Float16 for all 65536 bit patterns")
    func halfToFloatIsExact() {
        for bits in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            #expect(sameFloat(HalfPrecision.float(fromHalf: bits), expected), "bits \(bits)")
            #expect(sameFloat(HalfPrecision.table[Int(bits)], expected), "table at \(bits)")
        }
    }

    @Test("the fast kernels' lane-wise binary16 widening matches the scalar one")
    func vectorHalfToFloatIsExact() {
        for first in stride(from: 0, through: Int(UInt16.max), by: 4) {
            let halves = SIMD4<UInt32>(
                UInt32(first), UInt32(first + 1), UInt32(first + 2), UInt32(first + 3))
            let floats = FastDot.floats(fromHalves: halves)
            for lane in 0..<4 {
                let expected = HalfPrecision.float(fromHalf: UInt16(first + lane))
                #expect(sameFloat(floats[lane], expected), "bits \(first + lane)")
            }
        }
    }

    @Test("binary16 and bfloat16 narrowing round ties to even")
    func narrowingRoundsTiesToEven() {
        // 1 + 2^-11 lies halfway between 1 and the next binary16; 1 + 3 * 2^-11 between two more.
        #expect(HalfPrecision.half(from: 1 + 0x1p-11) == 0x3C00)
        #expect(HalfPrecision.half(from: 1 + 3 * 0x1p-11) == 0x3C02)
        #expect(HalfPrecision.half(from: 65520) == 0x7C00)
        #expect(HalfPrecision.bfloat(from: Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        #expect(HalfPrecision.bfloat(from: Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        #expect(HalfPrecision.bfloat(from: Float(bitPattern: 0x7F80_0001)) == 0x7FC0)
    }

    @Test("Q8_0 activations round ties to even where model files round them away from zero")
    func activationRoundingDiffersFromReference() {
        // amax = 127 makes d = 1 in both quantizers, so x / d = 2.5 and -0.5 are exact ties.
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127
        x[1] = 2.5
        x[2] = -0.5
        x[3] = 3.5

        let activations = quantizeActivations(x, for: .q8_0)
        var reference = [UInt8](repeating: 0, count: 34)
        x.withUnsafeBufferPointer { src in
            reference.withUnsafeMutableBytes { dst in
                Quantization.quantizeRow(.q8_0, src.baseAddress!, dst.baseAddress!, count: 32)
            }
        }

        #expect(activations[2...5].map { Int8(bitPattern: $0) } == [127, 2, 0, 4])
        #expect(reference[2...5].map { Int8(bitPattern: $0) } == [127, 3, -1, 4])
    }

    @Test("Q8_1 blocks carry s = d * sum(q) in both quantizers")
    func q8_1CarriesScaledSum() {
        var random = SplitMix64(seed: 81)
        let x = (0..<128).map { _ in random.nextGaussian() }
        let activations = quantizeActivations(x, for: .q4_1)
        var reference = [UInt8](repeating: 0, count: 4 * 36)
        x.withUnsafeBufferPointer { src in
            reference.withUnsafeMutableBytes { dst in
                Quantization.quantizeRow(.q8_1, src.baseAddress!, dst.baseAddress!, count: 128)
            }
        }

        for blocks in [activations, reference] {
            blocks.withUnsafeBytes { raw in
                for block in 0..<4 {
                    let base = raw.baseAddress! + 36 * block
                    let sum = (0..<32).reduce(0) {
                        $0 + Int(base.load(fromByteOffset: 4 + $1, as: Int8.self))
                    }
                    // s is d * sum before d is rounded to binary16.
                    let d = x[(32 * block)..<(32 * block + 32)].map(abs).max()! / 127
                    #expect(base.loadUInt16(at: 2) == HalfPrecision.half(from: Float(sum) * d))
                }
            }
        }
    }

    @Test("Q8_K blocks carry d = 1 / scale and the sum of each 16 quants")
    func q8_KCarriesSums() {
        var random = SplitMix64(seed: 88)
        var x = (0..<512).map { _ in random.nextGaussian() }
        x[300] = -9  // the element of largest magnitude maps to q = -127, whatever its sign
        for i in 256..<300 { x[i] = 0 }

        let blocks = quantizeActivations(x, for: .q4_K)
        let values = dequantize(.q8_K, blocks, count: 512)
        blocks.withUnsafeBytes { raw in
            let second = raw.baseAddress! + 292
            #expect(second.load(fromByteOffset: 4 + 44, as: Int8.self) == -127)
            #expect(
                Float(bitPattern: second.loadUnaligned(as: UInt32.self)) == 1 / (Float(-127) / -9))

            for block in 0..<2 {
                let base = raw.baseAddress! + 292 * block
                for group in 0..<16 {
                    let sum = (0..<16).reduce(0) {
                        $0 + Int(base.load(fromByteOffset: 4 + 16 * group + $1, as: Int8.self))
                    }
                    #expect(
                        Int(base.loadUnaligned(fromByteOffset: 260 + 2 * group, as: Int16.self))
                            == sum)
                }
            }
        }

        // Each value lies within half a step of the input.
        for block in 0..<2 {
            let amax = x[(256 * block)..<(256 * block + 256)].map(abs).max()!
            for i in (256 * block)..<(256 * block + 256) {
                #expect(abs(values[i] - x[i]) <= amax / 254 * 1.0001)
            }
        }
    }

    @Test("an all-zero block quantizes to zero scales and zero sums")
    func zeroBlocks() {
        let x = [Float](repeating: 0, count: 256)
        for weightType in [ElementType.q4_K, .q4_1, .q8_0] {
            let blocks = quantizeActivations(x, for: weightType)
            #expect(blocks.allSatisfy { $0 == 0 }, "\(weightType.testName)")
        }
    }

    @Test("Q8_0 activations stay within half a step of their inputs")
    func q8_0ActivationError() {
        var random = SplitMix64(seed: 80)
        let x = (0..<1024).map { _ in random.nextGaussian() * 3 }
        let values = dequantize(.q8_0, quantizeActivations(x, for: .q8_0), count: 1024)
        for block in 0..<32 {
            let amax = x[(32 * block)..<(32 * block + 32)].map(abs).max()!
            for i in (32 * block)..<(32 * block + 32) {
                #expect(abs(values[i] - x[i]) <= amax * (1 / 254 + 1 / 2048))
            }
        }
    }
}
