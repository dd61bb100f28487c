/// Builds the statement tree from tokens, following jinja2's `Parser` rule for rule so that
/// precedence and the odd corners (tests binding tighter than arithmetic, `if` tests without
/// inline conditionals) come out the same.
///
/// Constructs jinja2 knows but this interpreter does not (macros, includes, `call` blocks, filters
/// and tests outside the supported set) are rejected here with `ChatTemplateError.unsupported`,
/// so a template either parses into something that renders as jinja2 does or not at all.
struct TemplateParser {
    private let tokens: [TemplateToken]
    private var index = 0

    /// How many `for` bodies enclose the current position; `break` and `continue` need one.
    private var loopDepth = 0

    /// How deeply blocks and expressions nest here. The parser and interpreter recurse once per
    /// level, so a hostile template could exhaust the stack; jinja2 itself gives up near 100.
    private var nesting = 0
    private static let maximumNesting = 100

    /// Tags jinja2 implements that this interpreter does not.
    private static let unsupportedTags: Set<String> = [
        "block", "extends", "macro", "include", "from", "import", "with", "autoescape", "filter",
        "call",
    ]

    init(tokens: [TemplateToken]) {
        self.tokens = tokens
    }

    mutating func parseTemplate() throws(ChatTemplateError) -> [TemplateStatement] {
        try subparse(until: [])
    }

    // MARK: Statements

    /// Statements up to a block tag named in `endTags` (left as the current token, just after
    /// its `{%`) or the end of input.
    private mutating func subparse(
        until endTags: Set<String>
    ) throws(ChatTemplateError) -> [TemplateStatement] {
        var body: [TemplateStatement] = []
        while true {
            switch current.kind {
            case .text(let text):
                body.append(.text(text))
                advance()
            case .variableBegin:
                advance()
                let expression = try parseTuple()
                try expect(.variableEnd)
                body.append(.output(expression))
            case .blockBegin:
                advance()
                if case .name(let name) = current.kind, endTags.contains(name) { return body }
                body.append(try parseStatement())
                try expect(.blockEnd)
            case .endOfInput:
                return body
            default:
                throw syntaxError("unexpected \(describe(current))")
            }
        }
    }

    /// The body of a block tag: finishes the opening tag, then reads up to one of `endTags`.
    /// With `dropEndTag` the end tag's name is consumed too; its `%}` is left for the caller.
    private mutating func parseBody(
        until endTags: [String], dropEndTag: Bool = false
    ) throws(ChatTemplateError) -> [TemplateStatement] {
        try descend()
        defer { nesting -= 1 }

        // jinja2 accepts a colon before `%}` for Python's sake.
        _ = skip(symbol: ":")
        try expect(.blockEnd)
        let body = try subparse(until: Set(endTags))
        if case .endOfInput = current.kind {
            let wanted = endTags.map { "'\($0)'" }.joined(separator: " or ")
            throw syntaxError(
                "Unexpected end of template. Jinja was looking for the following tags: \(wanted).")
        }
        if dropEndTag { advance() }
        return body
    }

    private mutating func parseStatement() throws(ChatTemplateError) -> TemplateStatement {
        guard case .name(let tag) = current.kind else { throw syntaxError("tag name expected") }
        let location = current.location
        switch tag {
        case "for":
            return try parseFor()
        case "if":
            return try parseIf()
        case "set":
            return try parseSet()
        case "print":
            advance()
            return .output(try parseTuple())
        case "break", "continue":
            guard loopDepth > 0 else { throw syntaxError("'\(tag)' outside loop") }
            advance()
            return tag == "break" ? .loopBreak : .loopContinue
        case "generation":
            // The body becomes a function call in Hugging Face's extension, so an enclosing
            // loop cannot be broken out of from inside it.
            advance()
            let enclosingLoopDepth = loopDepth
            loopDepth = 0
            defer { loopDepth = enclosingLoopDepth }
            return .generation(try parseBody(until: ["endgeneration"], dropEndTag: true))
        case _ where Self.unsupportedTags.contains(tag):
            throw .unsupported("tag '\(tag)' at \(location)")
        default:
            throw syntaxError("Encountered unknown tag '\(tag)'.")
        }
    }

