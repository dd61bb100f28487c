import Foundation
import Testing

@testable import SwiftLMCore

/// Quantization checked against gguf-py, llama.cpp's Python package: the fixtures hold its outputs
/// for random blocks, random float rows and rows of SmolLM2-135M-Instruct.Q4_1.gguf
/// (scripts/reference/make_quant_fixtures.py writes them).
@Suite("Quantization against gguf-py")
struct QuantizationFixtureTests {
    @Test("dequantizeRow matches gguf-py bit for bit on every type")
    func dequantizeMatchesGGUFPy() throws {
        let cases = try QuantFixture.load("quant_dequantize", as: QuantFixture.DequantizeCase.self)
        #expect(
            Set(cases.map(\.type)).isSuperset(of: ["Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"]))

        for fixture in cases {
            let type = try #require(ElementType(ggmlName: fixture.type))
            let blocks = try QuantFixture.bytes(fixture.blocks)
            let expected = try QuantFixture.floats(fixture.values)
            #expect(blocks.count == type.byteCount(elements: fixture.count))

            let values = dequantize(type, blocks, count: fixture.count)
            let mismatches = zip(values, expected).filter { !sameFloat($0, $1) }
            #expect(mismatches.isEmpty, "\(fixture.type) \(fixture.name): \(mismatches.prefix(4))")
        }
    }

    @Test("quantizeRow writes gguf-py's bytes for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, BF16 and F16")
    func quantizeMatchesGGUFPy() throws {
        let cases = try QuantFixture.load("quant_quantize", as: QuantFixture.QuantizeCase.self)
        #expect(cases.count > 20)

        for fixture in cases {
            let type = try #require(ElementType(ggmlName: fixture.type))
            let input = try QuantFixture.floats(fixture.input)
            let expected = try QuantFixture.bytes(fixture.bytes)

            var output = [UInt8](repeating: 0xAA, count: expected.count)
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBytes { y in
                    Quantization.quantizeRow(
                        type, x.baseAddress!, y.baseAddress!, count: fixture.count)
                }
            }
            let firstDifference = zip(output, expected).enumerated().first { $0.1.0 != $0.1.1 }
            #expect(
                output == expected,
                "\(fixture.type) \(fixture.name): first at \(firstDifference.map { $0.0 } ?? -1)")
        }
    }

    @Test("every kernel lands within the activation rounding error of gguf-py's exact dot product")
    func kernelsMatchFloat64Dot() throws {
        let cases = try QuantFixture.load("quant_dot", as: QuantFixture.DotCase.self)
        #expect(cases.contains { $0.name.contains("SmolLM2") })

        for fixture in cases {
            let type = try #require(ElementType(ggmlName: fixture.type))
            let weights = try QuantFixture.bytes(fixture.weights)
            let x = try QuantFixture.floats(fixture.activations)
            let w = dequantize(type, weights, count: fixture.count)
            let bound = activationErrorBound(weightType: type, weights: weights, w: w, x: x)

            for kernel in [
                Quantization.dotKernel(for: type), Quantization.referenceDotKernel(for: type),
            ] {
                let result = Double(dot(kernel, type, weights, x))
                let label = "\(fixture.type) \(fixture.name)"
                #expect(
                    abs(result - fixture.expected) <= bound,
                    "\(label): \(result), want \(fixture.expected) ± \(bound)")
            }
        }
    }

    @Test("activations quantize to the bytes of llama.cpp's own CPU quantizers")
    func activationsMatchGGML() throws {
        let cases = try QuantFixture.load("quant_dot", as: QuantFixture.DotCase.self)
        let annotated = cases.filter { $0.ggml != nil }
        try #require(!annotated.isEmpty, "fixtures lack llama.cpp results (--ggml-cpu)")

        for fixture in annotated {
            let type = try #require(ElementType(ggmlName: fixture.type))
            let x = try QuantFixture.floats(fixture.activations)
            let expected = try QuantFixture.bytes(fixture.ggml!.activations)
            #expect(
                quantizeActivations(x, for: type) == expected, "\(fixture.type) \(fixture.name)")
        }
    }

    /// How close the kernels come to llama.cpp's, relative to sum |w_i * a_i|: exactly for the
    /// types whose x86 arithmetic SwiftLM reproduces (the fixture's `dot` is the build's SIMD
    /// `ggml_vec_dot_*`, the kernel ggml runs for one activation row). For BF16 and the K-quants
    /// the integer sums agree exactly and the float sums differ in order; their references
    /// follow ggml's portable C and are held to its `_generic` kernels.
    static let ggmlTolerance: [ElementType: Double] = [
        .f32: 0, .f16: 0, .q8_0: 0, .q4_0: 0, .q4_1: 0,
        .bf16: 1e-6, .q4_K: 1e-6, .q5_K: 1e-6, .q6_K: 1e-6,
    ]

    @Test("kernels agree with llama.cpp's ggml_vec_dot on llama.cpp's activation blocks")
    func kernelsMatchGGML() throws {
        let cases = try QuantFixture.load("quant_dot", as: QuantFixture.DotCase.self)
        for fixture in cases {
            guard let ggml = fixture.ggml else { continue }
            let type = try #require(ElementType(ggmlName: fixture.type))
            let tolerance = try #require(Self.ggmlTolerance[type])
            let weights = try QuantFixture.bytes(fixture.weights)
            let activations = try QuantFixture.bytes(ggml.activations)
            let w = dequantize(type, weights, count: fixture.count)
            let a = dequantize(
                Quantization.activationType(for: type), activations, count: fixture.count)
            let magnitude = zip(w, a).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
            let label = "\(fixture.type) \(fixture.name)"

            let fast = dot(
                Quantization.dotKernel(for: type), weights, activations, count: fixture.count)
            #expect(abs(Double(fast) - ggml.dot) <= tolerance * magnitude, "\(label): \(fast)")

            let reference = Quantization.referenceDotKernel(for: type)
            let result = Double(dot(reference, weights, activations, count: fixture.count))
            let expected = tolerance == 0 ? ggml.dot : (ggml.dotGeneric ?? ggml.dot)
            #expect(abs(result - expected) <= tolerance * magnitude, "\(label): \(result)")
        }
    }

    /// How far a kernel may land from dot(w, x) because the activations were rounded to the
    /// activation type: sum |w_i| * (rounding error of x_i), plus the rounding of Q8_1's `s`, plus
    /// float summation. For the 8-bit types a step is d = amax / 127 (half a step of error), and d
    /// itself is a binary16 (relative error 2^-11 on each of up to 127 steps).
    private func activationErrorBound(
        weightType: ElementType, weights: [UInt8], w: [Float], x: [Float]
    ) -> Double {
        let activationType = Quantization.activationType(for: weightType)
        let count = x.count
        var bound = 0.0
        var magnitude = 0.0
        for i in 0..<count { magnitude += Double(abs(w[i] * x[i])) }

        switch activationType {
        case .q8_0, .q8_1, .q8_K:
            let block = activationType.blockSize
            for start in stride(from: 0, to: count, by: block) {
                let amax = Double(x[start..<start + block].map(abs).max()!)
                let step = amax * (1 / 254 + 1.0 / 2048) * 1.001
                for i in start..<start + block { bound += Double(abs(w[i])) * step }
            }
        case .f16:
            for i in 0..<count { bound += Double(abs(w[i] * x[i])) / 2048 }
        case .bf16:
            for i in 0..<count { bound += Double(abs(w[i] * x[i])) / 256 }
        default:
            break
        }

        // Q4_1: the offset m multiplies s = d * sum(q), stored as a binary16.
        if weightType == .q4_1 {
            for block in 0..<(count / 32) {
                let m = Double(
                    HalfPrecision.float(
                        fromHalf: UInt16(weights[20 * block + 2]) | UInt16(weights[20 * block + 3])
                            << 8))
                let sum = x[(32 * block)..<(32 * block + 32)].reduce(0) { $0 + Double(abs($1)) }
                bound += abs(m) * sum * (1.0 / 1024)
            }
        }
        return bound + 1e-5 * magnitude + 1e-30
    }
}

