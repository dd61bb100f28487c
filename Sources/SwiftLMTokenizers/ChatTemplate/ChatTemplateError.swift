/// Why a chat template could not be parsed or rendered.
///
/// Each case mirrors the exception Hugging Face's `apply_chat_template` would raise for the same
/// template and inputs, except `unsupported`, which marks valid Jinja2 this interpreter does not
/// implement: it refuses instead of guessing, so a rendered prompt is always jinja2's prompt.
public enum ChatTemplateError: Error, Equatable, CustomStringConvertible {
    /// The source is not valid Jinja2 (jinja2 raises `TemplateSyntaxError`).
    case syntax(String, line: Int, column: Int)

    /// Valid Jinja2 outside the subset this interpreter implements. The message names the construct
    /// and where it is, for example "tag 'macro' at line 1, column 4".
    case unsupported(String)

    /// The template called `raise_exception(message)`, as Hugging Face's templates do to reject a
    /// conversation they cannot format.
    case raised(String)

    /// An operation got a value of the wrong type (Python's `TypeError`).
    case typeError(String, line: Int, column: Int)

    /// An undefined value was used where jinja2's default `Undefined` raises `UndefinedError`:
    /// arithmetic, attribute access, calls.
    case undefinedValue(String, line: Int, column: Int)

    /// Any other runtime failure jinja2 reports: division by zero, a bad argument value, unpacking
    /// the wrong number of values.
    case runtime(String, line: Int, column: Int)

    public var description: String {
        switch self {
        case .syntax(let message, let line, let column):
            "chat template syntax error at line \(line), column \(column): \(message)"
        case .unsupported(let construct):
            "chat template uses unsupported Jinja2: \(construct)"
        case .raised(let message):
            "chat template raised an exception: \(message)"
        case .typeError(let message, let line, let column):
            "chat template type error at line \(line), column \(column): \(message)"
        case .undefinedValue(let message, let line, let column):
            "chat template undefined value at line \(line), column \(column): \(message)"
        case .runtime(let message, let line, let column):
            "chat template error at line \(line), column \(column): \(message)"
        }
    }
}

/// A position in template source. Columns count Unicode scalars, as Python counts characters.
struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    var line: Int
    var column: Int

    var description: String { "line \(line), column \(column)" }
}

/// A failure raised by an operation on values, before the interpreter attaches the source location
/// of the expression that caused it.
enum ValueFailure: Error {
    case type(String)
    case undefined(String)
    case runtime(String)
    case unsupported(String)
    case raised(String)

    /// The public error, placed at `location`.
    func located(at location: SourceLocation) -> ChatTemplateError {
        switch self {
        case .type(let message):
            .typeError(message, line: location.line, column: location.column)
        case .undefined(let message):
            .undefinedValue(message, line: location.line, column: location.column)
        case .runtime(let message):
            .runtime(message, line: location.line, column: location.column)
        case .unsupported(let construct):
            .unsupported("\(construct) at \(location)")
        case .raised(let message):
            .raised(message)
        }
    }
}
