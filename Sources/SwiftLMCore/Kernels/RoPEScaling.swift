import Foundation

/// How rotary position embedding is stretched so that a model reaches past the context it was
/// trained on: GGUF's `<arch>.rope.scaling.*` metadata, or a choice made in code or JSON.
///
/// Each kind changes the angle `position · base^(-2p / dims)` of pair `p`:
/// - `none`: unchanged.
/// - `linear`: position interpolation (Chen et al. 2023, "Extending Context Window of Large
///   Language Models via Positional Interpolation"): the angle of `position / factor`.
/// - `ntkAware`: the base grows to `base · factor^(dims / (dims - 2))` (bloc97, "NTK-Aware Scaled
///   RoPE", 2023), so the slowest pair is interpolated by `factor` and the fastest not at all.
///   GGUF and llama.cpp have no such type: it is chosen in code or JSON (`LlamaConfig`, a
///   training config), and a GGUF file carries it as the larger `rope.freq_base`.
/// - `yarn`: YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension of Large Language
///   Models", section 3): pairs that turn more than `betaFast` times within the original context
///   keep their angle, pairs that turn fewer than `betaSlow` times are interpolated, a linear ramp
///   joins the two, and cos and sin are multiplied by the attention temperature
///   `0.1 · ln(factor) + 1`, which scales every query-key product by its square.
///
/// `RoPETable` turns a scaling into the per-pair numbers the kernels use, following llama.cpp
/// (`ggml_rope_yarn_corr_dims`, `rope_yarn_ramp` and `rope_yarn` in ggml, and the YaRN
/// attention factor of `llama_context`) so that linear and YaRN models match llama.cpp's logits.
public struct RoPEScaling: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case none
        case linear
        case ntkAware
        case yarn
    }

    public var kind: Kind
    /// How many times the trained context the positions reach (`rope.scaling.factor`); 1 for
    /// `none`.
    public var factor: Float
    /// The context the model was trained on before scaling
    /// (`rope.scaling.original_context_length`); YaRN's ramp depends on it, the other kinds do
    /// not read it.
    public var originalContextLength: Int
    /// YaRN: pairs turning at least this many times over the original context keep their angle
    /// (the paper's β, 32 for Llama).
    public var betaFast: Float
    /// YaRN: pairs turning at most this many times over the original context are interpolated
    /// (the paper's α, 1 for Llama).
    public var betaSlow: Float

    public init(
        kind: Kind, factor: Float, originalContextLength: Int = 0, betaFast: Float = 32,
        betaSlow: Float = 1
    ) {
        self.kind = kind
        self.factor = factor
        self.originalContextLength = originalContextLength
        self.betaFast = betaFast
        self.betaSlow = betaSlow
    }

    /// Unscaled RoPE.
    public static let none = RoPEScaling(kind: .none, factor: 1)

    public static func linear(factor: Float) -> RoPEScaling {
        RoPEScaling(kind: .linear, factor: factor)
    }

    public static func ntkAware(factor: Float) -> RoPEScaling {
        RoPEScaling(kind: .ntkAware, factor: factor)
    }

    public static func yarn(
        factor: Float, originalContextLength: Int, betaFast: Float = 32, betaSlow: Float = 1
    ) -> RoPEScaling {
        RoPEScaling(
            kind: .yarn, factor: factor, originalContextLength: originalContextLength,
            betaFast: betaFast, betaSlow: betaSlow)
    }

    /// What is wrong with this scaling for heads that rotate `dims` elements, as
    /// `(field, value, expected)` with `field` named as in GGUF after `rope.`, or nil when the
    /// kernels can use it.
    public func problem(dims: Int) -> (field: String, value: String, expected: String)? {
        guard kind != .none else { return nil }
        if !(factor.isFinite && factor > 0) {
            return ("scaling.factor", "\(factor)", "a finite number > 0")
        }
        if kind == .ntkAware && dims <= 2 {
            return ("dimension_count", "\(dims)", "> 2 for NTK-aware scaling")
        }
        guard kind == .yarn else { return nil }
        if originalContextLength <= 0 {
            return (
                "scaling.original_context_length", "\(originalContextLength)", "> 0 for YaRN"
            )
        }
        if !(betaFast.isFinite && betaFast > 0) {
            return ("scaling.yarn_beta_fast", "\(betaFast)", "a finite number > 0")
        }
        if !(betaSlow.isFinite && betaSlow > 0) {
            return ("scaling.yarn_beta_slow", "\(betaSlow)", "a finite number > 0")
        }
        return nil
    }

    // Decoded by hand so that a configuration written before a field existed still loads.
    private enum CodingKeys: String, CodingKey {
        case kind, factor, originalContextLength, betaFast, betaSlow
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            kind: try container.decode(Kind.self, forKey: .kind),
            factor: try container.decodeIfPresent(Float.self, forKey: .factor) ?? 1,
            originalContextLength: try container.decodeIfPresent(
                Int.self, forKey: .originalContextLength) ?? 0,
            betaFast: try container.decodeIfPresent(Float.self, forKey: .betaFast) ?? 32,
            betaSlow: try container.decodeIfPresent(Float.self, forKey: .betaSlow) ?? 1)
    }
}

