import Testing
import SwiftLMTokenizers

@Test("the module links") func moduleLinks() {}
