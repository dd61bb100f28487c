import Foundation

/// A histogram with fixed upper bounds, as Prometheus keeps one: counts per bucket (each
/// bucket counts the observations at most its bound), their sum and count.
public struct Histogram: Sendable {
    public let bounds: [Double]
    /// Observations at most `bounds[i]` (not cumulative); the last slot counts the rest.
    public private(set) var counts: [Int]
    public private(set) var sum: Double = 0
    public private(set) var count = 0

    public init(bounds: [Double]) {
        self.bounds = bounds
        counts = [Int](repeating: 0, count: bounds.count + 1)
    }

    public mutating func observe(_ value: Double) {
        let index = bounds.firstIndex { value <= $0 } ?? bounds.count
        counts[index] += 1
        sum += value
        count += 1
    }

    /// Observations at most each bound, then all of them (Prometheus's `le` buckets).
    public var cumulativeCounts: [Int] {
        var total = 0
        return counts.map {
            total += $0
            return total
        }
    }

    /// The value below which a fraction `q` of the observations lie, read off the buckets
    /// (the bound of the bucket that holds it); nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let target = Int((q * Double(count)).rounded(.up))
        for (index, total) in cumulativeCounts.enumerated() where total >= max(target, 1) {
            return index < bounds.count ? bounds[index] : .infinity
        }
        return .infinity
    }

    /// Latencies in seconds, from 1 ms to a minute.
    public static let latencyBounds: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    ]
}

/// What the engine is doing, as `/metrics` reports it.
public struct EngineMetrics: Sendable {
    public var waitingRequests = 0
    public var runningRequests = 0
    public var kvBlockCount = 0
    public var kvBlockSize = 0
    /// Blocks held by some sequence.
    public var kvBlocksUsed = 0
    /// Blocks free for new sequences, those kept for prefix reuse included.
    public var kvBlocksFree = 0
    /// Free blocks that still hold a reusable prompt prefix.
    public var kvBlocksCached = 0
    /// Prompt blocks found in the prefix cache instead of being computed.
    public var prefixCacheHitBlocks = 0
    public var promptTokens = 0
    public var generatedTokens = 0
    public var requestsFinished: [FinishReason: Int] = [:]
    public var preemptions = 0
    public var steps = 0
    /// Generated tokens per second over the last few seconds.
    public var tokensPerSecond = 0.0
    public var timeToFirstToken = Histogram(bounds: Histogram.latencyBounds)
    public var interTokenLatency = Histogram(bounds: Histogram.latencyBounds)

    public init() {}
}
