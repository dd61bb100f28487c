import Testing
import SwiftLM

@Test("the module links") func moduleLinks() {}
