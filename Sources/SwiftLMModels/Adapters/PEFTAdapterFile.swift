import Foundation
import SwiftLMCore
import SwiftLMFormats

/// Adapters in the Hugging Face PEFT format: a folder with `adapter_config.json` and
/// `adapter_model.safetensors`, named and shaped as PEFT saves them, so an adapter trained
/// here loads in PEFT unchanged and one trained with PEFT loads here.
///
/// PEFT's tensors follow Hugging Face's Llama layout, where each query and key head orders
/// its rows for half-split RoPE; SwiftLM keeps GGUF's adjacent-pair order. Reading and writing
/// permute those rows (LoRA's `B` of `q_proj` and `k_proj`, prefix tuning's keys), and nothing
/// else differs.
public enum PEFTAdapterFile {
    public static let configName = "adapter_config.json"
    public static let weightsName = "adapter_model.safetensors"
    /// PEFT's name for the learned table of prompt and prefix tuning.
    public static let promptTensorName = "prompt_embeddings"
    /// SwiftLM's prefix gates, `[layerCount, headCount]`. PEFT has no such tensor and ignores
    /// it, computing with every gate at 1: a gated prefix (`--prefix-gate`) is PEFT-shaped
    /// but gives PEFT's numbers only without gates, the default.
    public static let gatesTensorName = "swiftlm_prefix_gates"

    /// `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`
    public static func loraName(_ layer: Int, _ projection: Projection, _ factor: String) -> String
    {
        "base_model.model.model.layers.\(layer).\(projection.huggingFacePath).lora_\(factor).weight"
    }

    /// Writes `adapter` into `directory` (created if needed), each file atomically.
    public static func write(
        _ adapter: Adapter, config: LlamaConfig, baseModel: String, to directory: String
    ) throws {
        try adapter.validate(for: config)
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true)

        var json: [String: Any] = [
            "base_model_name_or_path": baseModel, "task_type": "CAUSAL_LM",
            "inference_mode": true, "revision": NSNull(),
        ]
        var tensors: [(name: String, tensor: Tensor)] = []
        switch adapter {
        case .lora(let settings, let layers):
            json["peft_type"] = "LORA"
            json["r"] = settings.rank
            json["lora_alpha"] = settings.alpha
            json["use_rslora"] = settings.rankStabilized
            json["lora_dropout"] = settings.dropout
            json["target_modules"] = settings.targets.map(\.huggingFaceModule)
            json["bias"] = "none"
            json["fan_in_fan_out"] = false
            json["init_lora_weights"] = true
            json["modules_to_save"] = NSNull()
            json["layers_to_transform"] = NSNull()
            json["rank_pattern"] = [String: Int]()
            json["alpha_pattern"] = [String: Int]()
            for layer in layers {
                let b = layer.projection.ropeHeads(config).map { heads in
                    permutedRows(layer.b, heads: heads, headDim: config.headDim, toHF: true)
                }
                tensors.append((loraName(layer.layer, layer.projection, "A"), layer.a))
                tensors.append((loraName(layer.layer, layer.projection, "B"), b ?? layer.b))
            }
        case .prefix(let table, let gates):
            json["peft_type"] = "PREFIX_TUNING"
            json.merge(promptLearningConfig(table, config)) { $1 }
            // Per-layer key and value heads: PEFT splits each row by the model's KV heads.
            json["token_dim"] = config.kvDim
            json["num_attention_heads"] = config.kvHeadCount
            json["prefix_projection"] = false
            json["encoder_hidden_size"] = config.kvDim
            tensors.append(
                (promptTensorName, permutedPrefixKeys(table, config: config, toHF: true)))
            if let gates { tensors.append((gatesTensorName, gates)) }
        case .prompt(let table):
            json["peft_type"] = "PROMPT_TUNING"
            json.merge(promptLearningConfig(table, config)) { $1 }
            json["token_dim"] = config.hidden
            json["num_attention_heads"] = config.headCount
            json["prompt_tuning_init"] = "RANDOM"
            tensors.append((promptTensorName, table))
        }

        let data = try JSONSerialization.data(
            withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        let configPath = (directory as NSString).appendingPathComponent(configName)
        try data.write(to: URL(fileURLWithPath: configPath), options: .atomic)
        try SafeTensorsWriter.write(
            tensors, metadata: ["format": "pt"],
            to: (directory as NSString).appendingPathComponent(weightsName))
    }