// MARK: - Fixture files

/// The JSON fixtures of scripts/reference/make_quant_fixtures.py; binary fields are base64 of
/// little-endian data.
enum QuantFixture {
    struct File<Case: Decodable>: Decodable {
        let generator: String
        let cases: [Case]
    }

    struct DequantizeCase: Decodable {
        let name: String
        let type: String
        let count: Int
        let blocks: String
        let values: String
    }

    struct QuantizeCase: Decodable {
        let name: String
        let type: String
        let count: Int
        let input: String
        let bytes: String
    }

    struct DotCase: Decodable {
        let name: String
        let type: String
        let count: Int
        let weights: String
        let activations: String
        let expected: Double
        let ggml: GGMLResult?
    }

    /// What llama.cpp's CPU backend computes for a dot case: its activation blocks for the float
    /// activations, and its `ggml_vec_dot_*` on them (the build's SIMD kernel and, for the
    /// quantized types, the portable `_generic` one).
    struct GGMLResult: Decodable {
        let activations: String
        let dot: Double
        let dotGeneric: Double?

        enum CodingKeys: String, CodingKey {
            case activations, dot
            case dotGeneric = "dot_generic"
        }
    }

    struct MissingFixture: Error, CustomStringConvertible {
        let name: String
        var description: String {
            "fixture \(name).json is missing; run scripts/reference/make_quant_fixtures.py"
        }
    }

