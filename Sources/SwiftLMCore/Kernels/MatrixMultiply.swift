/// A weight matrix `[outFeatures, inFeatures]` of any supported element type, with the dot
/// kernel and activation format resolved once so the hot loop does no type dispatch.
///
/// The product follows llama.cpp's CPU backend: each input row is first quantized to the
/// weight type's activation format (Q8_1 for Q4_1, Q8_0 for Q8_0, Q8_K for K-quants...), then
/// every output element is a block-wise integer dot product. This is both the fast path and
/// the one whose rounding matches llama.cpp's logits.
public struct WeightMatrix: @unchecked Sendable {
    public let tensor: Tensor
    public let activationType: ElementType
    /// The kernels for one activation row and for several: they differ for F32 and F16.
    private let kernel: DotKernel
    private let batchedKernel: DotKernel
    /// Four output features at a time, where the type and the CPU have such a kernel.
    private let tileKernel: TileKernel?

    public var outFeatures: Int { tensor.shape[0] }
    public var inFeatures: Int { tensor.shape[1] }

    public init(_ tensor: Tensor) {
        precondition(tensor.rank == 2, "a weight matrix is 2-D, got \(tensor.shape)")
        self.tensor = tensor
        activationType = Quantization.activationType(for: tensor.type)
        kernel = Quantization.dotKernel(for: tensor.type, rowCount: 1)
        batchedKernel = Quantization.dotKernel(for: tensor.type, rowCount: 2)
        tileKernel =
            tensor.shape[0] % 4 == 0 ? Quantization.tileKernel(for: tensor.type) : nil
    }

    /// Bytes of scratch that `multiply` needs for `rowCount` input rows.
    public func scratchBytes(rowCount: Int) -> Int {
        rowCount * activationType.byteCount(elements: inFeatures)!
    }

    /// `[rowCount, inFeatures] -> [rowCount, outFeatures]`: `output = input · weightᵀ`.
    ///
    /// Threads split the output features, so each weight row is read once for all input rows.
    public func multiply(
        _ input: UnsafePointer<Float>, rowCount: Int, into output: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutableRawPointer, pool: ThreadPool
    ) {
        let inFeatures = inFeatures
        let outFeatures = outFeatures
        let activationRowBytes = activationType.byteCount(elements: inFeatures)!
        let activationType = activationType

        // Quantize the activations once; every output feature reuses them.
        pool.parallelFor(rowCount) { rows in
            for row in rows {
                Quantization.quantizeActivations(
                    input + row * inFeatures, count: inFeatures, as: activationType,
                    into: scratch + row * activationRowBytes)
            }
        }

        let weights = tensor.raw
        let weightRowBytes = tensor.rowBytes
        // Tiles pay in prefill, where each block of four weight rows meets many activation
        // rows. In decode a product reads every weight once for one row: reading four rows
        // at a time there stalled on memory (a Q8_0 output head took 1.5 times as long), while
        // one row after another reads the matrix front to back.
        if let tileKernel, rowCount >= 2 {
            pool.parallelFor(outFeatures / 4) { groups in
                for group in groups {
                    let feature = group * 4
                    tileKernel(
                        weights + feature * weightRowBytes, weightRowBytes, scratch,
                        activationRowBytes, rowCount, inFeatures, output + feature, outFeatures)
                }
            }
            return
        }
        let kernel = rowCount >= 2 ? batchedKernel : kernel
        pool.parallelFor(outFeatures) { features in
            for feature in features {
                let weightRow = weights + feature * weightRowBytes
                for row in 0..<rowCount {
                    output[row * outFeatures + feature] = kernel(
                        weightRow, scratch + row * activationRowBytes, inFeatures)
                }
            }
        }
    }
}
