// The SwiftLMGeneration module; see docs/ARCHITECTURE.md.
