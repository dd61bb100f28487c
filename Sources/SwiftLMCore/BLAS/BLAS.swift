#if canImport(Accelerate)
    import Accelerate
#else
    import COpenBLAS
#endif
import Foundation

/// Single-precision matrix products through the system BLAS: OpenBLAS on Linux, Accelerate on
/// Apple platforms. Training's matrix multiplies go through here; inference keeps its own
/// quantized kernels (`WeightMatrix`).
///
/// BLAS runs single-threaded inside each call, and `gemm(..., pool:)` splits the product
/// across SwiftLM's one `ThreadPool`, so two pools of spinning threads never compete for the
/// same cores.
public enum BLAS {
    /// The kernel set OpenBLAS chose, for reports (`"Haswell"`, `"SkylakeX"`...).
    public static var kernelName: String {
        prepare()
        #if canImport(Accelerate)
            return "Accelerate"
        #else
            return String(cString: openblas_get_corename())
        #endif
    }

    /// `c[m, n] = alpha · op(a) · op(b) + beta · c`, row-major, on the calling thread.
    ///
    /// `op(a)` is `[m, k]`: `a` is stored `[m, k]`, or `[k, m]` when `transposeA`. Likewise
    /// `op(b)` is `[k, n]`, stored `[k, n]` or `[n, k]` when `transposeB`. The leading
    /// dimensions are the stored row lengths.
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        prepare()
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a,
            Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The same product split across `pool`: by rows of `c` when it has more rows than
    /// columns, else by columns, so each thread computes a disjoint block of `c`.
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool
    ) {
        // Below this much work a handoff to the workers costs more than it saves.
        let parallelMinimum = 1 << 16
        let threads = pool.threadCount
        guard threads > 1, m * n * k >= parallelMinimum else {
            gemm(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                a, lda: lda, b, ldb: ldb, beta: beta, c, ldc: ldc)
            return
        }

        if m >= n {
            // Rows i of op(a) start at row i of a, or at column i when a is transposed.
            let aStride = transposeA ? 1 : lda
            pool.parallelFor(threads) { chunks in
                for chunk in chunks {
                    let rows = split(m, into: threads, part: chunk)
                    gemm(
                        transposeA: transposeA, transposeB: transposeB, m: rows.count, n: n,
                        k: k, alpha: alpha, a + rows.lowerBound * aStride, lda: lda, b, ldb: ldb,
                        beta: beta, c + rows.lowerBound * ldc, ldc: ldc)
                }
            }
        } else {
            let bStride = transposeB ? ldb : 1
            pool.parallelFor(threads) { chunks in
                for chunk in chunks {
                    let columns = split(n, into: threads, part: chunk)
                    gemm(
                        transposeA: transposeA, transposeB: transposeB, m: m, n: columns.count,
                        k: k, alpha: alpha, a, lda: lda, b + columns.lowerBound * bStride,
                        ldb: ldb, beta: beta, c + columns.lowerBound, ldc: ldc)
                }
            }
        }
    }

    /// Part `part` of `0..<count` cut into `parts` nearly equal contiguous ranges.
    static func split(_ count: Int, into parts: Int, part: Int) -> Range<Int> {
        let base = count / parts
        let extra = count % parts
        let start = part * base + min(part, extra)
        return start..<(start + base + (part < extra ? 1 : 0))
    }

    private static func prepare() { _ = configured }

    /// One-time setup before the first product.
    ///
    /// OpenBLAS's own threads would spin against SwiftLM's pool, so it is held to one thread.
    /// OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels from a table of CPU models
    /// and falls back to generic SSE kernels, about three times slower, on processors newer
    /// than the table. When that happens on a CPU with AVX2, the kernels are chosen again from
    /// the CPU's feature flags. A user's own OPENBLAS_CORETYPE is left alone.
    private static let configured: Void = {
        #if !canImport(Accelerate)
            if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
                let better = CPUFeatures.host.openBLASCoreType,
                !CPUFeatures.openBLASModernCores.contains(
                    String(cString: openblas_get_corename()).lowercased())
            {
                gotoblas_dynamic_quit()
                setenv("OPENBLAS_CORETYPE", better, 1)
                gotoblas_dynamic_init()
                unsetenv("OPENBLAS_CORETYPE")
            }
            openblas_set_num_threads(1)
        #endif
    }()
}

/// The instruction-set extensions of the host CPU that library choices depend on.
struct CPUFeatures {
    var flags: Set<String>

    /// Read from /proc/cpuinfo's first `flags` line (Linux); empty elsewhere.
    static let host: CPUFeatures = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
            let colon = line.firstIndex(of: ":")
        else { return CPUFeatures(flags: []) }
        return CPUFeatures(flags: Set(line[line.index(after: colon)...].split(separator: " ")
            .map(String.init)))
    }()

    /// OpenBLAS kernel sets with AVX2 or AVX-512 GEMM kernels, lowercased.
    static let openBLASModernCores: Set<String> = [
        "haswell", "zen", "skylakex", "cooperlake", "sapphirerapids",
    ]

    /// The best OpenBLAS kernel set these flags allow, or nil without AVX2.
    var openBLASCoreType: String? {
        let avx512 = ["avx512f", "avx512vl", "avx512bw", "avx512dq"]
        if avx512.allSatisfy(flags.contains) { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }
}
