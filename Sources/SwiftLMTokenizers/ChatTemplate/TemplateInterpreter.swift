/// The variables visible at one point of a render, and the scope they were set in.
///
/// jinja2 gives each iteration of a `for` body a fresh scope that reads through to the enclosing
/// one: a `set` inside the body is gone at the next iteration and after the loop, which is why
/// templates carry state out of loops in `namespace()` objects. A loop's `else` block and a
/// `{% set %}...{% endset %}` body get scopes of their own too; `if` blocks share their
/// enclosing scope.
final class TemplateScope {
    private var variables: [String: TemplateValue] = [:]
    private let parent: TemplateScope?

    init(parent: TemplateScope?) {
        self.parent = parent
    }

    func lookup(_ name: String) -> TemplateValue? {
        variables[name] ?? parent?.lookup(name)
    }

    /// Sets `name` in this scope, shadowing any outer variable of that name.
    func assign(_ value: TemplateValue, to name: String) {
        variables[name] = value
    }
}

/// Executes a parsed template.
struct TemplateInterpreter {
    /// How a statement list finished: normally, or at a `break` or `continue` that the innermost
    /// loop must act on.
    private enum Flow {
        case normal
        case breakLoop
        case continueLoop
    }

    func render(
        _ statements: [TemplateStatement], in scope: TemplateScope
    ) throws(ChatTemplateError) -> String {
        var output = ""
        _ = try execute(statements, in: scope, into: &output)
        return output
    }

    // MARK: Statements

