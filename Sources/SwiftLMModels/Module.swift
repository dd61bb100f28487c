// The SwiftLMModels module; see docs/ARCHITECTURE.md.
