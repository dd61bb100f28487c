// One import for the whole library: `import SwiftLM`.
@_exported import SwiftLMCore
@_exported import SwiftLMFormats
@_exported import SwiftLMGeneration
@_exported import SwiftLMModels
@_exported import SwiftLMTokenizers
@_exported import SwiftLMTraining
@_exported import SwiftLMServing
