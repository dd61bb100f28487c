import Foundation
import SwiftLM

/// A subcommand of `swiftlm`.
protocol Command {
    static var name: String { get }
    static var summary: String { get }
    static var usage: String { get }
    static func run(_ arguments: ArraySlice<String>) throws
}

let commands: [any Command.Type] = [
    GenerateCommand.self, ChatCommand.self, TokenizeCommand.self, PerplexityCommand.self,
    InfoCommand.self, BenchCommand.self, TrainCommand.self, FinetuneCommand.self,
    MergeCommand.self, ServeCommand.self, AttentionBenchCommand.self,
]

func overview(_ commands: [any Command.Type]) -> String {
    var text =
        "swiftlm: run large language models on the CPU\n\nUsage: swiftlm COMMAND [OPTIONS]\n\n"
    text += "Commands:\n"
    // The widest name sets the column, so a long name is never cut.
    let width = commands.map { $0.name.count }.max()! + 2
    for command in commands {
        text += "  " + command.name.padding(toLength: width, withPad: " ", startingAt: 0)
        text += command.summary + "\n"
    }
    text += "\nRun 'swiftlm COMMAND --help' for the options of a command.\n"
    text += "Without --model, commands use \(DefaultModel.path).\n"
    return text
}

let argv = CommandLine.arguments.dropFirst()
guard let name = argv.first, !["--help", "-h", "help"].contains(name) else {
    if argv.isEmpty {
        printError(overview(commands), terminator: "")
        exit(1)
    }
    print(overview(commands), terminator: "")
    exit(0)
}
guard let command = commands.first(where: { $0.name == name }) else {
    printError("swiftlm: unknown command '\(name)'; run 'swiftlm --help' for the list")
    exit(1)
}

let rest = argv.dropFirst()
if rest.contains("--help") || rest.contains("-h") {
    print("Usage: " + command.usage)
    exit(0)
}
do {
    try command.run(rest)
} catch {
    printError("swiftlm \(name): error: \(error)")
    exit(1)
}
