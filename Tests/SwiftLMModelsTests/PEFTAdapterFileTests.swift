import Foundation
import SwiftLM
import Testing

/// Adapter folders in PEFT's format: what is written reads back, query and key rows cross
/// between the two RoPE layouts, and bad folders are refused with the culprit named.
@Suite("PEFT adapter files")
struct PEFTAdapterFileTests {
    static let config = LlamaConfig(
        vocabSize: 40, hidden: 32, intermediate: 64, layerCount: 2, headCount: 4, kvHeadCount: 2,
        contextLength: 16)

    static func tensor(_ shape: [Int], seed: Int) -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor(
            shape: shape, values: (0..<count).map { Float(($0 * 37 + seed * 11) % 97) / 97 - 0.5 })
    }

    static func directory() -> String {
        let path = NSTemporaryDirectory() + "peft-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func lora() -> Adapter {
        let settings = LoRASettings(rank: 2, alpha: 4, targets: [.query, .key, .down])
        var layers: [LoRALayer] = []
        for layer in 0..<2 {
            for projection in settings.targets {
                let shape = projection.shape(config)
                layers.append(
                    LoRALayer(
                        layer: layer, projection: projection,
                        a: tensor([2, shape[1]], seed: layer * 7 + 1),
                        b: tensor([shape[0], 2], seed: layer * 7 + 2)))
            }
        }
        return .lora(settings, layers)
    }

    @Test("LoRA, prefix and prompt adapters read back as written")
    func roundTrip() throws {
        let adapters: [Adapter] = [
            Self.lora(),
            .prefix(Self.tensor([3, 2 * 2 * 16], seed: 3), gates: Self.tensor([2, 4], seed: 4)),
            .prefix(Self.tensor([3, 2 * 2 * 16], seed: 5), gates: nil),
            .prompt(Self.tensor([5, 32], seed: 6)),
        ]
        for adapter in adapters {
            let path = Self.directory()
            try PEFTAdapterFile.write(adapter, config: Self.config, baseModel: "tiny", to: path)
            let back = try PEFTAdapterFile.read(directory: path, config: Self.config)
            #expect(Self.values(back) == Self.values(adapter), "\(adapter.method)")
        }
    }

    static func values(_ adapter: Adapter) -> [[Float]] {
        switch adapter {
        case .lora(let settings, let layers):
            return [[Float(settings.rank), settings.alpha]]
                + layers.flatMap { [$0.a.toArray(), $0.b.toArray()] }
        case .prefix(let table, let gates):
            return [table.toArray(), gates?.toArray() ?? []]
        case .prompt(let table):
            return [table.toArray()]
        }
    }

    @Test("the file holds PEFT's names, and q and k rows in Hugging Face's half-split order")
    func namesAndLayout() throws {
        let path = Self.directory()
        try PEFTAdapterFile.write(Self.lora(), config: Self.config, baseModel: "tiny", to: path)
        let file = try SafeTensorsFile(path: path + "/adapter_model.safetensors")
        let name = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"
        #expect(file.names.contains(name))
        #expect(file.names.contains("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"))

        // GGUF row 2i of a head is HF row i, row 2i + 1 is HF row i + headDim / 2.
        guard case .lora(_, let layers) = Self.lora() else { return }
        let ours = layers.first { $0.layer == 1 && $0.projection == .query }!.b
        let theirs = try file.floatTensor(name)
        let headDim = 8
        for head in 0..<4 {
            for pair in 0..<(headDim / 2) {
                for column in 0..<2 {
                    let gguf = (head * headDim + 2 * pair + 1) * 2 + column
                    let hf = (head * headDim + headDim / 2 + pair) * 2 + column
                    #expect(ours.floats[gguf] == theirs.floats[hf])
                }
            }
        }
        let json =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: path + "/adapter_config.json")))
            as! [String: Any]
        #expect(json["peft_type"] as? String == "LORA")
        #expect(json["target_modules"] as? [String] == ["q_proj", "k_proj", "down_proj"])
    }

    /// Writes `adapter`, lets `damage` change the folder, and returns the read's error.
    static func error(
        _ adapter: Adapter = lora(), config: LlamaConfig = config,
        _ damage: (String) throws -> Void
    ) throws -> String {
        let path = directory()
        try PEFTAdapterFile.write(adapter, config: Self.config, baseModel: "tiny", to: path)
        try damage(path)
        do {
            _ = try PEFTAdapterFile.read(directory: path, config: config)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    static func editConfig(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = URL(fileURLWithPath: path + "/adapter_config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    @Test("bad folders are refused naming the tensor, module, key or file")
    func badAdapters() throws {
        // An adapter for a model of another size: the tensor is named with both shapes.
        var wider = Self.config
        wider.hidden = 64
        wider.headDim = 8
        let shape = try Self.error(config: wider) { _ in }
        #expect(shape.contains("lora_A.weight") && shape.contains("[2, 64]"), "\(shape)")

        let module = try Self.error {
            try Self.editConfig($0) { $0["target_modules"] = ["qq_proj"] }
        }
        #expect(module.contains("no module 'qq_proj'"), "\(module)")

        let type = try Self.error { try Self.editConfig($0) { $0["peft_type"] = "IA3" } }
        #expect(type.contains("'peft_type' is 'IA3'"), "\(type)")

        let rank = try Self.error { try Self.editConfig($0) { $0["r"] = "eight" } }
        #expect(rank.contains("'r' must be an integer"), "\(rank)")

        let json = try Self.error {
            try Data("{not json".utf8).write(to: URL(fileURLWithPath: $0 + "/adapter_config.json"))
        }
        #expect(json.contains("adapter_config.json: not valid JSON"), "\(json)")

        let missing = try Self.error {
            try FileManager.default.removeItem(atPath: $0 + "/adapter_model.safetensors")
        }
        #expect(missing.contains("adapter_model.safetensors does not exist"), "\(missing)")

        // A module the config does not list.
        let stray = try Self.error {
            try Self.editConfig($0) { $0["target_modules"] = ["q_proj", "k_proj"] }
        }
        #expect(
            stray.contains("down_proj.lora_A.weight") && stray.contains("no module"), "\(stray)")
    }
}
