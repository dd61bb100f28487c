import SwiftLMCore
import SwiftLMModels

extension TrainableLlama {
    /// `[batchSize * seqLen]` token ids -> `[batchSize * seqLen, vocabSize]` logits; every
    /// sequence starts at position 0, or after the adapter's virtual tokens.
    public func logits(
        tokens: [Int], batchSize: Int, seqLen: Int, options: ForwardOptions = ForwardOptions()
    ) -> Variable {
        precondition(
            tokens.count == batchSize * seqLen, "logits: tokens for \(batchSize)×\(seqLen)")
        let virtualTokens = adapter?.virtualTokens ?? 0
        precondition(
            virtualTokens + seqLen <= config.contextLength, "logits: seqLen over the context")
        var x = Ops.embedding(tokenEmbedding, tokens: tokens)

        // Prompt tuning: the virtual tokens' embeddings run through the blocks with the
        // sequence; prefix tuning: each block gets its slice of the learned keys and values.
        let prompt = adapter?.prompt
        if let prompt { x = Ops.prependToSequences(prompt, x, batchSize: batchSize) }
        let blockSeqLen = prompt == nil ? seqLen : virtualTokens + seqLen
        let prefix = adapter?.prefix()
        let kvDim = config.kvDim

        for layer in 0..<config.layerCount {
            var inputs = [x]
            if let prefix {
                let keys = 2 * layer * kvDim
                inputs += [
                    Ops.columns(prefix, keys..<(keys + kvDim)),
                    Ops.columns(prefix, (keys + kvDim)..<(keys + 2 * kvDim)),
                ]
            }
            let block = { (inputs: [Variable]) in
                self.block(
                    layer, inputs[0], prefix: inputs.count == 3 ? (inputs[1], inputs[2]) : nil,
                    batchSize: batchSize, seqLen: blockSeqLen, options)
            }
            let parameters = blocks[layer].all + (adapter?.parameters(layer: layer) ?? [])
            x =
                options.checkpointing
                ? Ops.checkpoint(inputs, parameters: parameters, block) : block(inputs)
        }

        if prompt != nil {
            x = Ops.dropSequencePrefix(x, count: virtualTokens, batchSize: batchSize)
        }
        let normed = Ops.rmsNorm(x, weight: outputNorm, epsilon: config.rmsNormEpsilon)
        return Ops.linear(normed, weight: output ?? tokenEmbedding)
    }

    /// Mean cross-entropy of next-token prediction: `targets[i]` is the token after
    /// `tokens[i]`, or `Ops.ignoredTarget` for a position that does not count.
    public func loss(
        tokens: [Int], targets: [Int], batchSize: Int, seqLen: Int,
        options: ForwardOptions = ForwardOptions()
    ) -> Variable {
        let logits = logits(tokens: tokens, batchSize: batchSize, seqLen: seqLen, options: options)
        return Ops.crossEntropy(logits, targets: targets)
    }

    /// `[tokens, hidden] -> [tokens, hidden]`: one pre-norm transformer block, as
    /// `InferenceContext.forward` computes it, with the adapter's LoRA branches and prefix.
    private func block(
        _ layer: Int, _ x: Variable, prefix: (keys: Variable, values: Variable)?,
        batchSize: Int, seqLen: Int, _ options: ForwardOptions
    ) -> Variable {
        let weights = blocks[layer]
        let config = config
        let project = { (input: Variable, weight: Variable, projection: Projection) in
            self.project(input, weight, layer: layer, projection, options)
        }

        // Attention sub-layer with a residual connection. With a prefix the tokens sit at
        // positions P..., after the prefix's keys and values.
        let prefixLength = prefix?.keys.shape[0] ?? 0
        let normed = Ops.rmsNorm(x, weight: weights.attentionNorm, epsilon: config.rmsNormEpsilon)
        let rope = { (projection: Variable, heads: Int) in
            Ops.rope(
                projection, seqLen: seqLen, headCount: heads, headDim: config.headDim,
                ropeDims: config.ropeDims, base: config.ropeBase,
                interleaved: config.ropeInterleaved, scaling: config.ropeScaling,
                positionOffset: prefixLength)
        }
        let query = rope(project(normed, weights.query, .query), config.headCount)
        let key = rope(project(normed, weights.key, .key), config.kvHeadCount)
        let value = project(normed, weights.value, .value)
        let attention: Variable
        if let prefix, let adapter {
            attention = Ops.prefixCausalAttention(
                query: query, key: key, value: value, prefixKeys: prefix.keys,
                prefixValues: prefix.values, gates: adapter.prefixGates[layer],
                batchSize: batchSize, seqLen: seqLen, headCount: config.headCount,
                kvHeadCount: config.kvHeadCount, headDim: config.headDim)
        } else {
            attention = attend(
                layer: layer, query: query, key: key, value: value, batchSize: batchSize,
                seqLen: seqLen)
        }
        let projected = project(attention, weights.attentionOutput, .attentionOutput)
        let afterAttention = Ops.add(x, dropout(projected, options, site: 2 * layer))

        // SwiGLU feed-forward sub-layer with a residual connection.
        let normed2 = Ops.rmsNorm(
            afterAttention, weight: weights.feedForwardNorm, epsilon: config.rmsNormEpsilon)
        let gated = Ops.swiGLU(
            gate: project(normed2, weights.gate, .gate), up: project(normed2, weights.up, .up))
        let down = project(gated, weights.down, .down)
        return Ops.add(afterAttention, dropout(down, options, site: 2 * layer + 1))
    }

