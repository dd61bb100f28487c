/// The parsed form of a template: statements and expressions, each node with its place in the
/// source so that runtime errors can point at it. The shapes follow jinja2's `nodes` module.

/// A statement: text, an output tag, or a block tag with its body.
indirect enum TemplateStatement: Sendable {
    case text(String)
    /// `{{ expression }}` or `{% print expression %}`.
    case output(TemplateExpression)
    /// `{% if %}` with its `{% elif %}` branches; the first true test's body runs.
    case conditional(
        branches: [(test: TemplateExpression, body: [TemplateStatement])],
        otherwise: [TemplateStatement])
    case forLoop(ForLoop)
    /// `{% set target = value %}`.
    case assignment(AssignmentTarget, TemplateExpression, SourceLocation)
    /// `{% set target %}body{% endset %}`, optionally filtered: `{% set target | trim %}`.
    case blockAssignment(
        AssignmentTarget, filters: [FilterCall], body: [TemplateStatement],
        SourceLocation)
    /// `{% break %}` and `{% continue %}`, from jinja2's loop-controls extension, which Hugging
    /// Face enables.
    case loopBreak
    case loopContinue
    /// Hugging Face's `{% generation %}` block, which renders its body unchanged.
    case generation([TemplateStatement])
}

/// `{% for target in iterable if filter %}body{% else %}otherwise{% endfor %}`.
struct ForLoop: Sendable {
    var target: AssignmentTarget
    var iterable: TemplateExpression
    /// Items for which this is false are skipped and do not count in `loop.index` or
    /// `loop.length`.
    var filter: TemplateExpression?
    var body: [TemplateStatement]
    /// Runs when no item was iterated.
    var otherwise: [TemplateStatement]
    var location: SourceLocation
}

/// What `set` and `for` assign to.
indirect enum AssignmentTarget: Sendable {
    case name(String)
    /// `a, b`: unpacks an iterable of exactly that many items.
    case tuple([AssignmentTarget])
    /// `ns.attribute`: sets an attribute of a `namespace()` object, which is how templates carry
    /// a value out of a loop body.
    case namespaceAttribute(name: String, attribute: String)
}

/// An expression and where it starts.
struct TemplateExpression: Sendable {
    indirect enum Kind: Sendable {
        case literal(Literal)
        case name(String)
        case list([TemplateExpression])
        case tuple([TemplateExpression])
        case dictionary([(key: TemplateExpression, value: TemplateExpression)])
        /// `value.name`: an attribute first, then an item (jinja2's `getattr`).
        case attribute(TemplateExpression, String)
        /// `value[key]`: an item first, then an attribute (jinja2's `getitem`).
        case item(TemplateExpression, TemplateExpression)
        /// `value[start:stop:step]`.
        case slice(
            TemplateExpression, start: TemplateExpression?, stop: TemplateExpression?,
            step: TemplateExpression?)
        case negate(TemplateExpression)
        case plus(TemplateExpression)
        case not(TemplateExpression)
        case binary(BinaryOperator, TemplateExpression, TemplateExpression)
        /// `a ~ b ~ c`: the operands' string forms, joined.
        case concatenate([TemplateExpression])
        case and(TemplateExpression, TemplateExpression)
        case or(TemplateExpression, TemplateExpression)
        /// `a < b <= c`, chained as in Python.
        case compare(TemplateExpression, [(ComparisonOperator, TemplateExpression)])
        /// `then if test else otherwise`; without `else` a false test gives an undefined value.
        case conditional(
            test: TemplateExpression, then: TemplateExpression, otherwise: TemplateExpression?)
        case filter(TemplateExpression, FilterCall)
        /// `value is name(arguments)`, or `is not`.
        case test(TemplateExpression, name: String, arguments: CallArguments, negated: Bool)
        case call(TemplateExpression, CallArguments)
    }

    var kind: Kind
    var location: SourceLocation
}

enum Literal: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
}

enum BinaryOperator: String, Sendable {
    case add = "+"
    case subtract = "-"
    case multiply = "*"
    case divide = "/"
    case floorDivide = "//"
    case modulo = "%"
    case power = "**"
}

enum ComparisonOperator: String, Sendable {
    case equal = "=="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case contains = "in"
    case notContains = "not in"
}

struct CallArguments: Sendable {
    var positional: [TemplateExpression] = []
    var keyword: [(name: String, value: TemplateExpression)] = []
}

/// `| name(arguments)`.
struct FilterCall: Sendable {
    var name: String
    var arguments: CallArguments
    var location: SourceLocation
}
