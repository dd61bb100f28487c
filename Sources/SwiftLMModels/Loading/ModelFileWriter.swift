import Foundation
import SwiftLMCore
import SwiftLMFormats
import SwiftLMTokenizers

/// Writes a Llama-family model as a GGUF file that SwiftLM and llama.cpp both load: the
/// inverse of `PretrainedModel(path:)`, for trained and fine-tuned models.
public enum ModelFileWriter {
    /// - Parameters:
    ///   - config: The hyperparameters, written as `llama.*` metadata. Weights must be in
    ///     GGUF's adjacent-pair RoPE layout (`config.ropeInterleaved`).
    ///   - tokenizer: `tokenizer.*` metadata pairs (see `tokenizerMetadata`).
    ///   - tensors: weights by GGUF name, shapes outermost first: F32 tensors are stored as
    ///     `type`, tensors of another type (a merged model's untouched quantized weights) as
    ///     they are.
    ///   - type: what F32 matrices become: `.f32`, `.f16`, or a type `Quantization`
    ///     quantizes (Q8_0, Q4_0, Q4_1...); norms stay F32 as llama.cpp's converter keeps them.
    ///   - fileType: `general.file_type` when the matrices are of several types (a merged
    ///     model keeps its base's); by default the one `type` implies.
    public static func write(
        config: LlamaConfig, name: String, tokenizer: [(key: String, value: GGUFValue)],
        tensors: [(name: String, tensor: Tensor)], type: ElementType = .f32,
        fileType: UInt32? = nil, to path: String
    ) throws {
        precondition(config.ropeInterleaved, "GGUF Llama files use adjacent-pair RoPE")
        precondition(Quantization.canQuantize(type), "write: \(type) weights")
        var writer = GGUFWriter()
        let arch = "llama"
        writer.set("general.architecture", .string(arch))
        writer.set("general.name", .string(name))
        writer.set("\(arch).vocab_size", .uint32(UInt32(config.vocabSize)))
        writer.set("\(arch).context_length", .uint32(UInt32(config.contextLength)))
        writer.set("\(arch).embedding_length", .uint32(UInt32(config.hidden)))
        writer.set("\(arch).block_count", .uint32(UInt32(config.layerCount)))
        writer.set("\(arch).feed_forward_length", .uint32(UInt32(config.intermediate)))
        writer.set("\(arch).attention.head_count", .uint32(UInt32(config.headCount)))
        writer.set("\(arch).attention.head_count_kv", .uint32(UInt32(config.kvHeadCount)))
        writer.set("\(arch).attention.key_length", .uint32(UInt32(config.headDim)))
        writer.set("\(arch).attention.value_length", .uint32(UInt32(config.headDim)))
        writer.set("\(arch).rope.dimension_count", .uint32(UInt32(config.ropeDims)))
        setRoPEScaling(config, arch: arch, in: &writer)
        writer.set(
            "\(arch).attention.layer_norm_rms_epsilon", .float32(config.rmsNormEpsilon))
        writer.set("general.file_type", .uint32(fileType ?? Self.fileType(type)))
        if config.attention != .exact {
            let json = try JSONEncoder().encode(config.attention)
            writer.set(LlamaConfig.attentionKey, .string(String(decoding: json, as: UTF8.self)))
        }
        if case .performer = config.attention {
            writer.set(LlamaConfig.performerDrawKey, .uint32(UInt32(config.performerDraw)))
        }
        for (key, value) in tokenizer { writer.set(key, value) }

        for (tensorName, tensor) in tensors {
            if tensor.type != .f32 {
                let bytes = Array(
                    UnsafeRawBufferPointer(
                        start: tensor.raw, count: tensor.rowCount * tensor.rowBytes))
                try writer.addTensor(
                    name: tensorName, shape: tensor.shape.reversed(), type: tensor.type,
                    data: bytes)
                continue
            }
            let storedType = tensor.rank == 1 ? ElementType.f32 : type
            let rowBytes = storedType.byteCount(elements: tensor.rowLength)!
            var bytes = [UInt8](repeating: 0, count: tensor.rowCount * rowBytes)
            bytes.withUnsafeMutableBytes { out in
                for row in 0..<tensor.rowCount {
                    Quantization.quantizeRow(
                        storedType, tensor.floats + row * tensor.rowLength,
                        out.baseAddress! + row * rowBytes, count: tensor.rowLength)
                }
            }
            try writer.addTensor(
                name: tensorName, shape: tensor.shape.reversed(), type: storedType, data: bytes)
        }
        try writer.write(to: path)
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`) of a file whose matrices are `type`.
    static func fileType(_ type: ElementType) -> UInt32 {
        switch type {
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .bf16: return 32
        default: return 0
        }
    }

    /// `rope.freq_base` and the `rope.scaling.*` keys that `LlamaConfig(gguf:)` and llama.cpp read
    /// back. GGUF has no NTK-aware type, but NTK-aware scaling is plain RoPE with a larger base,
    /// so it is written as that base: llama.cpp computes the same angles, and the file reads back
    /// as an unscaled model with that base.
    private static func setRoPEScaling(
        _ config: LlamaConfig, arch: String, in writer: inout GGUFWriter
    ) {
        let scaling = config.ropeScaling
        if scaling.kind == .ntkAware {
            let table = RoPETable(dims: config.ropeDims, base: config.ropeBase, scaling: scaling)
            writer.set("\(arch).rope.freq_base", .float32(table.base))
            return
        }
        writer.set("\(arch).rope.freq_base", .float32(config.ropeBase))
        guard scaling.kind != .none else { return }

        writer.set("\(arch).rope.scaling.type", .string(scaling.kind.rawValue))
        writer.set("\(arch).rope.scaling.factor", .float32(scaling.factor))
        guard scaling.kind == .yarn else { return }
        writer.set(
            "\(arch).rope.scaling.original_context_length",
            .uint32(UInt32(scaling.originalContextLength)))
        // Written only when they differ from YaRN's defaults, which llama.cpp assumes for Llama.
        if scaling.betaFast != 32 {
            writer.set("\(arch).rope.scaling.yarn_beta_fast", .float32(scaling.betaFast))
        }
        if scaling.betaSlow != 1 {
            writer.set("\(arch).rope.scaling.yarn_beta_slow", .float32(scaling.betaSlow))
        }
    }

    /// The `tokenizer.*` pairs of an existing GGUF file (a fine-tuned model keeps its base's
    /// tokenizer and chat template), in file order.
    public static func tokenizerMetadata(of file: GGUFFile) -> [(key: String, value: GGUFValue)] {
        file.metadataKeys.filter { $0.hasPrefix("tokenizer.") }.map { ($0, file.metadata[$0]!) }
    }

    /// `tokenizer.ggml.*` pairs for a vocabulary (a model trained from scratch).
    public static func tokenizerMetadata(
        _ vocabulary: TokenizerVocabulary
    ) -> [(key: String, value: GGUFValue)] {
        var pairs: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string(vocabulary.model)),
            ("tokenizer.ggml.tokens", .array(.string(vocabulary.tokens))),
        ]
        if let pre = vocabulary.pre { pairs.append(("tokenizer.ggml.pre", .string(pre))) }
        if let types = vocabulary.tokenTypes {
            pairs.append(("tokenizer.ggml.token_type", .array(.int32(types.map { Int32($0) }))))
        }
        if let scores = vocabulary.scores {
            pairs.append(("tokenizer.ggml.scores", .array(.float32(scores))))
        }
        if let merges = vocabulary.merges {
            pairs.append(("tokenizer.ggml.merges", .array(.string(merges))))
        }
        let ids: [(String, Int?)] = [
            ("bos_token_id", vocabulary.bosTokenID), ("eos_token_id", vocabulary.eosTokenID),
            ("unknown_token_id", vocabulary.unknownTokenID),
            ("padding_token_id", vocabulary.paddingTokenID),
        ]
        for (key, id) in ids {
            if let id { pairs.append(("tokenizer.ggml." + key, .uint32(UInt32(id)))) }
        }
        pairs.append(("tokenizer.ggml.add_bos_token", .bool(vocabulary.addBOS)))
        pairs.append(("tokenizer.ggml.add_eos_token", .bool(vocabulary.addEOS)))
        return pairs
    }
}