    /// Reads the adapter in `directory` for a model of `config`. Throws naming the file, key
    /// or tensor that is missing, malformed, unsupported or of the wrong shape.
    public static func read(directory: String, config: LlamaConfig) throws -> Adapter {
        let configPath = (directory as NSString).appendingPathComponent(configName)
        let weightsPath = (directory as NSString).appendingPathComponent(weightsName)
        for path in [configPath, weightsPath] where !FileManager.default.fileExists(atPath: path) {
            throw AdapterError.missingFile(path)
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: configPath)))
        } catch {
            throw AdapterError.malformedConfig(path: configPath, reason: "not valid JSON")
        }
        guard let json = object as? [String: Any] else {
            throw AdapterError.malformedConfig(path: configPath, reason: "not a JSON object")
        }
        let keys = ConfigKeys(json: json, path: configPath)
        let file = try SafeTensorsFile(path: weightsPath)

        let adapter: Adapter
        switch try keys.string("peft_type") {
        case "LORA":
            adapter = try readLoRA(keys, file: file, config: config)
        case "PREFIX_TUNING":
            if try keys.optionalBool("prefix_projection") == true,
                file.info(promptTensorName) == nil
            {
                throw AdapterError.unsupported(
                    key: "prefix_projection", value: "true without prompt_embeddings",
                    supported: "saved prefixes (PEFT saves the projection's output)")
            }
            let table = try promptTable(file, config: config, allowGates: true)
            let gates = try file.info(gatesTensorName).map { _ in
                try file.floatTensor(gatesTensorName)
            }
            adapter = .prefix(
                permutedPrefixKeys(table, config: config, toHF: false), gates: gates)
        case "PROMPT_TUNING":
            adapter = .prompt(try promptTable(file, config: config))
        case let other:
            throw AdapterError.unsupported(
                key: "peft_type", value: "'\(other)'",
                supported: "LORA, PREFIX_TUNING and PROMPT_TUNING")
        }
        try adapter.validate(for: config)
        return adapter
    }

    private static func readLoRA(
        _ keys: ConfigKeys, file: SafeTensorsFile, config: LlamaConfig
    ) throws -> Adapter {
        let rank = try keys.int("r")
        let alpha = try keys.optionalDouble("lora_alpha") ?? Double(rank)
        guard rank >= 1 else { throw AdapterError.invalidConfig("r is \(rank), at least 1") }
        if let bias = try keys.optionalString("bias"), bias != "none" {
            throw AdapterError.unsupported(key: "bias", value: "'\(bias)'", supported: "'none'")
        }
        if try keys.optionalBool("fan_in_fan_out") == true {
            throw AdapterError.unsupported(
                key: "fan_in_fan_out", value: "true", supported: "false (Llama's nn.Linear)")
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if let pattern = keys.json[key] as? [String: Any], !pattern.isEmpty {
                throw AdapterError.unsupported(
                    key: key, value: "non-empty", supported: "one rank and alpha for all modules")
            }
        }
        if let saved = keys.json["modules_to_save"] as? [Any], !saved.isEmpty {
            throw AdapterError.unsupported(
                key: "modules_to_save", value: "\(saved)", supported: "none")
        }
        guard let names = keys.json["target_modules"] as? [String] else {
            throw AdapterError.unsupported(
                key: "target_modules", value: "not a list of names",
                supported: "a list such as [\"q_proj\", \"v_proj\"]")
        }
        let targets = try names.map { name in
            guard let projection = Projection(name: name) else {
                throw AdapterError.unknownTarget(name)
            }
            return projection
        }
        let settings = LoRASettings(
            rank: rank, alpha: Float(alpha),
            rankStabilized: try keys.optionalBool("use_rslora") ?? false,
            dropout: Float(try keys.optionalDouble("lora_dropout") ?? 0), targets: targets)

        // Every tensor must be a factor of a targeted module; layers without tensors are
        // left unadapted (PEFT's layers_to_transform).
        var expected = Set<String>()
        var layers: [LoRALayer] = []
        for layer in 0..<config.layerCount {
            for projection in settings.targets {
                let nameA = loraName(layer, projection, "A")
                let nameB = loraName(layer, projection, "B")
                expected.formUnion([nameA, nameB])
                let hasA = file.info(nameA) != nil
                let hasB = file.info(nameB) != nil
                guard hasA || hasB else { continue }
                guard hasA else { throw AdapterError.missingTensor(nameA) }
                guard hasB else { throw AdapterError.missingTensor(nameB) }
                let a = try file.floatTensor(nameA)
                var b = try file.floatTensor(nameB)
                let shape = projection.shape(config)
                guard a.shape == [rank, shape[1]] else {
                    throw AdapterError.shapeMismatch(
                        tensor: nameA, expected: [rank, shape[1]], found: a.shape)
                }
                guard b.shape == [shape[0], rank] else {
                    throw AdapterError.shapeMismatch(
                        tensor: nameB, expected: [shape[0], rank], found: b.shape)
                }
                if let heads = projection.ropeHeads(config) {
                    b = permutedRows(b, heads: heads, headDim: config.headDim, toHF: false)
                }
                layers.append(LoRALayer(layer: layer, projection: projection, a: a, b: b))
            }
        }
        if let stray = file.names.first(where: { !expected.contains($0) }) {
            throw AdapterError.unexpectedTensor(stray)
        }
        guard !layers.isEmpty else {
            throw AdapterError.missingTensor(loraName(0, settings.targets[0], "A"))
        }
        return .lora(settings, layers)
    }

    /// The config keys that prompt and prefix tuning share.
    private static func promptLearningConfig(
        _ table: Tensor, _ config: LlamaConfig
    ) -> [String: Any] {
        [
            "num_virtual_tokens": table.shape[0], "num_layers": config.layerCount,
            "num_transformer_submodules": 1,
        ]
    }

    private static func promptTable(
        _ file: SafeTensorsFile, config: LlamaConfig, allowGates: Bool = false
    ) throws -> Tensor {
        guard file.info(promptTensorName) != nil else {
            throw AdapterError.missingTensor(promptTensorName)
        }
        let known = allowGates ? [promptTensorName, gatesTensorName] : [promptTensorName]
        if let stray = file.names.first(where: { !known.contains($0) }) {
            throw AdapterError.unexpectedTensor(stray)
        }
        return try file.floatTensor(promptTensorName)
    }

    /// `[heads * headDim, columns]` with each head's rows moved between GGUF's adjacent-pair
    /// order and Hugging Face's half-split order.
    static func permutedRows(_ tensor: Tensor, heads: Int, headDim: Int, toHF: Bool) -> Tensor {
        let order = WeightNames.interleavedRoPERowOrder(heads: heads, headDim: headDim)
        let columns = tensor.shape[1]
        let result = Tensor(zeros: tensor.shape)
        for (gguf, hf) in order.enumerated() {
            let (from, to) = toHF ? (gguf, hf) : (hf, gguf)
            (result.floats + to * columns).update(
                from: tensor.floats + from * columns, count: columns)
        }
        return result
    }

    /// Prefix tuning's table with the elements of every layer's keys moved between the two
    /// head orders (values are not rotated and keep their order).
    static func permutedPrefixKeys(_ table: Tensor, config: LlamaConfig, toHF: Bool) -> Tensor {
        let order = WeightNames.interleavedRoPERowOrder(
            heads: config.kvHeadCount, headDim: config.headDim)
        let width = table.shape[1]
        let result = Tensor(shape: table.shape, values: table.toArray())
        guard width == config.layerCount * 2 * config.kvDim else { return result }
        for row in 0..<table.shape[0] {
            for layer in 0..<config.layerCount {
                let keys = row * width + 2 * layer * config.kvDim
                for (gguf, hf) in order.enumerated() {
                    let (from, to) = toHF ? (gguf, hf) : (hf, gguf)
                    result.floats[keys + to] = table.floats[keys + from]
                }
            }
        }
        return result
    }
}

