/// Why a model could not be loaded or run. Each description is one line that names the problem.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unsupportedArchitecture(String)
    case missingMetadata(key: String)
    case invalidMetadata(key: String, value: String, expected: String)
    /// A well-formed value that asks for something SwiftLM does not compute.
    case unsupportedMetadata(key: String, value: String, supported: String)
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    case unsupportedTensorType(tensor: String, type: String)
    case contextOverflow(tokens: Int, contextLength: Int)
    case emptyPrompt
    case tokenOutOfRange(id: Int, vocabSize: Int)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let name):
            return
                "unsupported: model architecture '\(name)' (supported: \(supportedArchitectures))"
        case .missingMetadata(let key):
            return "model file lacks the metadata key '\(key)'"
        case .invalidMetadata(let key, let value, let expected):
            return "metadata '\(key)' is \(value), expected \(expected)"
        case .unsupportedMetadata(let key, let value, let supported):
            return "unsupported: metadata '\(key)' is \(value) (SwiftLM supports \(supported))"
        case .missingTensor(let name):
            return "model file lacks the tensor '\(name)'"
        case .shapeMismatch(let tensor, let expected, let found):
            return "tensor '\(tensor)' has shape \(found), expected \(expected)"
        case .unsupportedTensorType(let tensor, let type):
            return
                "unsupported: tensor '\(tensor)' has type \(type), "
                + "which SwiftLM cannot compute with"
        case .contextOverflow(let tokens, let contextLength):
            return "prompt of \(tokens) tokens does not fit the context of \(contextLength) tokens"
        case .emptyPrompt:
            return "the prompt is empty"
        case .tokenOutOfRange(let id, let vocabSize):
            return "token id \(id) is outside the vocabulary (0..<\(vocabSize))"
        }
    }
}

/// Architectures (`general.architecture`) that `LlamaModel` runs.
let supportedArchitectures = "llama"
