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
