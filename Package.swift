// swift-tools-version:6.0
import PackageDescription

// Kernels are the hot path: bounds checks there cost more than they protect, and every kernel
// has a checked reference twin in the tests.
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "SwiftLM",
    products: [
        .library(name: "SwiftLM", targets: ["SwiftLM"]),
        .executable(name: "swiftlm", targets: ["SwiftLMCLI"]),
    ],
    targets: [
        // Tensors, element types, quantized blocks, kernels and the thread pool.
        .target(name: "SwiftLMCore", swiftSettings: kernelFlags),
        // Model file formats (GGUF), memory-mapped and validated.
        .target(name: "SwiftLMFormats", dependencies: ["SwiftLMCore"]),
        // Tokenizers (byte-level BPE, SentencePiece) and chat templates.
        .target(name: "SwiftLMTokenizers"),
        // Model definitions (the Llama family) and weight loading.
        .target(
            name: "SwiftLMModels",
            dependencies: ["SwiftLMCore", "SwiftLMFormats", "SwiftLMTokenizers"],
            swiftSettings: kernelFlags),
        // Sampling, generation loops, perplexity.
        .target(name: "SwiftLMGeneration", dependencies: ["SwiftLMModels"]),
        // The one import for users of the library.
        .target(
            name: "SwiftLM",
            dependencies: [
                "SwiftLMCore", "SwiftLMFormats", "SwiftLMTokenizers", "SwiftLMModels",
                "SwiftLMGeneration",
            ]),
        .executableTarget(name: "SwiftLMCLI", dependencies: ["SwiftLM"]),
        // Builders of tiny models and files that several test targets share.
        .target(name: "SwiftLMTestSupport", dependencies: ["SwiftLMCore", "SwiftLMFormats"]),

        .testTarget(
            name: "SwiftLMCoreTests", dependencies: ["SwiftLMCore"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "SwiftLMFormatsTests", dependencies: ["SwiftLMFormats"]),
        .testTarget(
            name: "SwiftLMTokenizersTests", dependencies: ["SwiftLMTokenizers", "SwiftLMFormats"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "SwiftLMModelsTests", dependencies: ["SwiftLM", "SwiftLMTestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "SwiftLMGenerationTests", dependencies: ["SwiftLM"]),
        .testTarget(
            name: "EndToEndTests", dependencies: ["SwiftLM", "SwiftLMTestSupport"],
            resources: [.copy("Fixtures")]),
    ]
)
