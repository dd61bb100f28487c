/// One message of a conversation, as Hugging Face's `apply_chat_template` receives it.
public struct ChatMessage: Sendable, Equatable {
    /// "system", "user", "assistant", or whatever roles the template knows ("tool", "ipython").
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A value passed to a template as an extra variable, such as `tools` or `enable_thinking`.
public indirect enum ChatTemplateValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([ChatTemplateValue])
    /// A JSON object; entries keep their order, which `tojson` preserves as Python's dict does.
    case object([(key: String, value: ChatTemplateValue)])

    var templateValue: TemplateValue {
        switch self {
        case .none: .none
        case .bool(let flag): .bool(flag)
        case .int(let number): .int(number)
        case .double(let number): .float(number)
        case .string(let text): .string(text)
        case .array(let items): .list(items.map(\.templateValue))
        case .object(let entries):
            .dictionary(TemplateDictionary(entries.map { ($0.key, $0.value.templateValue) }))
        }
    }
}

extension ChatTemplateValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: ChatTemplateValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .none }

    public init(dictionaryLiteral elements: (String, ChatTemplateValue)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
}

/// A chat template as GGUF files carry it in `tokenizer.chat_template`: Jinja2 source written
/// for Hugging Face's `apply_chat_template`.
///
/// Rendering reproduces that function exactly: jinja2's sandboxed environment with
/// `trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension, Hugging Face's
/// `raise_exception` and `tojson`, and the variables `messages`, `add_generation_prompt`,
/// `bos_token`, `eos_token`, `tools` and `documents` (both `none`). The interpreter implements
/// the subset of Jinja2 that chat templates use; a template that needs more is refused with
/// `ChatTemplateError.unsupported` rather than rendered differently.
///
/// Not implemented: macros, `call` and `filter` blocks, includes and inheritance, `with`,
/// `raw`, recursive loops, `loop.changed`, `*args` in calls, string `%` formatting, float
/// powers, integers beyond 64 bits, and the filters and tests outside
/// `TemplateFilters.supported` and `TemplateTests.supported`. `strftime_now` is refused when
/// called, since its output depends on the clock.
public struct ChatTemplate: Sendable {
    private let statements: [TemplateStatement]
    private let bosToken: String
    private let eosToken: String

    /// Parses `source` once.
    ///
    /// - Throws: `ChatTemplateError.syntax` for source jinja2 would reject, and
    ///   `ChatTemplateError.unsupported` naming the first construct outside the implemented
    ///   subset and its line and column.
    public init(source: String, bosToken: String = "", eosToken: String = "")
        throws(ChatTemplateError)
    {
        var lexer = TemplateLexer(source: source)
        var parser = TemplateParser(tokens: try lexer.tokenize())
        statements = try parser.parseTemplate()
        self.bosToken = bosToken
        self.eosToken = eosToken
    }

    /// The prompt for `messages`.
    ///
    /// - Parameters:
    ///   - addGenerationPrompt: Whether to end with the header that starts the assistant's reply.
    ///   - variables: More variables for the template, such as `tools` or `enable_thinking`, as
    ///     keyword arguments to `apply_chat_template` would pass them. They override the
    ///     defaults above.
    /// - Throws: `ChatTemplateError.raised` when the template calls `raise_exception` (for
    ///   example on roles that do not alternate), and the runtime errors jinja2 would raise.
    public func render(
        messages: [ChatMessage], addGenerationPrompt: Bool = true,
        variables: [String: ChatTemplateValue] = [:]
    ) throws(ChatTemplateError) -> String {
        // Globals sit below the template's own variables, so a template can shadow them.
        let globals = TemplateScope(parent: nil)
        for name in TemplateMethods.globals {
            globals.assign(.callable(.global(name)), to: name)
        }

        let context = TemplateScope(parent: globals)
        let messageValues = messages.map { message in
            TemplateValue.dictionary(
                TemplateDictionary([
                    ("role", .string(message.role)), ("content", .string(message.content)),
                ]))
        }
        context.assign(.list(messageValues), to: "messages")
        context.assign(.bool(addGenerationPrompt), to: "add_generation_prompt")
        context.assign(.string(bosToken), to: "bos_token")
        context.assign(.string(eosToken), to: "eos_token")
        context.assign(.none, to: "tools")
        context.assign(.none, to: "documents")
        for (name, value) in variables {
            context.assign(value.templateValue, to: name)
        }

        return try TemplateInterpreter().render(statements, in: context)
    }
}
