/// The one table that translates checkpoint tensor names to SwiftLM's weights.
///
/// GGUF names follow llama.cpp's `LLM_TENSOR_NAMES`; other formats (safetensors, PEFT) get
/// their columns here when they arrive, so model code never sees a file's naming.
public enum WeightNames {
    public static let tokenEmbedding = "token_embd.weight"
    public static let outputNorm = "output_norm.weight"
    public static let output = "output.weight"

    /// Names of the tensors of transformer block `layer`.
    public struct Block: Sendable {
        public let attentionNorm: String
        public let query: String
        public let key: String
        public let value: String
        public let attentionOutput: String
        public let feedForwardNorm: String
        public let gate: String
        public let up: String
        public let down: String

        public init(layer: Int) {
            let prefix = "blk.\(layer)."
            attentionNorm = prefix + "attn_norm.weight"
            query = prefix + "attn_q.weight"
            key = prefix + "attn_k.weight"
            value = prefix + "attn_v.weight"
            attentionOutput = prefix + "attn_output.weight"
            feedForwardNorm = prefix + "ffn_norm.weight"
            gate = prefix + "ffn_gate.weight"
            up = prefix + "ffn_up.weight"
            down = prefix + "ffn_down.weight"
        }
    }
}

extension WeightNames {
    /// Hugging Face transformers' names of the Llama weights (safetensors checkpoints, PEFT
    /// adapters), by GGUF name. HF ties the output head by leaving `lm_head.weight` out.
    public static func huggingFace(gguf name: String) -> String? {
        switch name {
        case tokenEmbedding: return "model.embed_tokens.weight"
        case outputNorm: return "model.norm.weight"
        case output: return "lm_head.weight"
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]),
            let suffix = huggingFaceBlockSuffixes[String(parts[2])]
        else { return nil }
        return "model.layers.\(layer).\(suffix)"
    }

    /// The GGUF name of a Hugging Face Llama weight name, or nil for a name outside the table.
    public static func gguf(huggingFace name: String) -> String? {
        switch name {
        case "model.embed_tokens.weight": return tokenEmbedding
        case "model.norm.weight": return outputNorm
        case "lm_head.weight": return output
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 3)
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers",
            let layer = Int(parts[2]),
            let suffix = huggingFaceBlockSuffixes.first(where: { $0.value == parts[3] })?.key
        else { return nil }
        return "blk.\(layer).\(suffix)"
    }

    private static let huggingFaceBlockSuffixes: [String: String] = [
        "attn_norm.weight": "input_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight",
        "attn_k.weight": "self_attn.k_proj.weight",
        "attn_v.weight": "self_attn.v_proj.weight",
        "attn_output.weight": "self_attn.o_proj.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
    ]

    /// The row order of a query or key projection: HF stores each head's rows for half-split
    /// RoPE (pairs i and i + headDim/2), GGUF for adjacent pairs (2i and 2i + 1), which is how
    /// llama.cpp's converter permutes Llama checkpoints. Returns, for each GGUF row, the HF
    /// row it comes from.
    public static func interleavedRoPERowOrder(heads: Int, headDim: Int) -> [Int] {
        let half = headDim / 2
        var order = [Int](repeating: 0, count: heads * headDim)
        for head in 0..<heads {
            for pair in 0..<half {
                order[head * headDim + 2 * pair] = head * headDim + pair
                order[head * headDim + 2 * pair + 1] = head * headDim + half + pair
            }
        }
        return order
    }
}
