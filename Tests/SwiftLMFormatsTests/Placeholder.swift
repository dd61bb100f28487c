import Testing
import SwiftLMFormats

@Test("the module links") func moduleLinks() {}
