import SwiftLMCore
import SwiftLMFormats
import SwiftLMTokenizers

/// A model file opened for use: the decoder, its tokenizer and its chat template.
///
/// Weights stay in the memory-mapped file; nothing is expanded or copied.
public final class PretrainedModel: @unchecked Sendable {
    public let file: GGUFFile
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    /// The template from `tokenizer.chat_template`, nil when the file has none.
    public let chatTemplateSource: String?

    public var config: LlamaConfig { model.config }

    /// Opens a GGUF file and checks that every tensor the model needs is there with the
    /// expected shape and a supported type.
    public init(path: String) throws {
        file = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: file)
        model = try LlamaModel(gguf: file, config: config)
        tokenizer = try Tokenizer(vocabulary: TokenizerVocabulary(gguf: file))
        chatTemplateSource = file.metadata["tokenizer.chat_template"]?.string
    }

    /// The chat template, parsed; throws when the file has none or it cannot be rendered.
    public func chatTemplate() throws -> ChatTemplate {
        guard let source = chatTemplateSource else {
            throw ModelError.missingMetadata(key: "tokenizer.chat_template")
        }
        func tokenText(_ id: Int?) -> String {
            guard let id else { return "" }
            return String(decoding: tokenizer.piece(id), as: UTF8.self)
        }
        return try ChatTemplate(
            source: source, bosToken: tokenText(tokenizer.bosTokenID),
            eosToken: tokenText(tokenizer.eosTokenID))
    }
}

extension LlamaModel {
    /// Builds the model over the tensors of a GGUF file, without copying them.
    public convenience init(gguf file: GGUFFile, config: LlamaConfig) throws {
        func tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
            guard let info = file.tensor(named: name) else { throw ModelError.missingTensor(name) }
            // GGUF lists dimensions innermost first; SwiftLM outermost first.
            let found = Array(info.shape.reversed())
            guard found == shape else {
                throw ModelError.shapeMismatch(tensor: name, expected: shape, found: found)
            }
            guard info.type.isSupported else {
                throw ModelError.unsupportedTensorType(tensor: name, type: "\(info.type)")
            }
            let bytes = file.data(for: info)
            let storage = TensorStorage(
                borrowing: bytes.baseAddress!, byteCount: bytes.count, owner: file)
            return Tensor(shape: shape, type: info.type, storage: storage)
        }
        func norm(_ name: String, _ size: Int) throws -> Tensor {
            let weight = try tensor(name, [size])
            guard weight.type == .f32 else {
                throw ModelError.unsupportedTensorType(tensor: name, type: "\(weight.type) norm")
            }
            return weight
        }
        func matrix(_ name: String, _ shape: [Int]) throws -> WeightMatrix {
            WeightMatrix(try tensor(name, shape))
        }

        let hidden = config.hidden
        let queryDim = config.headCount * config.headDim
        let blocks = try (0..<config.layerCount).map { layer in
            let names = WeightNames.Block(layer: layer)
            return LlamaBlockWeights(
                attentionNorm: try norm(names.attentionNorm, hidden),
                query: try matrix(names.query, [queryDim, hidden]),
                key: try matrix(names.key, [config.kvDim, hidden]),
                value: try matrix(names.value, [config.kvDim, hidden]),
                attentionOutput: try matrix(names.attentionOutput, [hidden, queryDim]),
                feedForwardNorm: try norm(names.feedForwardNorm, hidden),
                gate: try matrix(names.gate, [config.intermediate, hidden]),
                up: try matrix(names.up, [config.intermediate, hidden]),
                down: try matrix(names.down, [hidden, config.intermediate]))
        }

        let embedding = try tensor(WeightNames.tokenEmbedding, [config.vocabSize, hidden])
        let output =
            config.tiedEmbeddings
            ? WeightMatrix(embedding) : try matrix(WeightNames.output, [config.vocabSize, hidden])
        self.init(
            config: config, tokenEmbedding: embedding, blocks: blocks,
            outputNorm: try norm(WeightNames.outputNorm, hidden), output: output)
    }
}

extension TokenizerVocabulary {
    /// Reads the `tokenizer.ggml.*` metadata of a GGUF file. Absent keys stay nil, so the
    /// tokenizer applies llama.cpp's defaults for the vocabulary type.
    public init(gguf file: GGUFFile) throws {
        let metadata = file.metadata
        func value(_ key: String) -> GGUFValue? { metadata["tokenizer.ggml." + key] }

        guard let model = value("model")?.string else {
            throw ModelError.missingMetadata(key: "tokenizer.ggml.model")
        }
        guard let tokens = value("tokens")?.stringArray else {
            throw ModelError.missingMetadata(key: "tokenizer.ggml.tokens")
        }
        self.init(
            model: model, pre: value("pre")?.string, tokens: tokens,
            scores: value("scores")?.floatArray, tokenTypes: value("token_type")?.intArray,
            merges: value("merges")?.stringArray, bosTokenID: value("bos_token_id")?.int,
            eosTokenID: value("eos_token_id")?.int, eotTokenID: value("eot_token_id")?.int,
            unknownTokenID: value("unknown_token_id")?.int,
            paddingTokenID: value("padding_token_id")?.int,
            addBOS: value("add_bos_token")?.bool, addEOS: value("add_eos_token")?.bool,
            addSpacePrefix: value("add_space_prefix")?.bool)
    }
}
