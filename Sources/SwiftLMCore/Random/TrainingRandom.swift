import Foundation

/// The random numbers of training (weight initialisation, data windows, dropout masks):
/// xoshiro256** (Blackman and Vigna, 2018), seeded through SplitMix64.
///
/// Its whole state is four words, saved in every checkpoint, so a resumed run draws exactly
/// the numbers the uninterrupted run would have drawn.
public struct TrainingRandom: RandomNumberGenerator, Codable, Equatable, Sendable {
    public private(set) var state: [UInt64]

    public init(seed: UInt64) {
        var mix = seed
        state = (0..<4).map { _ in
            mix &+= 0x9E37_79B9_7F4A_7C15
            var z = mix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Restores a saved state; throws nothing, but requires four words, not all zero.
    public init(state: [UInt64]) {
        precondition(state.count == 4 && state.contains { $0 != 0 }, "invalid xoshiro state")
        self.state = state
    }

    public mutating func next() -> UInt64 {
        let result = rotate(state[1] &* 5, 7) &* 9
        let shifted = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= shifted
        state[3] = rotate(state[3], 45)
        return result
    }

    /// A uniform float in [0, 1) from the top 24 bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// A standard normal sample (Box-Muller), for weight initialisation.
    public mutating func nextNormal() -> Float {
        let u1 = max(Double(next() >> 11) / Double(1 << 53), .leastNonzeroMagnitude)
        let u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
