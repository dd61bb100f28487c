import SwiftLM

/// `swiftlm tokenize`: prints the token ids of a text as a JSON array.
enum TokenizeCommand: Command {
    static let name = "tokenize"
    static let summary = "print the token ids of a text as JSON"
    static let usage = """
        swiftlm tokenize [--model PATH] --text TEXT [--bos] [--no-special]

          --model PATH     GGUF model file whose tokenizer to use (default: the default model)
          --text TEXT      the text to tokenize
          --bos            add the beginning-of-sequence token
          --no-special     treat special-token text such as <|im_start|> as plain text
        """

    static func run(_ argv: ArraySlice<String>) throws {
        let arguments = try Arguments(
            argv, valued: ["model", "text"], flags: ["bos", "no-special"])
        let text = try arguments.requiredString("text")
        let model = try ModelLocation.open(arguments)
        let tokenizer = model.tokenizer

        var ids = tokenizer.encode(
            text, addSpecial: false, parseSpecial: !arguments.flag("no-special"))
        if arguments.flag("bos") {
            guard let bos = tokenizer.bosTokenID else {
                throw UsageError("this vocabulary has no BOS token")
            }
            ids.insert(bos, at: 0)
        }
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}
