// The SwiftLMFormats module; see docs/ARCHITECTURE.md.
