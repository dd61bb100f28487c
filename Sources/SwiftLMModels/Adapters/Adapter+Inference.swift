import SwiftLMCore

extension Adapter {
    /// `model` with every LoRA update merged into its weight, `W + scale · B·A`, the merged
    /// matrices in F32 (the base's quantization is kept for every other matrix). The result
    /// computes what training computes with the adapter unmerged, up to rounding: merging
    /// costs nothing per token, where an unmerged adapter costs two thin products per
    /// targeted projection. Prefix and prompt adapters leave the weights as they are.
    public func merged(into model: LlamaModel) -> LlamaModel {
        guard case .lora(let settings, let layers) = self else { return model }
        var blocks = model.blocks
        for layer in layers {
            let base = layer.projection.weight(of: blocks[layer.layer]).tensor
            let merged = Self.dequantized(base)
            let out = base.shape[0]
            let inFeatures = base.shape[1]
            // W[out, in] += scale · B[out, r] · A[r, in]
            BLAS.gemm(
                transposeA: false, transposeB: false, m: out, n: inFeatures, k: settings.rank,
                alpha: settings.scale, layer.b.floats, lda: settings.rank, layer.a.floats,
                ldb: inFeatures, beta: 1, merged.floats, ldc: inFeatures)
            layer.projection.replace(in: &blocks[layer.layer], with: WeightMatrix(merged))
        }
        return LlamaModel(
            config: model.config, tokenEmbedding: model.tokenEmbedding, blocks: blocks,
            outputNorm: model.outputNorm, output: model.output)
    }

    /// What inference puts before every sequence: prefix tuning's keys and values, prompt
    /// tuning's embeddings; nil for LoRA.
    public var virtualPrefix: VirtualPrefix? {
        switch self {
        case .lora: return nil
        case .prefix(let table, let gates): return .keysAndValues(table, gates: gates)
        case .prompt(let table): return .embeddings(table)
        }
    }

    /// An owned F32 copy of a weight of any readable type.
    static func dequantized(_ tensor: Tensor) -> Tensor {
        let result = Tensor(uninitialized: tensor.shape)
        let columns = tensor.shape[1]
        for row in 0..<tensor.shape[0] {
            Quantization.dequantizeRow(
                tensor.type, tensor.row(row), result.floats + row * columns, count: columns)
        }
        return result
    }
}

extension InferenceContext {
    /// `[position, layerCount * 2 * kvDim]`: what the KV cache holds for every position so
    /// far, in `Adapter.prefix`'s layout (keys after RoPE). Evaluating real tokens and
    /// reading this back is how prefix tuning starts from real words' keys and values.
    public func cachedKeysAndValues() -> Tensor {
        let config = model.config
        let width = config.layerCount * 2 * config.kvDim
        let table = Tensor(zeros: [position, width])
        precondition(cache.slotCount >= position, "cachedKeysAndValues: a full cache only")
        for position in 0..<position {
            for layer in 0..<config.layerCount {
                let row = table.floats + position * width + 2 * layer * config.kvDim
                let keys = cache.keys(layer: layer, position: position)
                let values = cache.values(layer: layer, position: position)
                for i in 0..<config.kvDim {
                    row[i] = Float(keys[i])
                    row[config.kvDim + i] = Float(values[i])
                }
            }
        }
        return table
    }
}

extension Tensor {
    /// A copy in `type` (a type `Quantization.quantizeRow` writes), row by row.
    public func quantized(to type: ElementType) -> Tensor {
        let rowBytes = type.byteCount(elements: rowLength)!
        let storage = TensorStorage(byteCount: rowCount * rowBytes)
        let floats = self.type == .f32 ? self : Tensor(shape: shape, values: toArray())
        for row in 0..<rowCount {
            Quantization.quantizeRow(
                type, floats.floats + row * rowLength, storage.pointer + row * rowBytes,
                count: rowLength)
        }
        return Tensor(shape: shape, type: type, storage: storage)
    }
}