    private mutating func parseFor() throws(ChatTemplateError) -> TemplateStatement {
        let location = current.location
        advance()
        let target = try parseAssignmentTarget(endNames: ["in"])
        try expect(name: "in")
        let iterable = try parseTuple(withConditional: false, endNames: ["recursive"])
        let filter = skip(name: "if") ? try parseExpression() : nil
        if isName("recursive") {
            throw .unsupported("recursive for loop at \(current.location)")
        }

        loopDepth += 1
        let body = try parseBody(until: ["endfor", "else"])
        loopDepth -= 1
        let endTag = current
        advance()

        var otherwise: [TemplateStatement] = []
        if case .name("else") = endTag.kind {
            otherwise = try parseBody(until: ["endfor"], dropEndTag: true)
        }
        return .forLoop(
            ForLoop(
                target: target, iterable: iterable, filter: filter, body: body,
                otherwise: otherwise, location: location))
    }

    private mutating func parseIf() throws(ChatTemplateError) -> TemplateStatement {
        advance()
        var branches: [(test: TemplateExpression, body: [TemplateStatement])] = []
        var otherwise: [TemplateStatement] = []
        while true {
            let test = try parseTuple(withConditional: false)
            let body = try parseBody(until: ["elif", "else", "endif"])
            branches.append((test, body))
            let endTag = current
            advance()
            if case .name("elif") = endTag.kind { continue }
            if case .name("else") = endTag.kind {
                otherwise = try parseBody(until: ["endif"], dropEndTag: true)
            }
            return .conditional(branches: branches, otherwise: otherwise)
        }
    }

    private mutating func parseSet() throws(ChatTemplateError) -> TemplateStatement {
        let location = current.location
        advance()
        let target = try parseAssignmentTarget(allowNamespace: true)
        if skip(symbol: "=") {
            return .assignment(target, try parseTuple(), location)
        }
        let filters = try parseFilterCalls()
        let body = try parseBody(until: ["endset"], dropEndTag: true)
        return .blockAssignment(target, filters: filters, body: body, location)
    }

    /// A name, `a, b`, or with `allowNamespace` `ns.attribute`.
    private mutating func parseAssignmentTarget(
        allowNamespace: Bool = false, endNames: Set<String> = []
    ) throws(ChatTemplateError) -> AssignmentTarget {
        if allowNamespace, case .symbol(".") = peek.kind {
            let name = try expectName()
            advance()
            return .namespaceAttribute(name: name, attribute: try expectName())
        }

        let expression = try parseTuple(simplified: true, endNames: endNames)
        return try assignmentTarget(from: expression)
    }

    private func assignmentTarget(
        from expression: TemplateExpression
    ) throws(ChatTemplateError) -> AssignmentTarget {
        switch expression.kind {
        case .name(let name):
            return .name(name)
        case .tuple(let items):
            var targets: [AssignmentTarget] = []
            for item in items { targets.append(try assignmentTarget(from: item)) }
            return .tuple(targets)
        default:
            throw .syntax(
                "can't assign to this expression", line: expression.location.line,
                column: expression.location.column)
        }
    }

    // MARK: Expressions, loosest binding first

