import Foundation
import Testing

@testable import SwiftLMCore

@Suite("BLAS: matrix products through the system BLAS")
struct BLASTests {
    /// A plain triple loop over stored layouts: the reference for every case below.
    static func reference(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, _ a: [Float], _ b: [Float],
        beta: Float, _ c: [Float]
    ) -> [Float] {
        var result = c
        for i in 0..<m {
            for j in 0..<n {
                var sum: Double = 0
                for p in 0..<k {
                    let x = transposeA ? a[p * m + i] : a[i * k + p]
                    let y = transposeB ? b[j * k + p] : b[p * n + j]
                    sum += Double(x) * Double(y)
                }
                result[i * n + j] = Float(sum) + beta * c[i * n + j]
            }
        }
        return result
    }

    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(($0 * 7919 + seed * 104_729) % 2001) / 1000 - 1 }
    }

    @Test(
        "every transpose combination, split by rows or by columns across the pool",
        arguments: [(false, false), (false, true), (true, false), (true, true)])
    func products(transposeA: Bool, transposeB: Bool) {
        let pool = ThreadPool(threadCount: 3)
        // Tall (split by rows) and wide (split by columns), both past the parallel threshold.
        for (m, n, k) in [(97, 40, 33), (21, 130, 47)] {
            let a = Self.values(m * k, seed: 1)
            let b = Self.values(k * n, seed: 2)
            let c = Self.values(m * n, seed: 3)
            let expected = Self.reference(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a, b, beta: 1,
                c)
            var result = c
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    result.withUnsafeMutableBufferPointer { out in
                        BLAS.gemm(
                            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                            a.baseAddress!, lda: transposeA ? m : k, b.baseAddress!,
                            ldb: transposeB ? k : n, beta: 1, out.baseAddress!, ldc: n,
                            pool: pool)
                    }
                }
            }
            let error = zip(result, expected).map { abs($0 - $1) }.max()!
            #expect(error < 1e-4, "\(m)x\(n)x\(k): largest difference \(error)")
        }
    }

    @Test("OpenBLAS runs AVX2 or AVX-512 kernels on a CPU that has them")
    func fastKernels() {
        #if os(Linux) && arch(x86_64)
            guard CPUFeatures.host.openBLASCoreType != nil else { return }
            let name = BLAS.kernelName.lowercased()
            #expect(CPUFeatures.openBLASModernCores.contains(name), "OpenBLAS chose \(name)")
        #endif
    }
}
