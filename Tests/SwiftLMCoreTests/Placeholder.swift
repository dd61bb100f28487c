import Testing
import SwiftLMCore

@Test("the module links") func moduleLinks() {}