/// The per-pair numbers of a scaled RoPE for heads that rotate `dims` elements, computed once
/// and shared by inference (`FloatKernels.rope(_:position:table:interleaved:)`) and training
/// (`Ops.rope`).
///
/// The angle of pair `p` at a position is built as ggml builds it (`ggml_rope_cache_init`,
/// `rope_yarn`): the unscaled angle `θ` by one multiplication per pair starting from the
/// position, then
///
///     θ' = fma(frequencyScale · θ, interpolationWeights[p], θ · extrapolationWeights[p])
///     (cos, sin) = (cosf(θ') · magnitude, sinf(θ') · magnitude)
///
/// For `none` and `ntkAware` the scale is 1 and for `linear` `1 / factor`, with the weights
/// (1, 0), so θ' is `frequencyScale · θ` exactly; YaRN's weights follow its ramp. The angles
/// are not stored per position and pair: the running product rounds differently from
/// `position · frequency[p]`, and llama.cpp's is the one to match.
public struct RoPETable: Sendable {
    /// Leading elements of a head that are rotated; even.
    public let dims: Int
    /// The base after scaling: the model's, or NTK-aware's larger one.
    public let base: Float
    /// `base^(-2 / dims)`: the ratio of the angles of neighbouring pairs.
    public let thetaScale: Float
    /// The factor on every interpolated angle: `1 / factor` for linear and YaRN, else 1.
    public let frequencyScale: Float
    /// Per pair, the share of the interpolated angle `frequencyScale · θ`: `1 - ramp`.
    public let interpolationWeights: [Float]
    /// Per pair, the share of the unscaled angle θ: YaRN's ramp, 1 for pairs that turn fast.
    public let extrapolationWeights: [Float]
    /// The factor on cos and sin: YaRN's attention temperature, else 1.
    public let magnitude: Float

    /// - Precondition: `scaling.problem(dims:)` is nil and `dims` is even and positive.
    public init(dims: Int, base: Float, scaling: RoPEScaling) {
        precondition(dims > 0 && dims % 2 == 0, "RoPETable: dims \(dims) must be even and > 0")
        if let (field, value, expected) = scaling.problem(dims: dims) {
            preconditionFailure("RoPETable: \(field) is \(value), expected \(expected)")
        }
        let half = dims / 2
        self.dims = dims

        // bloc97's rule: base · factor^(d / (d - 2)) interpolates the slowest pair by exactly
        // the factor.
        self.base =
            scaling.kind == .ntkAware
            ? base * powf(scaling.factor, Float(dims) / Float(dims - 2)) : base
        thetaScale = powf(self.base, -2 / Float(dims))

        switch scaling.kind {
        case .none, .ntkAware:
            frequencyScale = 1
            interpolationWeights = Array(repeating: 1, count: half)
            extrapolationWeights = Array(repeating: 0, count: half)
            magnitude = 1
        case .linear:
            // llama.cpp stores the inverse, `rope_freq_scale = 1 / factor`.
            frequencyScale = 1 / scaling.factor
            interpolationWeights = Array(repeating: 1, count: half)
            extrapolationWeights = Array(repeating: 0, count: half)
            magnitude = 1
        case .yarn:
            frequencyScale = 1 / scaling.factor
            let ramp = Self.yarnRamp(dims: dims, base: base, scaling: scaling)
            extrapolationWeights = ramp
            interpolationWeights = ramp.map { 1 - $0 }
            magnitude = Self.yarnMagnitude(frequencyScale: frequencyScale)
        }
    }

