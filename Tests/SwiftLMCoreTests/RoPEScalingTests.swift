import Foundation
import SwiftLMCore
import Testing

/// The scaled RoPE kernel against ggml's `ggml_rope_ext`, against unscaled RoPE and against the
/// papers' formulas in Double. Whole-model logits are compared with llama.cpp's in
/// SwiftLMModelsTests.
@Suite("RoPE scaling: linear, NTK-aware and YaRN")
struct RoPEScalingTests {
    /// One call of ggml's `ggml_rope_ext` (scripts/reference/make_rope_scaling_fixtures.py):
    /// `heads` heads at each position, `[positions, heads, head_dim]` values in and out.
    struct GGMLCase: Decodable {
        let name: String
        let type: String
        let factor: Float
        let original_context_length: Int
        let base: Float
        let head_dim: Int
        let dims: Int
        let beta_fast: Float
        let beta_slow: Float
        let positions: [Int]
        let heads: Int
        let input: String
        let output: String

        var scaling: RoPEScaling {
            type == "yarn"
                ? .yarn(
                    factor: factor, originalContextLength: original_context_length,
                    betaFast: beta_fast, betaSlow: beta_slow)
                : .linear(factor: factor)
        }
    }

    struct GGMLFixture: Decodable {
        let cases: [GGMLCase]
    }

    @Test("linear and YaRN rotations equal ggml_rope_ext's bit for bit, to position 32767")
    func matchesGGML() throws {
        let url = try #require(
            Bundle.module.url(
                forResource: "rope_scaling", withExtension: "json", subdirectory: "Fixtures"))
        let fixture = try JSONDecoder().decode(GGMLFixture.self, from: Data(contentsOf: url))
        #expect(fixture.cases.count >= 7)

