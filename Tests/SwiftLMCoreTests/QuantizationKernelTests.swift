import Foundation
import Testing

@testable import SwiftLMCore

/// The dot kernels held to each other and to the definition of the block formats.
@Suite("Quantized dot kernels")
struct QuantizationKernelTests {
    static let weightTypes: [ElementType] = [
        .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q5_K, .q6_K,
    ]

    /// How far a fast kernel may drift from the reference, relative to sum |w_i * a_i|. For F32,
    /// F16 and the 32-element block types both spell out llama.cpp's float arithmetic, lanes and
    /// fused multiply-adds included, so they must agree exactly. For BF16 and the K-quants the
    /// reference follows ggml's portable C; integer block sums are exact in both, so only the
    /// float summation order differs.
    static let fastTolerance: [ElementType: Double] = [
        .f32: 0, .f16: 0, .bf16: 1e-6,
        .q8_0: 0, .q4_0: 0, .q4_1: 0,
        .q4_K: 1e-6, .q5_K: 1e-6, .q6_K: 1e-6,
    ]

    @Test("activation types follow ggml's vec_dot_type table")
    func activationTypes() {
        let expected: [ElementType: ElementType] = [
            .f32: .f32, .f16: .f16, .bf16: .bf16, .q8_0: .q8_0, .q4_0: .q8_0, .q4_1: .q8_1,
            .q4_K: .q8_K, .q5_K: .q8_K, .q6_K: .q8_K,
        ]
        for (weightType, activationType) in expected {
            #expect(Quantization.activationType(for: weightType) == activationType)
        }
    }

    @Test("a type without a kernel stops the process, with or without optimization")
    func unsupportedTypesStop() async {
        await #expect(processExitsWith: .failure) {
            _ = Quantization.dotKernel(for: .q5_0)
        }
        await #expect(processExitsWith: .failure) {
            _ = Quantization.activationType(for: .q2_K)
        }
        await #expect(processExitsWith: .failure) {
            var out = [UInt8](repeating: 0, count: 144)
            out.withUnsafeMutableBytes { y in
                [Float](repeating: 0, count: 256).withUnsafeBufferPointer { x in
                    Quantization.quantizeRow(.q4_K, x.baseAddress!, y.baseAddress!, count: 256)
                }
            }
        }
    }

    @Test("the row conversions report the types they take")
    func conversionsReportTypes() {
        for type in Self.weightTypes {
            #expect(type.isSupported && Quantization.canDequantize(type))
        }
        for type in [ElementType.q8_1, .q8_K, .q5_0, .q5_1] {
            #expect(Quantization.canDequantize(type) && Quantization.canQuantize(type))
        }
        for type in [ElementType.q4_K, .q5_K, .q6_K] {
            #expect(!Quantization.canQuantize(type))
        }
        for type in [ElementType.q2_K, .q3_K, .iq4_XS, .i8] {
            #expect(!Quantization.canDequantize(type) && !Quantization.canQuantize(type))
        }
    }

    @Test("fast kernels agree with the reference kernels on random rows")
    func fastMatchesReference() throws {
        for type in Self.weightTypes {
            try fastMatchesReference(type: type)
        }
    }

    private func fastMatchesReference(type: ElementType) throws {
        for rowCount in [1, 2] {
            try fastMatchesReference(type: type, rowCount: rowCount)
        }
    }

    /// The kernels for one activation row and for several (llamafile's tinyBLAS) differ for F32
    /// and F16.
    private func fastMatchesReference(type: ElementType, rowCount: Int) throws {
        var random = SplitMix64(seed: 0x5EED + UInt64(type.rawValue))
        let fast = Quantization.dotKernel(for: type, rowCount: rowCount)
        let reference = Quantization.referenceDotKernel(for: type, rowCount: rowCount)
        let tolerance = try #require(Self.fastTolerance[type])

        // Lengths of one block up to many; the float types also get ragged tails.
        var counts = [1, 2, 7, 24].map { $0 * max(type.blockSize, 32) }
        if type.blockSize == 1 { counts += [1, 7, 15, 16, 37, 80, 1001] }

        for count in counts {
            let weights = randomRow(type, count: count, using: &random)
            let x = (0..<count).map { _ in random.nextGaussian() }
            let activations = quantizeActivations(x, for: type)
            let magnitude = termMagnitude(type, weights, activations, count: count)

            let expected = dot(reference, weights, activations, count: count)
            let result = dot(fast, weights, activations, count: count)
            let label = "\(type.testName) count \(count), \(rowCount) rows"
            #expect(
                abs(Double(result) - Double(expected)) <= tolerance * magnitude,
                "\(label): fast \(result), reference \(expected)")
        }
    }

    @Test(
        "integer block sums are exact: with unit scales fast and reference give the exact integer")
    func integerSumsAreExact() {
        for type in Self.weightTypes where type.blockSize > 1 {
            integerSumsAreExact(type: type)
        }
    }

    private func integerSumsAreExact(type: ElementType) {
        var random = SplitMix64(seed: 42 + UInt64(type.rawValue))
        let count = 2 * 256
        let weights = unitScaleRow(type, count: count, using: &random)

        // Small activations with d = 1 keep every partial sum an integer below 2^24, where floats
        // are exact whatever the order of summation.
        let x = (0..<count).map { _ in Float(Int.random(in: -4...4, using: &random)) }
        let activationType = Quantization.activationType(for: type)
        let activations = unitScaleActivations(x, as: activationType)

        let w = dequantize(type, weights, count: count)
        let exact = zip(w, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(exact == exact.rounded() && abs(exact) < 0x1p24)

        for kernel in [
            Quantization.dotKernel(for: type), Quantization.referenceDotKernel(for: type),
        ] {
            #expect(
                Double(dot(kernel, weights, activations, count: count)) == exact, "\(type.testName)"
            )
        }
    }

    @Test("reference kernels equal dequantize(w) · dequantize(a) to float rounding")
    func referenceMatchesDequantizedDot() {
        for type in Self.weightTypes {
            referenceMatchesDequantizedDot(type: type)
        }
    }

    private func referenceMatchesDequantizedDot(type: ElementType) {
        var random = SplitMix64(seed: 7 + UInt64(type.rawValue))
        let count = 4 * 256
        let weights = randomRow(type, count: count, using: &random)
        let x = (0..<count).map { _ in random.nextGaussian() }
        let activationType = Quantization.activationType(for: type)
        let activations = quantizeActivations(x, for: type)

        let w = dequantize(type, weights, count: count)
        let a = dequantize(activationType, activations, count: count)
        let exact = zip(w, a).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        var bound = 1e-5 * zip(w, a).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }

        // Q4_1 uses s = d * sum(q) as stored, a binary16, where the dequantized dot uses d * q.
        if type == .q4_1 {
            for block in 0..<(count / 32) {
                let m = Double(
                    weights.withUnsafeBytes { $0.baseAddress!.loadHalf(at: 20 * block + 2) })
                let s = a[(32 * block)..<(32 * block + 32)].reduce(0.0) { $0 + Double($1) }
                bound += abs(m * s) / 2048
            }
        }

        let reference = Quantization.referenceDotKernel(for: type)
        let result = Double(dot(reference, weights, activations, count: count))
        #expect(abs(result - exact) <= bound, "\(type.testName): \(result) vs \(exact)")
    }

    /// sum |w_i * a_i| over dequantized weights and activations: the scale of the rounding error.
    private func termMagnitude(
        _ type: ElementType, _ weights: [UInt8], _ activations: [UInt8], count: Int
    ) -> Double {
        let w = dequantize(type, weights, count: count)
        let a = dequantize(Quantization.activationType(for: type), activations, count: count)
        return zip(w, a).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
    }
}