    /// `x · Wᵀ`, plus `scale · dropout(x)·Aᵀ·Bᵀ` where the adapter has LoRA factors for this
    /// projection.
    private func project(
        _ x: Variable, _ weight: Variable, layer: Int, _ projection: Projection,
        _ options: ForwardOptions
    ) -> Variable {
        let base = Ops.linear(x, weight: weight)
        guard let adapter, let settings = adapter.adaptation.lora,
            layer < adapter.lora.count, let factors = adapter.lora[layer][projection]
        else { return base }

        var input = x
        if settings.dropout > 0 && options.training {
            // A site of its own per layer and projection, after the residual dropout's.
            let site =
                UInt64(2 * config.layerCount + layer * Projection.allCases.count)
                + UInt64(Projection.allCases.firstIndex(of: projection)!)
            let seed = options.dropoutSeed &* 0x9E37_79B9_7F4A_7C15 &+ site
            input = Ops.dropout(x, probability: settings.dropout, seed: seed)
        }
        let update = Ops.linear(Ops.linear(input, weight: factors.a), weight: factors.b)
        return Ops.addScaled(base, update, scale: settings.scale)
    }

    /// `[tokens, headCount * headDim]`, `[tokens, kvDim]` x2 -> `[tokens, headCount * headDim]`:
    /// causal grouped-query attention of the kind the configuration names.
    private func attend(
        layer: Int, query: Variable, key: Variable, value: Variable, batchSize: Int, seqLen: Int
    ) -> Variable {
        let config = config
        switch config.attention {
        case .exact:
            // Tiled exact attention: faster than the plain form at every length measured (1.7x
            // at 256 tokens, 2.5x at 4096) and memory linear in seqLen (Ops+TiledAttention).
            return Ops.tiledCausalAttention(
                query: query, key: key, value: value, batchSize: batchSize, seqLen: seqLen,
                headCount: config.headCount, kvHeadCount: config.kvHeadCount,
                headDim: config.headDim)
        case .slidingWindow(let window, let globalPositions, let randomBlocks):
            let pattern = SparseAttentionPattern(
                window: window, globalPositions: globalPositions, randomBlocks: randomBlocks,
                seed: UInt64(layer))
            return Ops.sparseCausalAttention(
                query: query, key: key, value: value, batchSize: batchSize, seqLen: seqLen,
                headCount: config.headCount, kvHeadCount: config.kvHeadCount,
                headDim: config.headDim, pattern: pattern)
        case .performer:
            return Ops.performerCausalAttention(
                query: query, key: key, value: value, batchSize: batchSize, seqLen: seqLen,
                headCount: config.headCount, kvHeadCount: config.kvHeadCount,
                headDim: config.headDim, features: performerFeatures(layer: layer))
        }
    }

    /// Layer `layer`'s Performer features of the current draw: a pure function of the layer
    /// and `performerDraw`, so a resumed run and a recomputed (checkpointed) block see the
    /// same features.
    func performerFeatures(layer: Int) -> RandomFeatures {
        guard case .performer(let features, _) = config.attention else {
            preconditionFailure("performer features of a model with \(config.attention.name)")
        }
        return RandomFeatures.layer(
            layer, draw: performerDraw, featureCount: features, headDim: config.headDim)
    }

    /// Residual dropout with a mask seed of its own per site, so a recomputed block draws the
    /// same mask.
    private func dropout(_ x: Variable, _ options: ForwardOptions, site: Int) -> Variable {
        guard options.dropout > 0 else { return x }
        let seed = options.dropoutSeed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(site)
        return Ops.dropout(x, probability: options.dropout, seed: seed)
    }
}