    private func execute(
        _ statements: [TemplateStatement], in scope: TemplateScope, into output: inout String
    ) throws(ChatTemplateError) -> Flow {
        for statement in statements {
            let flow = try execute(statement, in: scope, into: &output)
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func execute(
        _ statement: TemplateStatement, in scope: TemplateScope, into output: inout String
    ) throws(ChatTemplateError) -> Flow {
        switch statement {
        case .text(let text):
            output += text
        case .output(let expression):
            let value = try evaluate(expression, in: scope)
            output += try at(expression.location) { () throws(ValueFailure) in
                try value.pythonString()
            }
        case .conditional(let branches, let otherwise):
            for branch in branches {
                if try evaluate(branch.test, in: scope).isTruthy {
                    return try execute(branch.body, in: scope, into: &output)
                }
            }
            return try execute(otherwise, in: scope, into: &output)
        case .forLoop(let loop):
            try executeLoop(loop, in: scope, into: &output)
        case .assignment(let target, let expression, let location):
            let value = try evaluate(expression, in: scope)
            try assign(value, to: target, in: scope, at: location)
        case .blockAssignment(let target, let filters, let body, let location):
            // The body gets its own scope, as in jinja2: a `set` inside it stays inside.
            var captured = ""
            _ = try execute(body, in: TemplateScope(parent: scope), into: &captured)
            var value = TemplateValue.string(captured)
            for filter in filters { value = try applyFilter(filter, to: value, in: scope) }
            try assign(value, to: target, in: scope, at: location)
        case .loopBreak:
            return .breakLoop
        case .loopContinue:
            return .continueLoop
        case .generation(let body):
            // Hugging Face compiles the block to a call, so its body has its own scope too.
            _ = try execute(body, in: TemplateScope(parent: scope), into: &output)
        }
        return .normal
    }

    private func executeLoop(
        _ loop: ForLoop, in scope: TemplateScope, into output: inout String
    ) throws(ChatTemplateError) {
        let iterable = try evaluate(loop.iterable, in: scope)
        var items = try at(loop.iterable.location) { () throws(ValueFailure) in
            try iterable.iterate()
        }

        // The `if` filter sees each item bound to the target, before `loop` exists, and the
        // items it rejects do not count in `loop.index` or `loop.length`.
        if let filter = loop.filter {
            var kept: [TemplateValue] = []
            for item in items {
                let filterScope = TemplateScope(parent: scope)
                try assign(item, to: loop.target, in: filterScope, at: loop.location)
                if try evaluate(filter, in: filterScope).isTruthy { kept.append(item) }
            }
            items = kept
        }

        guard !items.isEmpty else {
            _ = try execute(loop.otherwise, in: TemplateScope(parent: scope), into: &output)
            return
        }
        for (index, item) in items.enumerated() {
            let iterationScope = TemplateScope(parent: scope)
            try assign(item, to: loop.target, in: iterationScope, at: loop.location)
            iterationScope.assign(.loop(LoopState(index0: index, items: items)), to: "loop")
            if try execute(loop.body, in: iterationScope, into: &output) == .breakLoop { break }
        }
    }

    private func assign(
        _ value: TemplateValue, to target: AssignmentTarget, in scope: TemplateScope,
        at location: SourceLocation
    ) throws(ChatTemplateError) {
        switch target {
        case .name(let name):
            scope.assign(value, to: name)
        case .tuple(let targets):
            let items = try at(location) { () throws(ValueFailure) in try value.iterate() }
            guard items.count == targets.count else {
                let message =
                    items.count < targets.count
                    ? "not enough values to unpack (expected \(targets.count), got \(items.count))"
                    : "too many values to unpack (expected \(targets.count))"
                throw .runtime(message, line: location.line, column: location.column)
            }
            for (item, itemTarget) in zip(items, targets) {
                try assign(item, to: itemTarget, in: scope, at: location)
            }
        case .namespaceAttribute(let name, let attribute):
            guard case .namespace(let namespace)? = scope.lookup(name) else {
                throw .runtime(
                    "cannot assign attribute on non-namespace object", line: location.line,
                    column: location.column)
            }
            namespace.attributes.set(value, for: .string(attribute))
        }
    }

    // MARK: Expressions

    private func evaluate(
        _ expression: TemplateExpression, in scope: TemplateScope
    ) throws(ChatTemplateError) -> TemplateValue {
        let location = expression.location
        switch expression.kind {
        case .literal(let literal):
            return value(of: literal)
        case .name(let name):
            return scope.lookup(name)
                ?? .undefined(message: "\(PythonString.repr(name)) is undefined")
        case .list(let items):
            return .list(try evaluate(items, in: scope))
        case .tuple(let items):
            return .tuple(try evaluate(items, in: scope))
        case .dictionary(let entries):
            var dictionary = TemplateDictionary()
            for entry in entries {
                let key = try evaluate(entry.key, in: scope)
                let value = try evaluate(entry.value, in: scope)
                try at(entry.key.location) { () throws(ValueFailure) in try key.requireHashable() }
                dictionary.set(value, for: key)
            }
            return .dictionary(dictionary)
        case .attribute(let base, let name):
            let object = try evaluate(base, in: scope)
            return try at(location) { () throws(ValueFailure) in try object.attribute(name) }
        case .item(let base, let keyExpression):
            let object = try evaluate(base, in: scope)
            let key = try evaluate(keyExpression, in: scope)
            return try at(location) { () throws(ValueFailure) in try object.item(key) }
        case .slice(let base, let start, let stop, let step):
            let object = try evaluate(base, in: scope)
            let bounds = (
                try start.map { e throws(ChatTemplateError) in try evaluate(e, in: scope) },
                try stop.map { e throws(ChatTemplateError) in try evaluate(e, in: scope) },
                try step.map { e throws(ChatTemplateError) in try evaluate(e, in: scope) }
            )
            return try at(location) { () throws(ValueFailure) in
                try object.slice(start: bounds.0, stop: bounds.1, step: bounds.2)
            }
        case .negate(let operand), .plus(let operand):
            let value = try evaluate(operand, in: scope)
            let negate: Bool
            if case .negate = expression.kind { negate = true } else { negate = false }
            return try at(location) { () throws(ValueFailure) in try value.negated(negate) }
        case .not(let operand):
            return .bool(!(try evaluate(operand, in: scope).isTruthy))
        case .binary(let operation, let left, let right):
            let lhs = try evaluate(left, in: scope)
            let rhs = try evaluate(right, in: scope)
            return try at(location) { () throws(ValueFailure) in
                try TemplateValue.binary(operation, lhs, rhs)
            }
        case .concatenate(let operands):
            var text = ""
            for operand in operands {
                let value = try evaluate(operand, in: scope)
                text += try at(operand.location) { () throws(ValueFailure) in
                    try value.pythonString()
                }
            }
            return .string(text)
        case .and(let left, let right):
            let lhs = try evaluate(left, in: scope)
            return lhs.isTruthy ? try evaluate(right, in: scope) : lhs
        case .or(let left, let right):
            let lhs = try evaluate(left, in: scope)
            return lhs.isTruthy ? lhs : try evaluate(right, in: scope)
        case .compare(let first, let operations):
            return .bool(try compare(first, operations, at: location, in: scope))
        case .conditional(let test, let then, let otherwise):
            if try evaluate(test, in: scope).isTruthy { return try evaluate(then, in: scope) }
            guard let otherwise else {
                return .undefined(
                    message: "the inline if-expression on line \(location.line) evaluated to "
                        + "false and no else section was defined.")
            }
            return try evaluate(otherwise, in: scope)
        case .filter(let base, let filter):
            return try applyFilter(filter, to: try evaluate(base, in: scope), in: scope)
        case .test(let base, let name, let argumentExpressions, let negated):
            let value = try evaluate(base, in: scope)
            let arguments = try evaluate(argumentExpressions, in: scope)
            try at(location) { () throws(ValueFailure) in
                try arguments.requireNoKeywords(name)
            }
            let passed = try at(location) { () throws(ValueFailure) in
                try TemplateTests.apply(name, to: value, arguments.positional)
            }
            return .bool(passed != negated)
        case .call(let calleeExpression, let argumentExpressions):
            let callee = try evaluate(calleeExpression, in: scope)
            let arguments = try evaluate(argumentExpressions, in: scope)
            return try at(location) { () throws(ValueFailure) in try call(callee, arguments) }
        }
    }

    private func evaluate(
        _ expressions: [TemplateExpression], in scope: TemplateScope
    ) throws(ChatTemplateError) -> [TemplateValue] {
        var values: [TemplateValue] = []
        for expression in expressions { values.append(try evaluate(expression, in: scope)) }
        return values
    }

    private func evaluate(
        _ arguments: CallArguments, in scope: TemplateScope
    ) throws(ChatTemplateError) -> TemplateArguments {
        var result = TemplateArguments(positional: try evaluate(arguments.positional, in: scope))
        for (name, expression) in arguments.keyword {
            result.keyword.append((name, try evaluate(expression, in: scope)))
        }
        return result
    }

    private func value(of literal: Literal) -> TemplateValue {
        switch literal {
        case .none: .none
        case .bool(let flag): .bool(flag)
        case .int(let number): .int(number)
        case .float(let number): .float(number)
        case .string(let text): .string(text)
        }
    }

    /// A chained comparison: `a < b < c` is `a < b and b < c`, evaluating `b` once and stopping
    /// at the first false link.
    private func compare(
        _ first: TemplateExpression, _ operations: [(ComparisonOperator, TemplateExpression)],
        at location: SourceLocation, in scope: TemplateScope
    ) throws(ChatTemplateError) -> Bool {
        var left = try evaluate(first, in: scope)
        for (operation, rightExpression) in operations {
            let right = try evaluate(rightExpression, in: scope)
            let holds = try at(location) { () throws(ValueFailure) in
                try Self.comparison(operation, left, right)
            }
            guard holds else { return false }
            left = right
        }
        return true
    }

    private static func comparison(
        _ operation: ComparisonOperator, _ left: TemplateValue, _ right: TemplateValue
    ) throws(ValueFailure) -> Bool {
        switch operation {
        case .equal: return try left.pythonEquals(right)
        case .notEqual: return !(try left.pythonEquals(right))
        case .contains: return try right.contains(left)
        case .notContains: return !(try right.contains(left))
        case .less, .lessOrEqual, .greater, .greaterOrEqual:
            guard let order = try left.pythonCompare(right, operatorSymbol: operation.rawValue)
            else {
                return false
            }
            switch operation {
            case .less: return order == .less
            case .lessOrEqual: return order != .greater
            case .greater: return order == .greater
            default: return order != .less
            }
        }
    }

    private func applyFilter(
        _ filter: FilterCall, to value: TemplateValue, in scope: TemplateScope
    ) throws(ChatTemplateError) -> TemplateValue {
        let arguments = try evaluate(filter.arguments, in: scope)
        return try at(filter.location) { () throws(ValueFailure) in
            try TemplateFilters.apply(filter.name, to: value, arguments)
        }
    }

    private func call(
        _ callee: TemplateValue, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        switch callee {
        case .callable(let callable):
            return try TemplateMethods.call(callable, arguments)
        case .undefined(let message):
            throw .undefined(message)
        default:
            throw .type("'\(callee.typeName)' object is not callable")
        }
    }

    /// Runs a value operation, placing any failure at `location`.
    private func at<Result>(
        _ location: SourceLocation, _ operation: () throws(ValueFailure) -> Result
    ) throws(ChatTemplateError) -> Result {
        do {
            return try operation()
        } catch {
            throw error.located(at: location)
        }
    }
}