// MARK: - Random rows

/// A small deterministic generator (SplitMix64), so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal sample (Box-Muller).
    mutating func nextGaussian() -> Float {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let v = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
    }
}

/// Writes `value` as binary16 at `offset`.
func storeHalf(_ value: Float, into bytes: inout [UInt8], at offset: Int) {
    let bits = HalfPrecision.half(from: value)
    bytes[offset] = UInt8(truncatingIfNeeded: bits)
    bytes[offset + 1] = UInt8(truncatingIfNeeded: bits >> 8)
}

/// A row of `count` elements of `type`: random quants and plausible random scales.
func randomRow(_ type: ElementType, count: Int, using random: inout SplitMix64) -> [UInt8] {
    if type.blockSize == 1 {
        let values = (0..<count).map { _ in random.nextGaussian() * 0.1 }
        var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: count)!)
        values.withUnsafeBufferPointer { x in
            bytes.withUnsafeMutableBytes { y in
                Quantization.quantizeRow(type, x.baseAddress!, y.baseAddress!, count: count)
            }
        }
        return bytes
    }

    var bytes = (0..<type.byteCount(elements: count)!).map { _ in
        UInt8.random(in: 0...255, using: &random)
    }
    func scale(_ low: Float, _ high: Float) -> Float {
        exp(Float.random(in: log(low)...log(high), using: &random))
    }

    for block in 0..<(count / type.blockSize) {
        let base = block * type.blockBytes
        switch type {
        case .q8_0, .q4_0:
            storeHalf(scale(1e-3, 1e-1), into: &bytes, at: base)
        case .q4_1:
            storeHalf(scale(1e-3, 1e-1), into: &bytes, at: base)
            storeHalf(-scale(1e-2, 1), into: &bytes, at: base + 2)
        case .q4_K, .q5_K:
            storeHalf(scale(1e-4, 1e-2), into: &bytes, at: base)
            storeHalf(scale(1e-4, 1e-2), into: &bytes, at: base + 2)
        case .q6_K:
            storeHalf(scale(1e-4, 1e-2), into: &bytes, at: base + BlockLayout.Q6_K.d)
        default:
            preconditionFailure("no random rows for \(type.testName)")
        }
    }
    return bytes
}