    struct BadBase64: Error {}

    static func load<Case: Decodable>(_ name: String, as _: Case.Type) throws -> [Case] {
        guard
            let url = Bundle.module.url(
                forResource: name, withExtension: "json", subdirectory: "Fixtures")
        else { throw MissingFixture(name: name) }
        return try JSONDecoder().decode(File<Case>.self, from: Data(contentsOf: url)).cases
    }

    static func bytes(_ base64: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: base64) else { throw BadBase64() }
        return [UInt8](data)
    }

    static func floats(_ base64: String) throws -> [Float] {
        let raw = try bytes(base64)
        return raw.withUnsafeBytes { buffer in
            (0..<(raw.count / 4)).map {
                Float(
                    bitPattern: UInt32(
                        littleEndian: buffer.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))
                )
            }
        }
    }
}

// MARK: - Helpers shared by the quantization tests

/// ggml's names of the types these tests use. The tests name types through this table rather
/// than `ElementType.description`, which recurses forever on this branch's base (fixed on main),
/// and for the same reason loop over types instead of taking them as test arguments.
private let ggmlNames: [ElementType: String] = [
    .f32: "F32", .f16: "F16", .bf16: "BF16", .q8_0: "Q8_0", .q8_1: "Q8_1", .q8_K: "Q8_K",
    .q4_0: "Q4_0", .q4_1: "Q4_1", .q5_0: "Q5_0", .q5_1: "Q5_1", .q4_K: "Q4_K", .q5_K: "Q5_K",
    .q6_K: "Q6_K",
]

extension ElementType {
    /// The type ggml names `name`, for the types the fixtures hold.
    init?(ggmlName name: String) {
        guard let type = ggmlNames.first(where: { $0.value == name })?.key else { return nil }
        self = type
    }

    /// ggml's name of the type, for test messages.
    var testName: String { ggmlNames[self] ?? "type \(rawValue)" }
}

/// Equal bit patterns, or both NaN.
func sameFloat(_ a: Float, _ b: Float) -> Bool {
    a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN)
}

func dequantize(_ type: ElementType, _ blocks: [UInt8], count: Int) -> [Float] {
    var values = [Float](repeating: .nan, count: count)
    blocks.withUnsafeBytes { src in
        values.withUnsafeMutableBufferPointer { dst in
            Quantization.dequantizeRow(type, src.baseAddress!, dst.baseAddress!, count: count)
        }
    }
    return values
}

/// Activations `x` quantized as llama.cpp quantizes them for a dot product with `weightType`.
func quantizeActivations(_ x: [Float], for weightType: ElementType) -> [UInt8] {
    let type = Quantization.activationType(for: weightType)
    var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: x.count)!)
    x.withUnsafeBufferPointer { src in
        bytes.withUnsafeMutableBytes { dst in
            Quantization.quantizeActivations(
                src.baseAddress!, count: x.count, as: type, into: dst.baseAddress!)
        }
    }
    return bytes
}

/// `kernel` applied to a weight row and float activations, quantized first as llama.cpp does.
func dot(_ kernel: DotKernel, _ type: ElementType, _ weights: [UInt8], _ x: [Float]) -> Float {
    let activations = quantizeActivations(x, for: type)
    return dot(kernel, weights, activations, count: x.count)
}

func dot(_ kernel: DotKernel, _ weights: [UInt8], _ activations: [UInt8], count: Int) -> Float {
    weights.withUnsafeBytes { w in
        activations.withUnsafeBytes { a in
            kernel(w.baseAddress!, a.baseAddress!, count)
        }
    }
}