/// Typed reads of `adapter_config.json`, each throwing with the file and key named.
private struct ConfigKeys {
    let json: [String: Any]
    let path: String

    func string(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw missing(key) }
        return value
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = json[key], !(value is NSNull) else { return nil }
        guard let string = value as? String else { throw wrong(key, "a string") }
        return string
    }

    func int(_ key: String) throws -> Int {
        guard let value = json[key], !(value is NSNull) else { throw missing(key) }
        guard let number = value as? NSNumber, !isBool(number),
            let int = Int(exactly: number.doubleValue)
        else { throw wrong(key, "an integer") }
        return int
    }

    func optionalDouble(_ key: String) throws -> Double? {
        guard let value = json[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, !isBool(number) else {
            throw wrong(key, "a number")
        }
        return number.doubleValue
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let value = json[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, isBool(number) else {
            throw wrong(key, "true or false")
        }
        return number.boolValue
    }

    private func isBool(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c" || type(of: number) == type(of: NSNumber(true))
    }

    private func missing(_ key: String) -> AdapterError {
        .malformedConfig(path: path, reason: "missing key '\(key)'")
    }

    private func wrong(_ key: String, _ expected: String) -> AdapterError {
        .malformedConfig(path: path, reason: "'\(key)' must be \(expected)")
    }
}