/// A row whose block scales are 1 (and K-quant minimum scales 1), so dot products are integers.
func unitScaleRow(_ type: ElementType, count: Int, using random: inout SplitMix64) -> [UInt8] {
    var bytes = randomRow(type, count: count, using: &random)
    for block in 0..<(count / type.blockSize) {
        let base = block * type.blockBytes
        switch type {
        case .q8_0, .q4_0:
            storeHalf(1, into: &bytes, at: base)
        case .q4_1:
            storeHalf(1, into: &bytes, at: base)
            storeHalf(Float(Int.random(in: -20...20, using: &random)), into: &bytes, at: base + 2)
        case .q4_K, .q5_K:
            storeHalf(1, into: &bytes, at: base)
            storeHalf(1, into: &bytes, at: base + 2)
        case .q6_K:
            storeHalf(1, into: &bytes, at: base + BlockLayout.Q6_K.d)
        default:
            preconditionFailure("no unit-scale rows for \(type.testName)")
        }
    }
    return bytes
}

/// Integer activations in -127...127 as blocks of `type` with scale 1 (and, for Q8_1, s = sum of
/// the quants; for Q8_K, the per-16 sums).
func unitScaleActivations(_ x: [Float], as type: ElementType) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: x.count)!)
    for block in 0..<(x.count / type.blockSize) {
        let base = block * type.blockBytes
        let values = x[(block * type.blockSize)..<((block + 1) * type.blockSize)].map { Int8($0) }
        switch type {
        case .q8_0:
            storeHalf(1, into: &bytes, at: base)
            for (j, q) in values.enumerated() { bytes[base + 2 + j] = UInt8(bitPattern: q) }
        case .q8_1:
            storeHalf(1, into: &bytes, at: base)
            storeHalf(Float(values.reduce(0) { $0 + Int($1) }), into: &bytes, at: base + 2)
            for (j, q) in values.enumerated() { bytes[base + 4 + j] = UInt8(bitPattern: q) }
        case .q8_K:
            let one = Float(1).bitPattern
            for i in 0..<4 { bytes[base + i] = UInt8(truncatingIfNeeded: one >> (8 * i)) }
            for (j, q) in values.enumerated() { bytes[base + 4 + j] = UInt8(bitPattern: q) }
            for group in 0..<16 {
                let sum = Int16(values[(16 * group)..<(16 * group + 16)].reduce(0) { $0 + Int($1) })
                bytes[base + 260 + 2 * group] = UInt8(truncatingIfNeeded: sum)
                bytes[base + 261 + 2 * group] = UInt8(truncatingIfNeeded: sum >> 8)
            }
        default:
            preconditionFailure("\(type.testName) is not a quantized activation type")
        }
    }
    return bytes
}

@Suite("Portable tile kernels")
struct PortableTileKernelTests {
    @Test(
        "a tile gives each element its dot kernel's bits, odd and even activation rows",
        arguments: [ElementType.q4_1, .q8_0], [1, 2, 3, 5, 16])
    func tileMatchesDot(type: ElementType, rowCount: Int) throws {
        let (tile, kernel) =
            type == .q4_1 ? (FastDot.tileQ4_1, FastDot.q4_1) : (FastDot.tileQ8_0, FastDot.q8_0)
        var random = SplitMix64(seed: 90 + UInt64(rowCount))
        let count = 5 * 32
        let rowBytes = type.byteCount(elements: count)!
        let activationBytes = Quantization.activationType(for: type).byteCount(elements: count)!
        let weights = (0..<4).flatMap { _ in randomRow(type, count: count, using: &random) }
        let activations = (0..<rowCount).flatMap { _ in
            quantizeActivations((0..<count).map { _ in random.nextGaussian() }, for: type)
        }
        let stride = 6
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
                    kernel, Array(weights[(feature * rowBytes)...].prefix(rowBytes)),
                    Array(activations[(row * activationBytes)...].prefix(activationBytes)),
                    count: count)
                #expect(
                    output[row * stride + feature].bitPattern == expected.bitPattern,
                    "row \(row) feature \(feature)")
            }
            let untouched = output[(row * stride + 4)..<(row * stride + stride)]
            let allNaN = untouched.allSatisfy { $0.isNaN }
            #expect(allNaN, "row \(row): columns past the tile written")
        }
    }
}
