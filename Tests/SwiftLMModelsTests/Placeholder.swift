import Testing
import SwiftLMModels

@Test("the module links") func moduleLinks() {}
