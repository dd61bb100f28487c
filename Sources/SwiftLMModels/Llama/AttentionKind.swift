/// How a decoder's attention is computed: exactly, or one of the cheaper approximations of the
/// long-sequence work. Part of `LlamaConfig`, so a model trained with a kind is run with it.
///
/// JSON (model config files and checkpoints): `{"kind": "exact"}`,
/// `{"kind": "sliding_window", "window": 256, "global_positions": [0], "random_blocks": 0}`,
/// `{"kind": "performer", "features": 256, "redraw_every": 1000}`.
public enum AttentionKind: Equatable, Sendable {
    /// Softmax attention over every earlier position (computed in tiles when training).
    case exact
    /// Each position sees the `window` positions up to itself, plus the global positions (which
    /// see and are seen by all), plus `randomBlocks` random key blocks per query block
    /// (Longformer; BigBird).
    case slidingWindow(window: Int, globalPositions: [Int], randomBlocks: Int)
    /// Performer's FAVOR+: softmax approximated with `features` positive orthogonal random
    /// features, redrawn every `redrawEvery` training steps (0: never).
    case performer(features: Int, redrawEvery: Int)

    /// Checks the parameters; throws naming the bad one.
    public func validate(contextLength: Int) throws {
        switch self {
        case .exact:
            return
        case .slidingWindow(let window, let globalPositions, let randomBlocks):
            guard window >= 1 else {
                throw ModelError.invalidMetadata(
                    key: "attention.window", value: "\(window)", expected: ">= 1")
            }
            if let bad = globalPositions.first(where: { $0 < 0 || $0 >= contextLength }) {
                throw ModelError.invalidMetadata(
                    key: "attention.global_positions", value: "\(bad)",
                    expected: "positions in 0..<\(contextLength)")
            }
            guard randomBlocks >= 0 else {
                throw ModelError.invalidMetadata(
                    key: "attention.random_blocks", value: "\(randomBlocks)", expected: ">= 0")
            }
        case .performer(let features, let redrawEvery):
            guard features >= 1 else {
                throw ModelError.invalidMetadata(
                    key: "attention.features", value: "\(features)", expected: ">= 1")
            }
            guard redrawEvery >= 0 else {
                throw ModelError.invalidMetadata(
                    key: "attention.redraw_every", value: "\(redrawEvery)", expected: ">= 0")
            }
        }
    }

    /// The name in JSON and reports: "exact", "sliding_window", "performer".
    public var name: String {
        switch self {
        case .exact: return "exact"
        case .slidingWindow: return "sliding_window"
        case .performer: return "performer"
        }
    }
}

extension AttentionKind: Codable {
    enum CodingKeys: String, CodingKey {
        case kind, window
        case globalPositions = "global_positions"
        case randomBlocks = "random_blocks"
        case features
        case redrawEvery = "redraw_every"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try container.decode(String.self, forKey: .kind)
        switch kind {
        case "exact":
            self = .exact
        case "sliding_window":
            self = .slidingWindow(
                window: try container.decode(Int.self, forKey: .window),
                globalPositions: try container.decodeIfPresent(
                    [Int].self, forKey: .globalPositions) ?? [],
                randomBlocks: try container.decodeIfPresent(Int.self, forKey: .randomBlocks) ?? 0)
        case "performer":
            self = .performer(
                features: try container.decodeIfPresent(Int.self, forKey: .features) ?? 256,
                redrawEvery: try container.decodeIfPresent(Int.self, forKey: .redrawEvery) ?? 0)
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: container,
                debugDescription: "unknown attention kind '\(kind)'; expected exact, "
                    + "sliding_window or performer")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .kind)
        switch self {
        case .exact:
            break
        case .slidingWindow(let window, let globalPositions, let randomBlocks):
            try container.encode(window, forKey: .window)
            try container.encode(globalPositions, forKey: .globalPositions)
            try container.encode(randomBlocks, forKey: .randomBlocks)
        case .performer(let features, let redrawEvery):
            try container.encode(features, forKey: .features)
            try container.encode(redrawEvery, forKey: .redrawEvery)
        }
    }
}