    /// cos and sin of pair `pair`'s scaled angle, given its unscaled angle `theta`, both times
    /// `magnitude`.
    @inlinable
    public func rotation(theta: Float, pair: Int) -> (cos: Float, sin: Float) {
        let interpolated = frequencyScale * theta
        // GCC fuses ggml's `theta_interp * (1 - ramp_mix) + theta_extrap * ramp_mix` on the
        // first product, as it does the rotation's.
        let angle = (theta * extrapolationWeights[pair]).addingProduct(
            interpolated, interpolationWeights[pair])
        return (cosf(angle) * magnitude, sinf(angle) * magnitude)
    }

    /// YaRN's ramp per pair, as ggml's `ggml_rope_yarn_corr_dims` and `rope_yarn_ramp`: 1 for the
    /// pairs that turn at least `betaFast` times over the original context, 0 for those turning
    /// at most `betaSlow` times, linear between, on the pair indices floored and ceiled.
    static func yarnRamp(dims: Int, base: Float, scaling: RoPEScaling) -> [Float] {
        // The dimension at which a pair turns `rotations` times over the original context:
        // `original / (2π base^(2p / dims)) = rotations` solved for 2p, YaRN's "NTK-by-parts"
        // wavelength rule. ggml uses the binary32 π rounded to nearest, which `Float.pi`
        // (rounded down) is not.
        func correctionDim(rotations: Float) -> Float {
            let pi = Float(Double.pi)
            let turns = Float(scaling.originalContextLength) / (rotations * 2 * pi)
            return Float(dims) * logf(turns) / (2 * logf(base))
        }
        let low = max(0, floorf(correctionDim(rotations: scaling.betaFast)))
        let high = min(Float(dims - 1), ceilf(correctionDim(rotations: scaling.betaSlow)))

        return (0..<(dims / 2)).map { pair in
            let y = (Float(pair) - low) / max(0.001, high - low)
            return 1 - min(1, max(0, y))
        }
    }

    /// The factor on YaRN's cos and sin: the temperature `0.1 · ln(factor) + 1` (YaRN's
    /// `sqrt(1/t)`), reached in llama.cpp's own steps. `llama_context` sets the attention factor
    /// to `get_mscale(factor) * (1 / (1 + 0.1 ln factor))`, 1 up to rounding (llama.cpp PR
    /// 17945), and ggml's `rope_yarn` multiplies it by `1 + 0.1 ln(1 / freq_scale)`. GCC fuses
    /// the latter in ggml-cpu, which the ggml fixture confirms; libllama is built without FMA,
    /// so the former is taken unfused, which no fixture can tell apart from fused for the
    /// factors tried. The result is the plain temperature, or an ulp off it (factors 12, 29.75).
    static func yarnMagnitude(frequencyScale: Float) -> Float {
        let factor = 1 / frequencyScale
        let logFactor = logf(factor)
        let temperature = factor <= 1 ? 1 : 0.1 * logFactor + 1
        let attentionFactor = temperature * (1 / (1 + 0.1 * logFactor))
        return attentionFactor * Float(1).addingProduct(0.1, logFactor)
    }
}