    /// A comma-separated list becomes a tuple; a single expression stays itself. `simplified`
    /// reads only primaries (assignment targets); without `withConditional` inline `if` is not an
    /// operator (as in `{% if %}` and `{% for %}` headers, where `if` means something else).
    private mutating func parseTuple(
        simplified: Bool = false, withConditional: Bool = true, endNames: Set<String> = [],
        explicitParentheses: Bool = false
    ) throws(ChatTemplateError) -> TemplateExpression {
        let location = current.location
        var items: [TemplateExpression] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expect(symbol: ",") }
            if isTupleEnd(endNames) { break }
            if simplified {
                items.append(try parsePrimary())
            } else {
                items.append(try parseExpression(withConditional: withConditional))
            }
            guard case .symbol(",") = current.kind else { break }
            isTuple = true
        }

        if !isTuple {
            if let only = items.first { return only }
            if !explicitParentheses {
                throw syntaxError("Expected an expression, got \(describe(current))")
            }
        }
        return TemplateExpression(kind: .tuple(items), location: location)
    }

    private func isTupleEnd(_ endNames: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .symbol(")"): true
        case .name(let name): endNames.contains(name)
        default: false
        }
    }

    private mutating func parseExpression(
        withConditional: Bool = true
    ) throws(ChatTemplateError) -> TemplateExpression {
        try descend()
        defer { nesting -= 1 }
        return withConditional ? try parseConditional() : try parseOr()
    }

    /// `a if b else c`; the `else` part is optional.
    private mutating func parseConditional() throws(ChatTemplateError) -> TemplateExpression {
        var expression = try parseOr()
        while isName("if") {
            let location = current.location
            advance()
            let test = try parseOr()
            try descend()
            defer { nesting -= 1 }
            let otherwise = skip(name: "else") ? try parseConditional() : nil
            expression = TemplateExpression(
                kind: .conditional(test: test, then: expression, otherwise: otherwise),
                location: location)
        }
        return expression
    }

    private mutating func parseOr() throws(ChatTemplateError) -> TemplateExpression {
        var left = try parseAnd()
        while isName("or") {
            let location = current.location
            advance()
            left = TemplateExpression(kind: .or(left, try parseAnd()), location: location)
        }
        return left
    }

    private mutating func parseAnd() throws(ChatTemplateError) -> TemplateExpression {
        var left = try parseNot()
        while isName("and") {
            let location = current.location
            advance()
            left = TemplateExpression(kind: .and(left, try parseNot()), location: location)
        }
        return left
    }

    private mutating func parseNot() throws(ChatTemplateError) -> TemplateExpression {
        guard isName("not") else { return try parseCompare() }
        let location = current.location
        advance()
        try descend()
        defer { nesting -= 1 }
        return TemplateExpression(kind: .not(try parseNot()), location: location)
    }

    private mutating func parseCompare() throws(ChatTemplateError) -> TemplateExpression {
        let left = try parseAdditive()
        var operations: [(ComparisonOperator, TemplateExpression)] = []
        var location = left.location
        while true {
            let operatorLocation = current.location
            let operation: ComparisonOperator
            if case .symbol(let symbol) = current.kind,
                let comparison = ComparisonOperator(rawValue: symbol), comparison != .contains
            {
                operation = comparison
                advance()
            } else if isName("in") {
                operation = .contains
                advance()
            } else if isName("not"), case .name("in") = peek.kind {
                operation = .notContains
                advance()
                advance()
            } else {
                break
            }
            if operations.isEmpty { location = operatorLocation }
            operations.append((operation, try parseAdditive()))
        }
        guard !operations.isEmpty else { return left }
        return TemplateExpression(kind: .compare(left, operations), location: location)
    }

    /// `+` and `-`.
    private mutating func parseAdditive() throws(ChatTemplateError) -> TemplateExpression {
        var left = try parseConcatenation()
        while case .symbol(let symbol) = current.kind, symbol == "+" || symbol == "-" {
            let location = current.location
            advance()
            let right = try parseConcatenation()
            let operation: BinaryOperator = symbol == "+" ? .add : .subtract
            left = TemplateExpression(kind: .binary(operation, left, right), location: location)
        }
        return left
    }

    /// `~` binds tighter than `+` and looser than `*`, as in jinja2.
    private mutating func parseConcatenation() throws(ChatTemplateError) -> TemplateExpression {
        let first = try parseMultiplicative()
        var operands = [first]
        var location = first.location
        while case .symbol("~") = current.kind {
            if operands.count == 1 { location = current.location }
            advance()
            operands.append(try parseMultiplicative())
        }
        guard operands.count > 1 else { return first }
        return TemplateExpression(kind: .concatenate(operands), location: location)
    }

    /// `*`, `/`, `//` and `%`.
    private mutating func parseMultiplicative() throws(ChatTemplateError) -> TemplateExpression {
        var left = try parsePower()
        while case .symbol(let symbol) = current.kind, ["*", "/", "//", "%"].contains(symbol),
            let operation = BinaryOperator(rawValue: symbol)
        {
            let location = current.location
            advance()
            let right = try parsePower()
            left = TemplateExpression(kind: .binary(operation, left, right), location: location)
        }
        return left
    }

    /// `**`, left-associative and looser than unary minus in jinja2: `-2 ** 2` is 4.
    private mutating func parsePower() throws(ChatTemplateError) -> TemplateExpression {
        var left = try parseUnary()
        while case .symbol("**") = current.kind {
            let location = current.location
            advance()
            let right = try parseUnary()
            left = TemplateExpression(kind: .binary(.power, left, right), location: location)
        }
        return left
    }

    /// Unary signs, then postfix operators, then filters and tests, which therefore apply to the
    /// signed value and bind tighter than any binary operator.
    private mutating func parseUnary(
        withFilters: Bool = true
    ) throws(ChatTemplateError) -> TemplateExpression {
        let location = current.location
        var expression: TemplateExpression
        if case .symbol("-") = current.kind {
            advance()
            try descend()
            defer { nesting -= 1 }
            expression = TemplateExpression(
                kind: .negate(try parseUnary(withFilters: false)), location: location)
        } else if case .symbol("+") = current.kind {
            advance()
            try descend()
            defer { nesting -= 1 }
            expression = TemplateExpression(
                kind: .plus(try parseUnary(withFilters: false)), location: location)
        } else {
            expression = try parsePrimary()
        }
        expression = try parsePostfix(expression)
        if withFilters { expression = try parseFiltersAndTests(expression) }
        return expression
    }

    private mutating func parsePrimary() throws(ChatTemplateError) -> TemplateExpression {
        let token = current
        let kind: TemplateExpression.Kind
        switch token.kind {
        case .name(let name):
            advance()
            switch name {
            case "true", "True": kind = .literal(.bool(true))
            case "false", "False": kind = .literal(.bool(false))
            case "none", "None": kind = .literal(.none)
            default: kind = .name(name)
            }
        case .string(var text):
            advance()
            // Adjacent literals join, as in Python.
            while case .string(let next) = current.kind {
                text += next
                advance()
            }
            kind = .literal(.string(text))
        case .integer(let value):
            advance()
            kind = .literal(.int(value))
        case .float(let value):
            advance()
            kind = .literal(.float(value))
        case .symbol("("):
            advance()
            let inner = try parseTuple(explicitParentheses: true)
            try expect(symbol: ")")
            return inner
        case .symbol("["):
            return try parseList()
        case .symbol("{"):
            return try parseDictionary()
        default:
            throw syntaxError("unexpected \(describe(token))")
        }
        return TemplateExpression(kind: kind, location: token.location)
    }

    private mutating func parseList() throws(ChatTemplateError) -> TemplateExpression {
        let location = current.location
        advance()
        var items: [TemplateExpression] = []
        while !isSymbol("]") {
            if !items.isEmpty { try expect(symbol: ",") }
            if isSymbol("]") { break }
            items.append(try parseExpression())
        }
        try expect(symbol: "]")
        return TemplateExpression(kind: .list(items), location: location)
    }

    private mutating func parseDictionary() throws(ChatTemplateError) -> TemplateExpression {
        let location = current.location
        advance()
        var entries: [(key: TemplateExpression, value: TemplateExpression)] = []
        while !isSymbol("}") {
            if !entries.isEmpty { try expect(symbol: ",") }
            if isSymbol("}") { break }
            let key = try parseExpression()
            try expect(symbol: ":")
            entries.append((key, try parseExpression()))
        }
        try expect(symbol: "}")
        return TemplateExpression(kind: .dictionary(entries), location: location)
    }

    /// Attribute access, subscripts and calls.
    private mutating func parsePostfix(
        _ base: TemplateExpression
    ) throws(ChatTemplateError) -> TemplateExpression {
        var expression = base
        while true {
            if isSymbol(".") || isSymbol("[") {
                expression = try parseSubscript(expression)
            } else if isSymbol("(") {
                expression = try parseCall(expression)
            } else {
                return expression
            }
        }
    }

    private mutating func parseFiltersAndTests(
        _ base: TemplateExpression
    ) throws(ChatTemplateError) -> TemplateExpression {
        var expression = base
        while true {
            if isSymbol("|") {
                for filter in try parseFilterCalls() {
                    expression = TemplateExpression(
                        kind: .filter(expression, filter), location: filter.location)
                }
            } else if isName("is") {
                expression = try parseTest(expression)
            } else if isSymbol("(") {
                expression = try parseCall(expression)
            } else {
                return expression
            }
        }
    }

    private mutating func parseSubscript(
        _ base: TemplateExpression
    ) throws(ChatTemplateError) -> TemplateExpression {
        let location = current.location
        if skip(symbol: ".") {
            let token = current
            advance()
            switch token.kind {
            case .name(let name):
                return TemplateExpression(kind: .attribute(base, name), location: location)
            case .integer(let value):
                let key = TemplateExpression(kind: .literal(.int(value)), location: token.location)
                return TemplateExpression(kind: .item(base, key), location: location)
            default:
                throw syntaxError("expected name or number", at: token.location)
            }
        }

        advance()
        var arguments: [Subscript] = []
        while !isSymbol("]") {
            if !arguments.isEmpty { try expect(symbol: ",") }
            arguments.append(try parseSubscribed())
        }
        try expect(symbol: "]")

        if arguments.count == 1, case .slice(let start, let stop, let step) = arguments[0] {
            return TemplateExpression(
                kind: .slice(base, start: start, stop: stop, step: step), location: location)
        }
        var keys: [TemplateExpression] = []
        for argument in arguments {
            guard case .expression(let key) = argument else {
                throw .unsupported("slice inside a tuple subscript at \(location)")
            }
            keys.append(key)
        }
        let key =
            keys.count == 1 ? keys[0] : TemplateExpression(kind: .tuple(keys), location: location)
        return TemplateExpression(kind: .item(base, key), location: location)
    }

    private enum Subscript {
        case expression(TemplateExpression)
        case slice(TemplateExpression?, TemplateExpression?, TemplateExpression?)
    }

    /// One subscript: an expression or `start:stop:step` with any part left out.
    private mutating func parseSubscribed() throws(ChatTemplateError) -> Subscript {
        var start: TemplateExpression? = nil
        if !skip(symbol: ":") {
            let expression = try parseExpression()
            guard skip(symbol: ":") else { return .expression(expression) }
            start = expression
        }

        var stop: TemplateExpression? = nil
        if !isSymbol(":") && !isSymbol("]") && !isSymbol(",") {
            stop = try parseExpression()
        }
        var step: TemplateExpression? = nil
        if skip(symbol: ":"), !isSymbol("]") && !isSymbol(",") {
            step = try parseExpression()
        }
        return .slice(start, stop, step)
    }

    private mutating func parseCall(
        _ callee: TemplateExpression
    ) throws(ChatTemplateError) -> TemplateExpression {
        let location = current.location
        let arguments = try parseCallArguments()
        return TemplateExpression(kind: .call(callee, arguments), location: location)
    }

    /// `(positional, ..., name=value, ...)`; keywords come last, a trailing comma is allowed.
    private mutating func parseCallArguments() throws(ChatTemplateError) -> CallArguments {
        let opening = current.location
        try expect(symbol: "(")
        var arguments = CallArguments()
        while !isSymbol(")") {
            if !arguments.positional.isEmpty || !arguments.keyword.isEmpty {
                try expect(symbol: ",")
                if isSymbol(")") { break }
            }
            if isSymbol("*") || isSymbol("**") {
                throw .unsupported("*args or **kwargs in a call at \(current.location)")
            }
            if case .name(let name) = current.kind, case .symbol("=") = peek.kind {
                advance()
                advance()
                arguments.keyword.append((name, try parseExpression()))
            } else {
                guard arguments.keyword.isEmpty else {
                    throw syntaxError("invalid syntax for function call expression", at: opening)
                }
                arguments.positional.append(try parseExpression())
            }
        }
        try expect(symbol: ")")
        return arguments
    }

    /// `| name`, `| name(arguments)`, repeated.
    private mutating func parseFilterCalls() throws(ChatTemplateError) -> [FilterCall] {
        var filters: [FilterCall] = []
        while skip(symbol: "|") {
            let location = current.location
            var name = try expectName()
            while skip(symbol: ".") { name += "." + (try expectName()) }
            guard TemplateFilters.supported.contains(name) else {
                throw .unsupported("filter '\(name)' at \(location)")
            }
            let arguments = isSymbol("(") ? try parseCallArguments() : CallArguments()
            filters.append(FilterCall(name: name, arguments: arguments, location: location))
        }
        return filters
    }

    /// `is name`, `is not name`, `is name(arguments)` or `is name argument`.
    private mutating func parseTest(
        _ base: TemplateExpression
    ) throws(ChatTemplateError) -> TemplateExpression {
        let location = current.location
        advance()
        let negated = skip(name: "not")
        let nameLocation = current.location
        var name = try expectName()
        while skip(symbol: ".") { name += "." + (try expectName()) }
        guard TemplateTests.supported.contains(name) else {
            throw .unsupported("test '\(name)' at \(nameLocation)")
        }

        var arguments = CallArguments()
        if isSymbol("(") {
            arguments = try parseCallArguments()
        } else if startsBareTestArgument() {
            if isName("is") { throw syntaxError("You cannot chain multiple tests with is") }
            arguments.positional = [try parsePostfix(try parsePrimary())]
        }
        return TemplateExpression(
            kind: .test(base, name: name, arguments: arguments, negated: negated),
            location: location)
    }

    /// jinja2 lets one argument follow a test without parentheses (`is divisibleby 3`) when the
    /// next token can start a primary and is not `else`, `or` or `and`.
    private func startsBareTestArgument() -> Bool {
        switch current.kind {
        case .name(let name): !["else", "or", "and"].contains(name)
        case .string, .integer, .float, .symbol("["), .symbol("{"): true
        default: false
        }
    }

    // MARK: Token stream

    /// Enters one more level of nesting; the caller leaves it with `nesting -= 1`.
    private mutating func descend() throws(ChatTemplateError) {
        nesting += 1
        guard nesting <= Self.maximumNesting else {
            throw .unsupported(
                "nesting deeper than \(Self.maximumNesting) levels at \(current.location)")
        }
    }

    private var current: TemplateToken { tokens[index] }

    private var peek: TemplateToken { tokens[min(index + 1, tokens.count - 1)] }

    private mutating func advance() {
        if index < tokens.count - 1 { index += 1 }
    }

    private func isSymbol(_ symbol: String) -> Bool {
        current.kind == .symbol(symbol)
    }

    private func isName(_ name: String) -> Bool {
        current.kind == .name(name)
    }

    private mutating func skip(symbol: String) -> Bool {
        guard isSymbol(symbol) else { return false }
        advance()
        return true
    }

    private mutating func skip(name: String) -> Bool {
        guard isName(name) else { return false }
        advance()
        return true
    }

    private mutating func expect(symbol: String) throws(ChatTemplateError) {
        guard skip(symbol: symbol) else {
            throw syntaxError("expected token '\(symbol)', got \(describe(current))")
        }
    }

    private mutating func expect(name: String) throws(ChatTemplateError) {
        guard skip(name: name) else {
            throw syntaxError("expected token '\(name)', got \(describe(current))")
        }
    }

    private mutating func expect(_ kind: TemplateToken.Kind) throws(ChatTemplateError) {
        guard current.kind == kind else {
            let wanted = kind == .blockEnd ? "end of statement block" : "end of print statement"
            throw syntaxError("expected token '\(wanted)', got \(describe(current))")
        }
        advance()
    }

    private mutating func expectName() throws(ChatTemplateError) -> String {
        guard case .name(let name) = current.kind else {
            throw syntaxError("expected token 'name', got \(describe(current))")
        }
        advance()
        return name
    }

    /// A token as jinja2's messages quote it: a name by its text, others by their kind.
    private func describe(_ token: TemplateToken) -> String {
        let text =
            switch token.kind {
            case .text: "template data"
            case .variableBegin: "begin of print statement"
            case .variableEnd: "end of print statement"
            case .blockBegin: "begin of statement block"
            case .blockEnd: "end of statement block"
            case .name(let name): name
            case .string: "string"
            case .integer: "integer"
            case .float: "float"
            case .symbol(let symbol): symbol
            case .endOfInput: "end of template"
            }
        return "'\(text)'"
    }

    private func syntaxError(_ message: String, at location: SourceLocation? = nil)
        -> ChatTemplateError
    {
        let place = location ?? current.location
        return .syntax(message, line: place.line, column: place.column)
    }
}
