// The SwiftLMTokenizers module; see docs/ARCHITECTURE.md.
