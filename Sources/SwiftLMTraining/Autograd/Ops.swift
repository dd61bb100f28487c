import SwiftLMCore

/// The differentiable operations of a decoder-only transformer, forward and backward.
///
/// Conventions shared by every operation (one file per family, `Ops+Family.swift`):
/// - Inputs and outputs are F32 `Variable`s, row-major, shapes outermost first. Token-major
///   activations are `[tokens, features]` with `tokens = batchSize * seqLen`.
/// - The forward computes into a fresh `Tensor`; the backward closure reads `output.gradient`
///   and *adds* into `input.gradientStorage()` for each input that `requiresGradient` (an input
///   may feed several operations, and its gradients sum).
/// - What the backward needs from the forward is captured by the closure, and nothing more:
///   a checkpointed block drops it all after the forward.
/// - Matrix products go through `BLAS`, elementwise loops through `Ops.pool`.
/// - Each operation has a finite-difference test in Tests/SwiftLMTrainingTests.
public enum Ops {
    /// The thread pool that training operations run on (SwiftLM's one pool per process; the
    /// trainer sets it from `--threads`).
    nonisolated(unsafe) public static var pool = ThreadPool(
        threadCount: ThreadPool.defaultThreadCount)

    /// `[...] + [...] -> [...]` (same shapes): residual connections.
    public static func add(_ a: Variable, _ b: Variable) -> Variable {
        precondition(a.shape == b.shape, "add: shapes \(a.shape) and \(b.shape) differ")
        let count = a.elementCount
        let result = Tensor(uninitialized: a.shape)
        let x = a.value.floats
        let y = b.value.floats
        let out = result.floats
        pool.parallelFor(count) { chunk in
            for index in chunk { out[index] = x[index] + y[index] }
        }

        return Variable(result, inputs: [a, b]) { output in
            let upstream = output.gradient!.floats
            for input in [a, b] where input.requiresGradient {
                let target = input.gradientStorage()
                pool.parallelFor(count) { chunk in
                    for index in chunk { target[index] += upstream[index] }
                }
            }
        }
    }

    /// `[tokens, inFeatures] · [outFeatures, inFeatures]ᵀ -> [tokens, outFeatures]`: a linear
    /// layer without bias, with the weight stored as the model files store it.
    public static func linear(_ x: Variable, weight: Variable) -> Variable {
        precondition(x.value.rank == 2 && weight.value.rank == 2, "linear: 2-D operands")
        let tokens = x.shape[0]
        let inFeatures = x.shape[1]
        let outFeatures = weight.shape[0]
        precondition(weight.shape[1] == inFeatures, "linear: \(x.shape) · \(weight.shape)ᵀ")
        if weight.value.type != .f32 { return frozenQuantizedLinear(x, weight: weight.value) }
        let result = Tensor(uninitialized: [tokens, outFeatures])
        BLAS.gemm(
            transposeA: false, transposeB: true, m: tokens, n: outFeatures, k: inFeatures,
            x.value.floats, lda: inFeatures, weight.value.floats, ldb: inFeatures,
            result.floats, ldc: outFeatures, pool: pool)

        return Variable(result, inputs: [x, weight]) { output in
            let upstream = output.gradient!.floats
            // dX[tokens, in] += dY[tokens, out] · W[out, in]
            if x.requiresGradient {
                BLAS.gemm(
                    transposeA: false, transposeB: false, m: tokens, n: inFeatures,
                    k: outFeatures, upstream, lda: outFeatures, weight.value.floats,
                    ldb: inFeatures, beta: 1, x.gradientStorage(), ldc: inFeatures, pool: pool)
            }
            // dW[out, in] += dYᵀ[out, tokens] · X[tokens, in]
            if weight.requiresGradient {
                BLAS.gemm(
                    transposeA: true, transposeB: false, m: outFeatures, n: inFeatures,
                    k: tokens, upstream, lda: outFeatures, x.value.floats, ldb: inFeatures,
                    beta: 1, weight.gradientStorage(), ldc: inFeatures, pool: pool)
            }
        }
    }

    /// Rows of a quantized weight dequantized at a time: about a megabyte of floats, so the
    /// panel stays in the L2 cache while BLAS reads it and no F32 copy of the matrix exists.
    static let dequantizedPanelFloats = 1 << 18

    /// `Ops.linear` with a frozen quantized weight (QLoRA's base): the weight is dequantized
    /// panel by panel in the forward and again in the backward, which passes the gradient on
    /// to `x` only. A full-size F32 copy would cost 4 bytes a weight instead of about 0.6
    /// (Q4_1), the memory QLoRA exists to save; the price is one dequantization per pass.
    static func frozenQuantizedLinear(_ x: Variable, weight: Tensor) -> Variable {
        let tokens = x.shape[0]
        let inFeatures = x.shape[1]
        let outFeatures = weight.shape[0]
        let panelRows = max(1, min(outFeatures, dequantizedPanelFloats / inFeatures))
        let result = Tensor(uninitialized: [tokens, outFeatures])
        forEachDequantizedPanel(of: weight, rows: panelRows) { panel, first, rows in
            BLAS.gemm(
                transposeA: false, transposeB: true, m: tokens, n: rows, k: inFeatures,
                x.value.floats, lda: inFeatures, panel, ldb: inFeatures, result.floats + first,
                ldc: outFeatures, pool: pool)
        }

        return Variable(result, inputs: [x]) { output in
            let upstream = output.gradient!.floats
            let target = x.gradientStorage()
            // dX[tokens, in] += dY[tokens, panel] · W[panel, in], panel by panel.
            forEachDequantizedPanel(of: weight, rows: panelRows) { panel, first, rows in
                BLAS.gemm(
                    transposeA: false, transposeB: false, m: tokens, n: inFeatures, k: rows,
                    upstream + first, lda: outFeatures, panel, ldb: inFeatures, beta: 1,
                    target, ldc: inFeatures, pool: pool)
            }
        }
    }

    /// Calls `body(panel, firstRow, rowCount)` for consecutive panels of at most `rows` rows
    /// of `weight`, each dequantized to F32 by the pool's threads.
    static func forEachDequantizedPanel(
        of weight: Tensor, rows panelRows: Int,
        _ body: (UnsafeMutablePointer<Float>, Int, Int) -> Void
    ) {
        let outFeatures = weight.shape[0]
        let inFeatures = weight.shape[1]
        let panel = UnsafeMutablePointer<Float>.allocate(capacity: panelRows * inFeatures)
        defer { panel.deallocate() }
        for first in stride(from: 0, to: outFeatures, by: panelRows) {
            let rows = min(panelRows, outFeatures - first)
            pool.parallelFor(rows) { range in
                for row in range {
                    Quantization.dequantizeRow(
                        weight.type, weight.row(first + row), panel + row * inFeatures,
                        count: inFeatures)
                }
            }
            body(panel, first, rows)
        }
    }
}
