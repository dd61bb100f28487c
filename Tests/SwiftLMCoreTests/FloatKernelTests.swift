import Foundation
import Testing

@testable import SwiftLMCore

/// The float kernels held to llama.cpp's own functions, bit for bit, and to their scalar twins.
/// The fixture is what libggml-cpu.so of llama-cpp-python (x86, AVX-512) computed on random
/// inputs: scripts/reference/make_kernel_fixtures.py.
@Suite("Float kernels")
struct FloatKernelTests {
    // MARK: - Against llama.cpp

    @Test("VectorMath.exp is ggml_v_expf bit for bit, from underflow to overflow")
    func expMatchesGGML() throws {
        let fixture = try KernelFixture.load().exp
        let x = try QuantFixture.floats(fixture.x)
        let expected = try QuantFixture.floats(fixture.y)

        for start in stride(from: 0, to: x.count, by: 16) {
            let lanes = SIMD16(x[start..<(start + 16)])
            let result = VectorMath.exp(lanes)
            for lane in 0..<16 {
                let (input, want) = (x[start + lane], expected[start + lane])
                #expect(
                    result[lane].bitPattern == want.bitPattern, "exp(\(input)): \(result[lane])")
                #expect(
                    ReferenceFloatKernels.exp(input).bitPattern == want.bitPattern,
                    "reference exp(\(input))")
            }
        }
    }

    @Test("softmax rows are ggml's soft_max rows bit for bit, masked tails included")
    func softmaxMatchesGGML() throws {
        for fixture in try KernelFixture.load().softmax {
            let x = try QuantFixture.floats(fixture.x)
            let expected = try QuantFixture.floats(fixture.y)
            for kernel in [FloatKernels.softmax, ReferenceFloatKernels.softmax] {
                var row = x
                row.withUnsafeMutableBufferPointer { kernel($0.baseAddress!, fixture.count) }
                #expect(bits(row) == bits(expected), "softmax of \(fixture.count)")
            }
        }
    }

    @Test("swiGLU rows are ggml_vec_swiglu_f32 bit for bit")
    func swiGLUMatchesGGML() throws {
        for fixture in try KernelFixture.load().swiglu {
            let up = try QuantFixture.floats(fixture.up)
            let expected = try QuantFixture.floats(fixture.y)
            for kernel in [FloatKernels.swiGLU, ReferenceFloatKernels.swiGLU] {
                var gate = try QuantFixture.floats(fixture.gate)
                gate.withUnsafeMutableBufferPointer { kernel($0.baseAddress!, up, fixture.count) }
                #expect(bits(gate) == bits(expected), "swiGLU of \(fixture.count)")
            }
        }
    }

    @Test("dotF32 and dotF16 are ggml_vec_dot_f32 and _f16 bit for bit, leftovers included")
    func dotsMatchGGML() throws {
        for fixture in try KernelFixture.load().dot {
            let isHalf = fixture.type == "F16"
            let x = try isHalf ? halves(fixture.x) : QuantFixture.floats(fixture.x)
            let y = try isHalf ? halves(fixture.y) : QuantFixture.floats(fixture.y)
            let expected = try QuantFixture.floats(fixture.dot)[0]
            let kernels =
                isHalf
                ? [FloatKernels.dotF16, ReferenceFloatKernels.dotF16]
                : [FloatKernels.dotF32, ReferenceFloatKernels.dotF32]
            for kernel in kernels {
                let result = kernel(x, y, fixture.count)
                #expect(
                    result.bitPattern == expected.bitPattern,
                    "\(fixture.type) count \(fixture.count): \(result), want \(expected)")
            }
        }
    }

    @Test("WeightMatrix products are ggml_mul_mat's bit for bit, for one row and for several")
    func weightMatrixMatchesGGML() throws {
        let pool = ThreadPool(threadCount: 2)
        for fixture in try KernelFixture.load().mul_mat {
            let type = try #require(ElementType(ggmlName: fixture.type))
            let bytes = try QuantFixture.bytes(fixture.weights)
            let storage = TensorStorage(byteCount: bytes.count)
            storage.pointer.copyMemory(from: bytes, byteCount: bytes.count)
            let matrix = WeightMatrix(
                Tensor(
                    shape: [fixture.out_features, fixture.in_features], type: type, storage: storage
                ))

            let x = try QuantFixture.floats(fixture.x)
            let expected = try QuantFixture.floats(fixture.y)
            var y = [Float](repeating: 0, count: fixture.rows * fixture.out_features)
            let scratch = UnsafeMutableRawPointer.allocate(
                byteCount: matrix.scratchBytes(rowCount: fixture.rows), alignment: 64)
            defer { scratch.deallocate() }
            y.withUnsafeMutableBufferPointer { output in
                matrix.multiply(
                    x, rowCount: fixture.rows, into: output.baseAddress!, scratch: scratch,
                    pool: pool)
            }
            let shape = "[\(fixture.out_features), \(fixture.in_features)]"
            #expect(bits(y) == bits(expected), "\(fixture.type) \(shape) x \(fixture.rows) rows")
        }
    }

    // MARK: - Fast kernels against their scalar twins

    @Test("vector exp equals the scalar reference on every lane, specials included")
    func expMatchesReference() {
        var random = SplitMix64(seed: 0xE4)
        var inputs: [Float] = [-.infinity, .infinity, -0.0, 0, 88.72, -87.34, -103.97, -150]
        inputs += (0..<4000).map { _ in Float.random(in: -120...95, using: &random) }
        inputs += [Float](repeating: 0, count: (16 - inputs.count % 16) % 16)

        for start in stride(from: 0, to: inputs.count, by: 16) {
            let result = VectorMath.exp(SIMD16(inputs[start..<(start + 16)]))
            for lane in 0..<16 {
                let input = inputs[start + lane]
                let want = ReferenceFloatKernels.exp(input)
                #expect(result[lane].bitPattern == want.bitPattern, "exp(\(input))")
            }
        }
    }

    @Test("dot products and attention sums equal their scalar references")
    func sumsMatchReference() {
        var random = SplitMix64(seed: 0xD07)
        for count in [1, 7, 8, 15, 16, 17, 24, 48, 64, 65, 100, 129, 256, 300] {
            // Binary16 values, as attention feeds these kernels, so products are exact.
            let a = (0..<count).map { _ in Float(Float16(random.nextGaussian())) }
            let b = (0..<count).map { _ in Float(Float16(random.nextGaussian())) }

            #expect(
                FloatKernels.dotF32(a, b, count: count)
                    == ReferenceFloatKernels.dotF32(a, b, count: count), "dotF32 \(count)")
            #expect(
                FloatKernels.dotF16(a, b, count: count)
                    == ReferenceFloatKernels.dotF16(a, b, count: count), "dotF16 \(count)")
            if count % 16 == 0 {
                #expect(
                    FloatKernels.dotLanes16(a, b, count: count)
                        == ReferenceFloatKernels.dotLanes16(a, b, count: count), "lanes \(count)")
            }
            // Keys stored as Float16, as the KV cache holds them: the same bits.
            let halves = b.map { Float16($0) }
            #expect(
                FloatKernels.dotF32(a, halves, count: count)
                    == FloatKernels.dotF32(a, b, count: count))
            #expect(
                FloatKernels.dotF16(a, halves, count: count)
                    == FloatKernels.dotF16(a, b, count: count))
            if count % 16 == 0 {
                #expect(
                    FloatKernels.dotLanes16(a, halves, count: count)
                        == FloatKernels.dotLanes16(a, b, count: count))
            }
            weightedSumsMatchReference(weights: a, count: count, using: &random)
        }
    }

    @Test(
        "dotsF16 gives each position dotF16's bits times the scale", arguments: [64, 96, 128])
    func scoresOfManyPositions(count: Int) {
        var random = SplitMix64(seed: 0x5C0)
        let query = (0..<count).map { _ in Float(Float16(random.nextGaussian())) }
        let positions = 41
        let keys = (0..<(positions * count)).map { _ in Float16(random.nextGaussian()) }
        let scale: Float = 0.125
        for visible in [0, 1, 15, 16, 17, 32, 33, 41] {
            var scores = [Float](repeating: .nan, count: positions)
            keys.withUnsafeBufferPointer { keys in
                FloatKernels.dotsF16(
                    query, count: count, positions: visible,
                    key: { keys.baseAddress! + $0 * count },
                    scale: scale, into: &scores)
            }
            for p in 0..<visible {
                let key = Array(keys[(p * count)..<((p + 1) * count)])
                let expected = FloatKernels.dotF16(query, key, count: count) * scale
                #expect(
                    scores[p].bitPattern == expected.bitPattern,
                    "head \(count), \(visible) positions, position \(p)")
            }
            let untouched = scores[visible...].allSatisfy { $0.isNaN }
            #expect(untouched, "wrote past \(visible) positions")
        }
    }

    private func weightedSumsMatchReference(
        weights: [Float], count: Int, using random: inout SplitMix64
    ) {
        let width = 24
        let rows = (0..<(count * width)).map { _ in Float(Float16(random.nextGaussian())) }
        var lanes = [Float](repeating: .nan, count: 64 * width)
        var fast = [Float](repeating: .nan, count: width)
        var reference = [Float](repeating: .nan, count: width)

        rows.withUnsafeBufferPointer { rows in
            let row = { rows.baseAddress! + $0 * width }
            for laneCount in [16, 64] {
                if laneCount == 16 {
                    FloatKernels.weightedSumLanes16(
                        weights, count: count, width: width, row: row, lanes: &lanes,
                        into: &fast)
                } else {
                    FloatKernels.weightedSumLanes64(
                        weights, count: count, width: width, row: row, lanes: &lanes,
                        into: &fast)
                }
                ReferenceFloatKernels.weightedSum(
                    weights, count: count, width: width, laneCount: laneCount, row: row,
                    into: &reference)
                #expect(bits(fast) == bits(reference), "\(laneCount) lanes over \(count)")

                // The same rows stored as Float16, as the KV cache holds them: the same bits.
                let halves = (0..<(count * width)).map { Float16(rows[$0]) }
                var fromHalves = [Float](repeating: .nan, count: width)
                halves.withUnsafeBufferPointer { halves in
                    let halfRow = { UnsafePointer(halves.baseAddress! + $0 * width) }
                    if laneCount == 16 {
                        FloatKernels.weightedSumLanes16(
                            weights, count: count, width: width, row: halfRow, lanes: &lanes,
                            into: &fromHalves)
                    } else {
                        FloatKernels.weightedSumLanes64(
                            weights, count: count, width: width, row: halfRow, lanes: &lanes,
                            into: &fromHalves)
                    }
                }
                #expect(bits(fromHalves) == bits(fast), "Float16 rows, \(laneCount) lanes")
            }
        }
    }

    @Test("RoPE fuses its rotation as GCC does: fma(x0, cos, -(x1 sin)), fma(x0, sin, x1 cos)")
    func ropeFusesLikeGCC() {
        var random = SplitMix64(seed: 0x807E)
        let original = (0..<64).map { _ in random.nextGaussian() }
        var x = original
        FloatKernels.rope(&x, position: 37, dims: 64, base: 10000, interleaved: true)

        var theta = Float(37)
        let scale = powf(10000, -2 / Float(64))
        for pair in 0..<32 {
            let (c, s) = (cosf(theta), sinf(theta))
            let (x0, x1) = (original[2 * pair], original[2 * pair + 1])
            #expect(x[2 * pair] == fmaf(x0, c, -(x1 * s)))
            #expect(x[2 * pair + 1] == fmaf(x0, s, x1 * c))
            theta *= scale
        }
    }

    // MARK: - Helpers

    private func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

    /// Binary16 numbers stored little-endian, as floats.
    private func halves(_ base64: String) throws -> [Float] {
        let raw = try QuantFixture.bytes(base64)
        return raw.withUnsafeBytes { buffer in
            (0..<(raw.count / 2)).map { buffer.baseAddress!.loadHalf(at: 2 * $0) }
        }
    }
}

/// float_kernels.json, written by scripts/reference/make_kernel_fixtures.py.
struct KernelFixture: Decodable {
    struct Exp: Decodable {
        let x: String
        let y: String
    }

    struct Softmax: Decodable {
        let count: Int
        let x: String
        let y: String
    }

    struct SwiGLU: Decodable {
        let count: Int
        let gate: String
        let up: String
        let y: String
    }

    struct Dot: Decodable {
        let type: String
        let count: Int
        let x: String
        let y: String
        let dot: String
    }

    struct MulMat: Decodable {
        let type: String
        let out_features: Int
        let in_features: Int
        let rows: Int
        let weights: String
        let x: String
        let y: String
    }

    let exp: Exp
    let softmax: [Softmax]
    let swiglu: [SwiGLU]
    let dot: [Dot]
    let mul_mat: [MulMat]

    static func load() throws -> KernelFixture {
        guard
            let url = Bundle.module.url(
                forResource: "float_kernels", withExtension: "json", subdirectory: "Fixtures")
        else { throw QuantFixture.MissingFixture(name: "float_kernels") }
        return try JSONDecoder().decode(Self.self, from: Data(contentsOf: url))
    }
}
