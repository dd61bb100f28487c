import Foundation
import SwiftLMKernelsAVX512

/// What this machine can do at best, measured: the ceilings that docs/PERFORMANCE.md sets the
/// kernels against (`swiftlm bench --ceilings`).
///
/// Each rate is the best of several timed rounds, every thread of the pool working at once:
/// - memory read bandwidth: sums of a buffer far larger than the caches, each thread its own
///   contiguous part (what a decode step does with the weights);
/// - cache read bandwidth: the same over a buffer that fits each core's L2;
/// - float multiply-adds: eight independent 16-lane fused multiply-add chains on registers;
/// - int8 multiply-adds: `vpdpbusd` the same way where the CPU has AVX-512 VNNI, else nil.
public enum MachineCeilings {
    public struct Report: Sendable {
        public var threads: Int
        public var memoryReadGBps: Double
        public var cacheReadGBps: Double
        public var floatGFMAps: Double
        public var int8GMACps: Double?
    }

    public static func measure(pool: ThreadPool, rounds: Int = 5) -> Report {
        Report(
            threads: pool.threadCount,
            memoryReadGBps: readBandwidth(bytes: 512 << 20, passes: 1, pool: pool, rounds: rounds),
            cacheReadGBps: readBandwidth(
                bytes: (256 << 10) * pool.threadCount, passes: 2000, pool: pool, rounds: rounds),
            floatGFMAps: floatRate(pool: pool, rounds: rounds),
            int8GMACps: int8Rate(pool: pool, rounds: rounds))
    }

    /// GB/s of reading `bytes`, `passes` times, split by thread.
    static func readBandwidth(bytes: Int, passes: Int, pool: ThreadPool, rounds: Int) -> Double {
        let count = bytes / MemoryLayout<Float>.size
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount * 16)
        defer { sums.deallocate() }

        let seconds = best(rounds) {
            pool.parallelFor(pool.threadCount) { parts, thread in
                for part in parts {
                    let lower = count * part / pool.threadCount
                    let upper = count * (part + 1) / pool.threadCount
                    var total = SIMD16<Float>()
                    for _ in 0..<passes {
                        var (a, b, c, d) = (
                            SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>()
                        )
                        var i = lower
                        while i + 64 <= upper {
                            let raw = UnsafeRawPointer(buffer + i)
                            a += raw.loadUnaligned(as: SIMD16<Float>.self)
                            b += raw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
                            c += raw.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self)
                            d += raw.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self)
                            i += 64
                        }
                        total += (a + b) + (c + d)
                    }
                    UnsafeMutableRawPointer(sums + thread * 16).storeBytes(
                        of: total, as: SIMD16<Float>.self)
                }
            }
        }
        return Double(bytes) * Double(passes) / seconds / 1e9
    }

    /// Billions of float multiply-adds per second.
    static func floatRate(pool: ThreadPool, rounds: Int) -> Double {
        let iterations = 20_000_000
        let sink = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount)
        defer { sink.deallocate() }
        let seconds = best(rounds) {
            pool.parallelFor(pool.threadCount) { parts, thread in
                for _ in parts { sink[thread] = fmaLoop(iterations: iterations) }
            }
        }
        return Double(iterations) * 8 * 16 * Double(pool.threadCount) / seconds / 1e9
    }

    @inline(never)
    static func fmaLoop(iterations: Int) -> Float {
        let x = SIMD16<Float>(repeating: 1.000_001)
        let y = SIMD16<Float>(repeating: 0.999_999)
        var (a, b, c, d) = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
        var (e, f, g, h) = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
        for _ in 0..<iterations {
            a = a.addingProduct(x, y)
            b = b.addingProduct(x, y)
            c = c.addingProduct(x, y)
            d = d.addingProduct(x, y)
            e = e.addingProduct(x, y)
            f = f.addingProduct(x, y)
            g = g.addingProduct(x, y)
            h = h.addingProduct(x, y)
        }
        return ((a + b) + (c + d) + (e + f) + (g + h)).sum()
    }

    /// Billions of int8 multiply-adds per second with `vpdpbusd`, or nil without AVX-512 VNNI.
    static func int8Rate(pool: ThreadPool, rounds: Int) -> Double? {
        #if arch(x86_64)
            guard AVX512Kernels.isSupported else { return nil }
            let iterations = 20_000_000
            let sink = UnsafeMutablePointer<Int32>.allocate(capacity: pool.threadCount)
            defer { sink.deallocate() }
            let seconds = best(rounds) {
                pool.parallelFor(pool.threadCount) { parts, thread in
                    for _ in parts {
                        sink[thread] = AVX512Kernels.int8MultiplyAddLoop(iterations: iterations)
                    }
                }
            }
            return Double(iterations) * 8 * 64 * Double(pool.threadCount) / seconds / 1e9
        #else
            return nil
        #endif
    }

    /// The shortest of `rounds` timings of `body`, in seconds.
    static func best(_ rounds: Int, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        var fastest = Double.infinity
        for _ in 0..<rounds {
            let elapsed = clock.measure(body)
            let (whole, fraction) = elapsed.components
            fastest = min(fastest, Double(whole) + Double(fraction) * 1e-18)
        }
        return fastest
    }
}
