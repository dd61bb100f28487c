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
    /// A range of output features for one activation row, where the type and the CPU have it.
    private let rowsKernel: RowsKernel?

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
        rowsKernel = Quantization.rowsKernel(for: tensor.type)
    }

    /// Bytes of scratch that `multiply` needs for `rowCount` input rows.
    public func scratchBytes(rowCount: Int) -> Int {
        rowCount * activationType.byteCount(elements: inFeatures)!
    }

    /// `[rowCount, inFeatures] -> [rowCount, outFeatures]`: `output = input · weightᵀ`.
    ///
    /// Threads split the output features, so each weight row is read once for all input rows.
    /// Pass a `product` kept from call to call to allocate nothing (one is made otherwise).
    public func multiply(
        _ input: UnsafePointer<Float>, rowCount: Int, into output: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutableRawPointer, pool: ThreadPool, product: MatrixProduct? = nil
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

        // Tiles pay in prefill, where each block of four weight rows meets many activation
        // rows. In decode a product reads every weight once for one row: reading four rows
        // at a time there stalled on memory (a Q8_0 output head took 1.5 times as long), while
        // one row after another reads the matrix front to back.
        let tiled = tileKernel != nil && rowCount >= 2
        let product = product ?? MatrixProduct()
        product.call = MatrixProduct.Call(
            weights: tensor.raw, weightRowBytes: tensor.rowBytes, activations: scratch,
            activationRowBytes: activationRowBytes, rowCount: rowCount, inFeatures: inFeatures,
            outFeatures: outFeatures, output: output,
            kernel: rowCount >= 2 ? batchedKernel : kernel, tileKernel: tiled ? tileKernel : nil,
            rowsKernel: rowCount == 1 ? rowsKernel : nil)
        pool.parallelFor(tiled ? outFeatures / 4 : outFeatures, work: product)
        product.call = nil
    }
}

/// The output features of one `WeightMatrix.multiply`, split across the pool. A caller that
/// keeps one and passes it to every product (the inference context does) makes products
/// allocate nothing; the work items are output features, or groups of four with a tile kernel.
public final class MatrixProduct: ParallelWork, @unchecked Sendable {
    struct Call {
        let weights: UnsafeRawPointer
        let weightRowBytes: Int
        let activations: UnsafeRawPointer
        let activationRowBytes: Int
        let rowCount: Int
        let inFeatures: Int
        let outFeatures: Int
        let output: UnsafeMutablePointer<Float>
        let kernel: DotKernel
        let tileKernel: TileKernel?
        let rowsKernel: RowsKernel?
    }

    /// The product under way; set by `multiply` only while no thread runs.
    var call: Call?

    public init() {}

    public func run(_ range: Range<Int>, thread: Int) {
        guard let c = call else { return }
        if let tileKernel = c.tileKernel {
            for group in range {
                let feature = group * 4
                tileKernel(
                    c.weights + feature * c.weightRowBytes, c.weightRowBytes, c.activations,
                    c.activationRowBytes, c.rowCount, c.inFeatures, c.output + feature,
                    c.outFeatures)
            }
            return
        }
        if let rowsKernel = c.rowsKernel {
            rowsKernel(
                c.weights, c.weightRowBytes, c.activations, c.inFeatures, c.output, range)
            return
        }
        for feature in range {
            let weightRow = c.weights + feature * c.weightRowBytes
            for row in 0..<c.rowCount {
                c.output[row * c.outFeatures + feature] = c.kernel(
                    weightRow, c.activations + row * c.activationRowBytes, c.inFeatures)
            }
        }
    }
}
