import Testing
import SwiftLMGeneration

@Test("the module links") func moduleLinks() {}