        for ggml in fixture.cases {
            let table = RoPETable(dims: ggml.dims, base: ggml.base, scaling: ggml.scaling)
            var values = try QuantFixture.floats(ggml.input)
            let expected = try QuantFixture.floats(ggml.output)
            values.withUnsafeMutableBufferPointer { buffer in
                for (index, position) in ggml.positions.enumerated() {
                    for head in 0..<ggml.heads {
                        let offset = (index * ggml.heads + head) * ggml.head_dim
                        FloatKernels.rope(
                            buffer.baseAddress! + offset, position: position, table: table,
                            interleaved: true)
                    }
                }
            }
            #expect(values.count == expected.count)
            let mismatches = values.indices.filter {
                values[$0].bitPattern != expected[$0].bitPattern
            }
            let first = mismatches.first.map { "at \($0): \(values[$0]) vs \(expected[$0])" } ?? ""
            #expect(
                mismatches.count == 0,
                "\(ggml.name): \(mismatches.count) values differ, first \(first)")
        }
    }

    static let base: Float = 10000

    /// A head of `dims` random values in [-1, 1).
    static func head(_ dims: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<dims).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Double(state >> 40) / Double(1 << 23) - 1)
        }
    }

    static func rotated(
        _ x: [Float], position: Int, table: RoPETable, interleaved: Bool = true
    ) -> [Float] {
        var y = x
        FloatKernels.rope(&y, position: position, table: table, interleaved: interleaved)
        return y
    }

    /// RoPE in Double: pair p turns by `angle(p)`, and both outputs are scaled by `magnitude`.
    static func formula(
        _ x: [Float], dims: Int, magnitude: Double = 1, angle: (Int) -> Double
    ) -> [Double] {
        var y = x.map(Double.init)
        for pair in 0..<(dims / 2) {
            let (x0, x1) = (Double(x[2 * pair]), Double(x[2 * pair + 1]))
            let theta = angle(pair)
            y[2 * pair] = magnitude * (x0 * cos(theta) - x1 * sin(theta))
            y[2 * pair + 1] = magnitude * (x0 * sin(theta) + x1 * cos(theta))
        }
        return y
    }

    static func largestDifference(_ a: [Float], _ b: [Double]) -> Double {
        zip(a, b).map { abs(Double($0) - $1) }.max()!
    }

    @Test(
        "the table without scaling reproduces the unscaled kernel bit for bit",
        arguments: [(true, 64), (false, 64), (true, 48), (false, 6)])
    func noneMatchesUnscaledKernel(interleaved: Bool, dims: Int) {
        let table = RoPETable(dims: dims, base: Self.base, scaling: .none)
        let x = Self.head(64, seed: 1)
        for position in [0, 1, 37, 1000, 30000] {
            var expected = x
            FloatKernels.rope(
                &expected, position: position, dims: dims, base: Self.base,
                interleaved: interleaved)
            let y = Self.rotated(x, position: position, table: table, interleaved: interleaved)
            #expect(y.map(\.bitPattern) == expected.map(\.bitPattern), "position \(position)")
        }
    }

    @Test("linear scaling by a power of two is unscaled RoPE at position / factor, bit for bit")
    func linearIsPositionOverFactor() {
        // Dividing by a power of two is exact, so ggml's `freq_scale · θ` equals the angle built
        // from the position `position / factor` by the same repeated multiplication.
        let (dims, factor) = (64, Float(4))
        let table = RoPETable(dims: dims, base: Self.base, scaling: .linear(factor: factor))
        let x = Self.head(dims, seed: 2)
        for position in [0, 3, 37, 1001] {
            var expected = x
            var theta = Float(position) / factor
            let thetaScale = powf(Self.base, -2 / Float(dims))
            for pair in 0..<(dims / 2) {
                let (c, s) = (cosf(theta), sinf(theta))
                let (x0, x1) = (x[2 * pair], x[2 * pair + 1])
                expected[2 * pair] = (-(x1 * s)).addingProduct(x0, c)
                expected[2 * pair + 1] = (x1 * c).addingProduct(x0, s)
                theta *= thetaScale
            }
            let y = Self.rotated(x, position: position, table: table)
            #expect(y.map(\.bitPattern) == expected.map(\.bitPattern), "position \(position)")
        }
    }

    @Test("linear scaling by any factor turns pair p by (position / factor) · base^(-2p/d)")
    func linearMatchesFormula() {
        let (dims, factor) = (64, 2.5)
        let table = RoPETable(dims: dims, base: Self.base, scaling: .linear(factor: Float(factor)))
        let x = Self.head(dims, seed: 3)
        for position in [1, 37, 300] {
            let expected = Self.formula(x, dims: dims) { pair in
                Double(position) / factor * pow(Double(Self.base), -2 * Double(pair) / 64)
            }
            let y = Self.rotated(x, position: position, table: table)
            #expect(Self.largestDifference(y, expected) <= 2e-5, "position \(position)")
        }
    }

    @Test("NTK-aware scaling is unscaled RoPE with the base times factor^(d / (d - 2))")
    func ntkIsScaledBase() {
        let (dims, factor) = (64, Float(8))
        let table = RoPETable(dims: dims, base: Self.base, scaling: .ntkAware(factor: factor))
        let expectedBase = 10000 * pow(8, 64.0 / 62.0)
        #expect(abs(Double(table.base) / expectedBase - 1) <= 1e-6)
        // The slowest pair, p = d/2 - 1, turns exactly `factor` times slower than unscaled.
        let slowest = pow(Double(table.base), -62.0 / 64) / pow(10000, -62.0 / 64)
        #expect(abs(slowest * 8 - 1) <= 1e-5)

        let x = Self.head(dims, seed: 4)
        for position in [0, 5, 37, 4000] {
            var expected = x
            FloatKernels.rope(
                &expected, position: position, dims: dims, base: table.base, interleaved: true)
            let y = Self.rotated(x, position: position, table: table)
            #expect(y.map(\.bitPattern) == expected.map(\.bitPattern), "position \(position)")
        }
    }

    /// YaRN's ramp and temperature in Double, from the paper ("NTK-by-parts" ramp, attention
    /// temperature), with llama.cpp's rounding of the correction dims to whole pairs.
    static func yarnReference(
        dims: Int, factor: Double, originalContextLength: Double
    ) -> (ramp: [Double], temperature: Double) {
        func correctionDim(_ rotations: Double) -> Double {
            Double(dims) * log(originalContextLength / (rotations * 2 * .pi))
                / (2 * log(Double(base)))
        }
        let low = max(0, floor(correctionDim(32)))
        let high = min(Double(dims - 1), ceil(correctionDim(1)))
        let ramp = (0..<(dims / 2)).map { 1 - min(1, max(0, (Double($0) - low) / (high - low))) }
        return (ramp, 0.1 * log(factor) + 1)
    }

    @Test(
        "YaRN's ramp and temperature follow the paper's formulas",
        arguments: [(4.0, 4096), (4.0, 150), (2.5, 1000), (16.0, 2048)])
    func yarnTable(factor: Double, originalContextLength: Int) {
        let dims = 64
        let table = RoPETable(
            dims: dims, base: Self.base,
            scaling: .yarn(factor: Float(factor), originalContextLength: originalContextLength))
        let reference = Self.yarnReference(
            dims: dims, factor: factor, originalContextLength: Double(originalContextLength))

        for (weight, expected) in zip(table.extrapolationWeights, reference.ramp) {
            #expect(abs(Double(weight) - expected) <= 1e-7)
        }
        for (weight, ramp) in zip(table.interpolationWeights, reference.ramp) {
            #expect(abs(Double(weight) - (1 - ramp)) <= 1e-7)
        }
        #expect(abs(Double(table.magnitude) - reference.temperature) <= 1e-6)
        #expect(table.frequencyScale == 1 / Float(factor))
        // Both ends are reached: some pairs keep their angle, some are fully interpolated.
        #expect(table.extrapolationWeights.first == 1)
        #expect(table.extrapolationWeights.last == 0)
    }

    @Test("YaRN rotates each pair by the paper's blended angle, scaled by the temperature")
    func yarnMatchesFormula() {
        let (dims, factor, original) = (64, 4.0, 150)
        let table = RoPETable(
            dims: dims, base: Self.base,
            scaling: .yarn(factor: Float(factor), originalContextLength: original))
        let reference = Self.yarnReference(
            dims: dims, factor: factor, originalContextLength: Double(original))
        let x = Self.head(dims, seed: 5)
        for position in [1, 37, 500] {
            let expected = Self.formula(x, dims: dims, magnitude: reference.temperature) { pair in
                let theta = Double(position) * pow(Double(Self.base), -2 * Double(pair) / 64)
                let ramp = reference.ramp[pair]
                return theta / factor * (1 - ramp) + theta * ramp
            }
            let y = Self.rotated(x, position: position, table: table)
            #expect(Self.largestDifference(y, expected) <= 3e-5, "position \(position)")
        }
    }

    @Test("scalings decode with defaults and survive a JSON round trip")
    func codable() throws {
        let yarn = RoPEScaling.yarn(factor: 4, originalContextLength: 4096, betaFast: 16)
        let data = try JSONEncoder().encode(yarn)
        #expect(try JSONDecoder().decode(RoPEScaling.self, from: data) == yarn)

        let short = Data(#"{"kind": "ntkAware", "factor": 2}"#.utf8)
        #expect(try JSONDecoder().decode(RoPEScaling.self, from: short) == .ntkAware(factor: 2))
    }

    @Test("scalings the kernels cannot use name the field")
    func problems() {
        #expect(RoPEScaling.none.problem(dims: 64) == nil)
        #expect(RoPEScaling.linear(factor: 0).problem(dims: 64)?.field == "scaling.factor")
        #expect(RoPEScaling.ntkAware(factor: 2).problem(dims: 2)?.field == "dimension_count")
        #expect(
            RoPEScaling.yarn(factor: 4, originalContextLength: 0).problem(dims: 64)?.field
                == "scaling.original_context_length")
        #expect(
            RoPEScaling.yarn(factor: 4, originalContextLength: 64, betaSlow: .nan)
                .problem(dims: 64)?.field == "scaling.yarn_beta_slow")
    }
}
