import Foundation
import SwiftLMCore
import SwiftLMFormats

/// A tiny Llama model whose weights come from a formula, written as a GGUF file by the tests
/// themselves. `scripts/reference/tiny_model.py` builds the same model for llama.cpp, so the
/// two must change together.
public enum TinyModel {
    public static let vocabSize = 260
    public static let hidden = 64
    public static let intermediate = 128
    public static let layerCount = 2
    public static let headCount = 4
    public static let kvHeadCount = 2
    public static let headDim = hidden / headCount
    public static let contextLength = 128
    public static let ropeBase: Float = 10000
    public static let epsilon: Float = 1e-5
    public static let weightScale: Float = 0.4
    public static let bosTokenID = 256
    public static let eosTokenID = 257
    /// The token ids whose logits the llama.cpp fixture holds.
    public static let inputIDs = [
        256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 84, 104, 101,
    ]

    /// `(name, shape outermost first, isNorm)` in the order that seeds are assigned.
    public static var tensorOrder: [(String, [Int], Bool)] {
        var order: [(String, [Int], Bool)] = [("token_embd.weight", [vocabSize, hidden], false)]
        for layer in 0..<layerCount {
            let p = "blk.\(layer)."
            order += [
                (p + "attn_norm.weight", [hidden], true),
                (p + "attn_q.weight", [headCount * headDim, hidden], false),
                (p + "attn_k.weight", [kvHeadCount * headDim, hidden], false),
                (p + "attn_v.weight", [kvHeadCount * headDim, hidden], false),
                (p + "attn_output.weight", [hidden, headCount * headDim], false),
                (p + "ffn_norm.weight", [hidden], true),
                (p + "ffn_gate.weight", [intermediate, hidden], false),
                (p + "ffn_up.weight", [intermediate, hidden], false),
                (p + "ffn_down.weight", [hidden, intermediate], false),
            ]
        }
        order.append(("output_norm.weight", [hidden], true))
        return order
    }

    /// `count` values in [-0.5, 0.5) from a 32-bit linear congruential generator.
    public static func values(seed: UInt32, count: Int) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(Double(state >> 8) / Double(1 << 24) - 0.5)
        }
    }

    /// GPT-2's byte-to-unicode table as token strings, in byte order.
    public static var byteTokens: [String] {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        var table: [Int: Int] = [:]
        for byte in printable { table[byte] = byte }
        var next = 256
        for byte in 0..<256 where table[byte] == nil {
            table[byte] = next
            next += 1
        }
        return (0..<256).map { String(Character(Unicode.Scalar(UInt32(table[$0]!))!)) }
    }

    /// The metadata of the tiny model; tests change entries to build broken files.
    public static func writer(weightType: ElementType = .f32) throws -> GGUFWriter {
        var writer = GGUFWriter()
        let arch = "llama"
        writer.set("general.architecture", .string(arch))
        writer.set("general.name", .string("tiny formula model"))
        writer.set("\(arch).context_length", .uint32(UInt32(contextLength)))
        writer.set("\(arch).embedding_length", .uint32(UInt32(hidden)))
        writer.set("\(arch).block_count", .uint32(UInt32(layerCount)))
        writer.set("\(arch).feed_forward_length", .uint32(UInt32(intermediate)))
        writer.set("\(arch).attention.head_count", .uint32(UInt32(headCount)))
        writer.set("\(arch).attention.head_count_kv", .uint32(UInt32(kvHeadCount)))
        writer.set("\(arch).rope.dimension_count", .uint32(UInt32(headDim)))
        writer.set("\(arch).rope.freq_base", .float32(ropeBase))
        writer.set("\(arch).attention.layer_norm_rms_epsilon", .float32(epsilon))
        writer.set("\(arch).vocab_size", .uint32(UInt32(vocabSize)))
        writer.set("tokenizer.ggml.model", .string("gpt2"))
        writer.set("tokenizer.ggml.pre", .string("default"))
        let specials = ["<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"]
        writer.set("tokenizer.ggml.tokens", .array(.string(byteTokens + specials)))
        writer.set(
            "tokenizer.ggml.token_type",
            .array(.int32([Int32](repeating: 1, count: 256) + [3, 3, 3, 3])))
        writer.set("tokenizer.ggml.merges", .array(.string(["Ġ t", "h e"])))
        writer.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(bosTokenID)))
        writer.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(eosTokenID)))
        writer.set("tokenizer.ggml.add_bos_token", .bool(false))
        writer.set(
            "tokenizer.chat_template",
            .string(
                "{% for m in messages %}<|bos|>{{ m['role'] }}\n{{ m['content'] }}<|eos|>\n"
                    + "{% endfor %}{% if add_generation_prompt %}<|bos|>assistant\n{% endif %}"))

        for (index, (name, shape, isNorm)) in tensorOrder.enumerated() {
            var weights = values(seed: UInt32(index + 1), count: shape.reduce(1, *))
            weights = weights.map { isNorm ? 1 + 0.2 * $0 : $0 * weightScale }
            let type = isNorm ? ElementType.f32 : weightType
            try writer.addTensor(
                name: name, shape: shape.reversed(), type: type, data: encode(weights, as: type))
        }
        return writer
    }

    /// Writes the tiny model to a new temporary file and returns its path.
    public static func write(weightType: ElementType = .f32) throws -> String {
        try write(try writer(weightType: weightType))
    }

    /// Writes `writer` to a new temporary file and returns its path.
    public static func write(_ writer: GGUFWriter) throws -> String {
        let path = temporaryPath(suffix: ".gguf")
        try writer.write(to: path)
        return path
    }

    /// A fresh path in the temporary folder.
    public static func temporaryPath(suffix: String) -> String {
        NSTemporaryDirectory() + "swiftlm-test-\(UUID().uuidString)\(suffix)"
    }

    /// The bytes of `values` quantized row by row (rows of `hidden` or more elements).
    static func encode(_ values: [Float], as type: ElementType) -> [UInt8] {
        let bytes = type.byteCount(elements: values.count)!
        var out = [UInt8](repeating: 0, count: bytes)
        values.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBytes { destination in
                Quantization.quantizeRow(
                    type, source.baseAddress!, destination.baseAddress!, count: values.count)
            }
        }
        return out
    }
}
