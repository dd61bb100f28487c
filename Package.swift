// swift-tools-version:6.0
import PackageDescription

// Kernels are the hot path: bounds checks there cost more than they protect, and every kernel
// has a checked reference twin in the tests.
//
// On x86-64 the kernels are built for Haswell and later (AVX2, FMA, F16C). llama.cpp's CPU
// kernels accumulate with fused multiply-adds, and SwiftLM reproduces their results bit for bit
// (docs/ARCHITECTURE.md, "Numerical agreement with llama.cpp"): without FMA in the target, every
// `addingProduct` would become a call to libm's `fmaf`, correct but several times slower. The
// manifest is compiled for the machine that builds, so this tests the host's architecture. Every
// target gets the same CPU, so that SIMD values cross module boundaries in the same registers.
#if arch(x86_64)
    let cpuFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
#else
    let cpuFlags: [SwiftSetting] = []
#endif
let kernelFlags = cpuFlags + [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
// The one module built for AVX-512 with VNNI (Cascade Lake's features, which Zen 4 has too):
// its kernels run only where SwiftLMCore has checked the CPU at run time. Only pointers and scalars
// cross its boundary, so its wider registers never meet the Haswell-built modules' SIMD values.
#if arch(x86_64)
    let avx512Flags: [SwiftSetting] = [
        .unsafeFlags(["-target-cpu", "cascadelake"]),
        .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
    ]
#else
    let avx512Flags: [SwiftSetting] = []
#endif

let package = Package(
    name: "SwiftLM",
    products: [
        .library(name: "SwiftLM", targets: ["SwiftLM"]),
        .executable(name: "swiftlm", targets: ["SwiftLMCLI"]),
    ],
    targets: [
        // The system BLAS (OpenBLAS from Debian's libopenblas-dev; Accelerate on Apple).
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // The HTTP/1.1 protocol (GNU libmicrohttpd from Debian's libmicrohttpd-dev).
        .systemLibrary(
            name: "CMicroHTTPD", pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]),
        // A generic HTTP server over libmicrohttpd: requests in, responses and streams out.
        .target(name: "SwiftLMHTTP", dependencies: ["CMicroHTTPD"], swiftSettings: cpuFlags),
        // Kernels on AVX-512 (VNNI dot products, ggml's AVX-512 exponential), chosen at run
        // time by SwiftLMCore where the CPU has them.
        .target(name: "SwiftLMKernelsAVX512", swiftSettings: avx512Flags),
        // Tensors, element types, quantized blocks, kernels, BLAS and the thread pool.
        .target(
            name: "SwiftLMCore",
            dependencies: [
                "SwiftLMKernelsAVX512",
                .target(name: "COpenBLAS", condition: .when(platforms: [.linux])),
            ],
            swiftSettings: kernelFlags),
        // Model file formats (GGUF, safetensors), memory-mapped and validated, and the one file
        // layer (memory maps, atomic and appending writers) that every module uses.
        .target(name: "SwiftLMFormats", dependencies: ["SwiftLMCore"], swiftSettings: cpuFlags),
        // Tokenizers (byte-level BPE, SentencePiece) and chat templates.
        .target(name: "SwiftLMTokenizers", swiftSettings: cpuFlags),
        // Model definitions (the Llama family) and weight loading.
        .target(
            name: "SwiftLMModels",
            dependencies: ["SwiftLMCore", "SwiftLMFormats", "SwiftLMTokenizers"],
            swiftSettings: kernelFlags),
        // Sampling, generation loops, perplexity.
        .target(
            name: "SwiftLMGeneration", dependencies: ["SwiftLMModels"], swiftSettings: cpuFlags),
        // Training: autograd on the one tensor type, optimizers, data, checkpoints, the loop.
        .target(
            name: "SwiftLMTraining",
            dependencies: ["SwiftLMCore", "SwiftLMFormats", "SwiftLMTokenizers", "SwiftLMModels"],
            swiftSettings: kernelFlags),
        // Serving: the paged KV cache's scheduler and the continuous-batching engine.
        .target(
            name: "SwiftLMServing",
            dependencies: ["SwiftLMCore", "SwiftLMModels", "SwiftLMGeneration"],
            swiftSettings: cpuFlags),
        // The OpenAI-compatible HTTP API over the engine (`swiftlm serve`).
        .target(
            name: "SwiftLMServer",
            dependencies: ["SwiftLMHTTP", "SwiftLMServing", "SwiftLMTokenizers"],
            swiftSettings: cpuFlags),
        // The one import for users of the library.
        .target(
            name: "SwiftLM",
            dependencies: [
                "SwiftLMCore", "SwiftLMFormats", "SwiftLMTokenizers", "SwiftLMModels",
                "SwiftLMGeneration", "SwiftLMTraining", "SwiftLMServing",
            ], swiftSettings: cpuFlags),
        .executableTarget(
            name: "SwiftLMCLI", dependencies: ["SwiftLM", "SwiftLMServer"], swiftSettings: cpuFlags),
        // Builders of tiny models and files that several test targets share.
        .target(
            name: "SwiftLMTestSupport", dependencies: ["SwiftLMCore", "SwiftLMFormats"],
            swiftSettings: cpuFlags),

        .testTarget(
            name: "SwiftLMCoreTests", dependencies: ["SwiftLMCore", "SwiftLMKernelsAVX512"],
            resources: [.copy("Fixtures")], swiftSettings: cpuFlags),
        .testTarget(
            name: "SwiftLMFormatsTests", dependencies: ["SwiftLMFormats"],
            resources: [.copy("Fixtures")], swiftSettings: cpuFlags),
        .testTarget(
            name: "SwiftLMTokenizersTests", dependencies: ["SwiftLMTokenizers", "SwiftLMFormats"],
            resources: [.copy("Fixtures")], swiftSettings: cpuFlags),
        .testTarget(
            name: "SwiftLMModelsTests", dependencies: ["SwiftLM", "SwiftLMTestSupport"],
            resources: [.copy("Fixtures")], swiftSettings: cpuFlags),
        .testTarget(
            name: "SwiftLMGenerationTests", dependencies: ["SwiftLM", "SwiftLMTestSupport"],
            swiftSettings: cpuFlags),
        .testTarget(
            name: "SwiftLMTrainingTests", dependencies: ["SwiftLMTraining", "SwiftLMTestSupport"],
            resources: [.copy("Fixtures")], swiftSettings: cpuFlags),
        .testTarget(
            name: "SwiftLMServingTests", dependencies: ["SwiftLM", "SwiftLMTestSupport"],
            swiftSettings: cpuFlags),
        .testTarget(
            name: "SwiftLMHTTPTests", dependencies: ["SwiftLMHTTP"], swiftSettings: cpuFlags),
        .testTarget(
            name: "SwiftLMServerTests",
            dependencies: ["SwiftLM", "SwiftLMServer", "SwiftLMTestSupport"],
            swiftSettings: cpuFlags),
        .testTarget(
            name: "EndToEndTests", dependencies: ["SwiftLM", "SwiftLMTestSupport"],
            resources: [.copy("Fixtures")], swiftSettings: cpuFlags),
    ]
)
