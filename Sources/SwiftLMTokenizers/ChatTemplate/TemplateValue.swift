/// A runtime value, modelled on the Python object jinja2 would hold in its place.
///
/// Rendering must equal jinja2's, so each case keeps the Python type's behaviour that templates can
/// observe: how it prints, compares, iterates and tests as true. Python objects whose printed form
/// holds a memory address (generators, methods) refuse to print instead of printing something else.
indirect enum TemplateValue {
    /// jinja2's default `Undefined`: prints as nothing, is false, iterates as empty, and raises
    /// `message` when used in arithmetic, attribute access or a call.
    case undefined(message: String)
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([TemplateValue])
    case tuple([TemplateValue])
    case dictionary(TemplateDictionary)
    case namespace(TemplateNamespace)
    case loop(LoopState)
    /// What `select`, `map`, `items` and friends return in jinja2: a one-shot iterator.
    case generator(TemplateGenerator)
    /// `range(...)` and dictionary views, which print differently from lists.
    case view(SequenceView)
    case callable(TemplateCallable)
}

/// A Python `dict`: insertion-ordered, keys compared with Python's `==` (so `1`, `1.0` and `True`
/// are one key).
struct TemplateDictionary {
    private(set) var keys: [TemplateValue] = []
    private(set) var values: [TemplateValue] = []

    init() {}

    init(_ entries: [(String, TemplateValue)]) {
        for (key, value) in entries {
            keys.append(.string(key))
            values.append(value)
        }
    }

    var count: Int { keys.count }

    var entries: Zip2Sequence<[TemplateValue], [TemplateValue]> { zip(keys, values) }

    /// The value stored under `key`, or nil. The key must be hashable; see `requireHashable`.
    func value(for key: TemplateValue) -> TemplateValue? {
        index(of: key).map { values[$0] }
    }

    func value(for key: String) -> TemplateValue? {
        value(for: .string(key))
    }

    /// Python keeps the first key object and replaces the value.
    mutating func set(_ value: TemplateValue, for key: TemplateValue) {
        if let existing = index(of: key) {
            values[existing] = value
        } else {
            keys.append(key)
            values.append(value)
        }
    }

    private func index(of key: TemplateValue) -> Int? {
        keys.firstIndex { (try? $0.pythonEquals(key)) == true }
    }
}

/// jinja2's `Namespace`: the one mutable object templates can assign attributes to. A reference
/// type, so an assignment inside a loop body is seen after the loop.
final class TemplateNamespace {
    var attributes = TemplateDictionary()
}

/// The `loop` variable of one iteration.
struct LoopState {
    var index0: Int
    var items: [TemplateValue]

    var length: Int { items.count }
}

/// A Python generator: iterating it consumes it, so a second loop over the same value sees
/// nothing, as in jinja2. It is always true, has no length and cannot be indexed.
///
/// jinja2's `map`, `select` and `items` are generator functions whose bodies run only when first
/// iterated, so their errors surface then, not where the filter is applied. A deferred generator
/// reproduces that by producing its items on first use. (Python then produces them one at a
/// time; here the first use produces all of them.)
final class TemplateGenerator {
    private var items: [TemplateValue]
    private var position = 0
    private var produce: (() throws(ValueFailure) -> [TemplateValue])?

    init(_ items: [TemplateValue]) {
        self.items = items
    }

    init(deferred produce: @escaping () throws(ValueFailure) -> [TemplateValue]) {
        self.items = []
        self.produce = produce
    }

    /// The items not consumed yet; consumes them all.
    func drain() throws(ValueFailure) -> [TemplateValue] {
        try materialize()
        defer { position = items.count }
        return Array(items[position...])
    }

    /// The next item, consumed, or nil when exhausted.
    func next() throws(ValueFailure) -> TemplateValue? {
        try materialize()
        guard position < items.count else { return nil }
        defer { position += 1 }
        return items[position]
    }

    private func materialize() throws(ValueFailure) {
        guard let produce else { return }
        // A Python generator that raised is exhausted afterwards.
        self.produce = nil
        items = try produce()
    }
}

/// Python sequences that iterate like a list but print as their own type.
struct SequenceView {
    enum Kind {
        case range(start: Int, stop: Int, step: Int)
        case dictionaryKeys
        case dictionaryValues
        case dictionaryItems
    }

    var kind: Kind
    var items: [TemplateValue]

    var typeName: String {
        switch kind {
        case .range: "range"
        case .dictionaryKeys: "dict_keys"
        case .dictionaryValues: "dict_values"
        case .dictionaryItems: "dict_items"
        }
    }
}

/// Something a template can call.
enum TemplateCallable {
    /// A global function: `raise_exception`, `range`, `namespace`, `dict`, and the globals that
    /// exist in Hugging Face's environment but are refused here (`strftime_now`, `cycler`, ...).
    case global(String)
    /// A method bound to its receiver, such as `'a b'.split`.
    case method(TemplateValue, String)
    /// `loop.cycle`, bound to the iteration it was read in.
    case loopCycle(LoopState)
}

// MARK: Python protocol

extension TemplateValue {
    /// Python's `type(value).__name__`, for error messages.
    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .list: "list"
        case .tuple: "tuple"
        case .dictionary: "dict"
        case .namespace: "Namespace"
        case .loop: "LoopContext"
        case .generator: "generator"
        case .view(let view): view.typeName
        case .callable: "builtin_function_or_method"
        }
    }

    /// jinja2's `object_type_repr`, as its undefined-value messages write an object.
    var objectDescription: String {
        switch self {
        case .none: "None"
        case .namespace: "jinja2.utils.Namespace object"
        case .loop: "jinja2.runtime.LoopContext object"
        default: "\(typeName) object"
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// Python's `bool(value)`.
    var isTruthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let value): value
        case .int(let value): value != 0
        case .float(let value): value != 0
        case .string(let text): !text.isEmpty
        case .list(let items), .tuple(let items): !items.isEmpty
        case .dictionary(let dictionary): dictionary.count > 0
        case .view(let view): !view.items.isEmpty
        case .loop(let loop): loop.length > 0
        case .namespace, .generator, .callable: true
        }
    }

    /// `str(value)`, which is what `{{ value }}` prints.
    func pythonString() throws(ValueFailure) -> String {
        switch self {
        case .undefined: ""
        case .string(let text): text
        default: try pythonRepr()
        }
    }

    /// `repr(value)`, which is how values print inside lists and dictionaries.
    func pythonRepr() throws(ValueFailure) -> String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let value): return value ? "True" : "False"
        case .int(let value): return String(value)
        case .float(let value): return PythonString.formatFloat(value)
        case .string(let text): return PythonString.repr(text)
        case .list(let items): return "[\(try Self.reprList(items))]"
        case .tuple(let items):
            return items.count == 1
                ? "(\(try items[0].pythonRepr()),)" : "(\(try Self.reprList(items)))"
        case .dictionary(let dictionary): return try Self.reprDictionary(dictionary)
        case .namespace(let namespace):
            return "<Namespace \(try Self.reprDictionary(namespace.attributes))>"
        case .loop(let loop): return "<LoopContext \(loop.index0 + 1)/\(loop.length)>"
        case .view(let view):
            switch view.kind {
            case .range(let start, let stop, let step):
                return step == 1 ? "range(\(start), \(stop))" : "range(\(start), \(stop), \(step))"
            default:
                return "\(view.typeName)([\(try Self.reprList(view.items))])"
            }
        case .generator, .callable:
            // Python prints these with a memory address; nothing else would be the same output.
            throw .unsupported("printing a \(typeName) object")
        }
    }

    private static func reprList(_ items: [TemplateValue]) throws(ValueFailure) -> String {
        var parts: [String] = []
        for item in items { parts.append(try item.pythonRepr()) }
        return parts.joined(separator: ", ")
    }

    private static func reprDictionary(
        _ dictionary: TemplateDictionary
    ) throws(ValueFailure) -> String {
        var parts: [String] = []
        for (key, value) in dictionary.entries {
            parts.append("\(try key.pythonRepr()): \(try value.pythonRepr())")
        }
        return "{\(parts.joined(separator: ", "))}"
    }

    /// Python's `==`. Numbers compare across `bool`, `int` and `float`; a list never equals a
    /// tuple; jinja2's `Undefined` equals only another `Undefined`.
    func pythonEquals(_ other: TemplateValue) throws(ValueFailure) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none):
            return true
        case (.string(let lhs), .string(let rhs)):
            return PythonString.equal(lhs, rhs)
        case (.list(let lhs), .list(let rhs)), (.tuple(let lhs), .tuple(let rhs)):
            return try Self.sequencesEqual(lhs, rhs)
        case (.dictionary(let lhs), .dictionary(let rhs)):
            guard lhs.count == rhs.count else { return false }
            for (key, value) in lhs.entries {
                guard let match = rhs.value(for: key), try value.pythonEquals(match) else {
                    return false
                }
            }
            return true
        case (.namespace(let lhs), .namespace(let rhs)):
            return lhs === rhs
        case (.generator(let lhs), .generator(let rhs)):
            return lhs === rhs
        case (.view(let lhs), .view(let rhs)):
            guard case .range = lhs.kind, case .range = rhs.kind else {
                throw .unsupported("comparing dictionary views")
            }
            return try Self.sequencesEqual(lhs.items, rhs.items)
        default:
            if let order = Self.compareNumbers(self, other) { return order == .equal }
            return false
        }
    }

    private static func sequencesEqual(
        _ lhs: [TemplateValue], _ rhs: [TemplateValue]
    ) throws(ValueFailure) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (left, right) in zip(lhs, rhs) where !(try left.pythonEquals(right)) {
            return false
        }
        return true
    }

    enum Order {
        case less, equal, greater
    }

    /// Python's ordering for `<`, `<=`, `>`, `>=`: numbers, strings by code point, and lists or
    /// tuples lexicographically. Anything else is a `TypeError`, and an undefined operand raises.
    func pythonCompare(
        _ other: TemplateValue, operatorSymbol: String
    ) throws(ValueFailure) -> Order? {
        if case .undefined(let message) = self { throw .undefined(message) }
        if case .undefined(let message) = other { throw .undefined(message) }
        switch (self, other) {
        case (.string(let lhs), .string(let rhs)):
            if PythonString.equal(lhs, rhs) { return .equal }
            return PythonString.less(lhs, rhs) ? .less : .greater
        case (.list(let lhs), .list(let rhs)), (.tuple(let lhs), .tuple(let rhs)):
            for (left, right) in zip(lhs, rhs) where !(try left.pythonEquals(right)) {
                return try left.pythonCompare(right, operatorSymbol: operatorSymbol)
            }
            return lhs.count == rhs.count ? .equal : lhs.count < rhs.count ? .less : .greater
        default:
            if let order = Self.compareNumbers(self, other) { return order }
            // Two numbers without an order involve a NaN, for which every comparison is false.
            if Self.numericValue(self) != nil && Self.numericValue(other) != nil { return nil }
            throw .type(
                "'\(operatorSymbol)' not supported between instances of '\(typeName)' and "
                    + "'\(other.typeName)'")
        }
    }

    /// A number as Python sees it: `bool` is an `int`.
    enum Numeric {
        case int(Int)
        case float(Double)
    }

    static func numericValue(_ value: TemplateValue) -> Numeric? {
        switch value {
        case .bool(let flag): .int(flag ? 1 : 0)
        case .int(let number): .int(number)
        case .float(let number): .float(number)
        default: nil
        }
    }

    /// Exact comparison of two numbers, as Python compares `int` with `float` without rounding
    /// the integer; nil when either is not a number or a NaN is involved.
    static func compareNumbers(_ lhs: TemplateValue, _ rhs: TemplateValue) -> Order? {
        guard let left = numericValue(lhs), let right = numericValue(rhs) else { return nil }
        switch (left, right) {
        case (.int(let a), .int(let b)):
            return a == b ? .equal : a < b ? .less : .greater
        case (.float(let a), .float(let b)):
            if a.isNaN || b.isNaN { return nil }
            return a == b ? .equal : a < b ? .less : .greater
        case (.int(let a), .float(let b)):
            return compare(integer: a, double: b)
        case (.float(let a), .int(let b)):
            return compare(integer: b, double: a).map {
                switch $0 {
                case .less: .greater
                case .greater: .less
                case .equal: .equal
                }
            }
        }
    }

    private static func compare(integer: Int, double: Double) -> Order? {
        if double.isNaN { return nil }
        if double == .infinity { return .less }
        if double == -.infinity { return .greater }
        // Compare the integer with the float's floor exactly, then the fractional part.
        let floor = Self.floor(double)
        guard floor >= -0x1p63, floor < 0x1p63 else { return floor > 0 ? .less : .greater }
        let wholePart = Int(floor)
        if integer != wholePart { return integer < wholePart ? .less : .greater }
        return double == floor ? .equal : .less
    }

    /// The largest whole number not above `value`, without libm: this module links no C math
    /// library, and `Double.rounded` calls into it on Linux.
    static func floor(_ value: Double) -> Double {
        // From 2^52 up every double is whole; below, truncation through `Int` is exact.
        guard value.isFinite, value.magnitude < 0x1p52 else { return value }
        let truncated = Double(Int(value))
        return truncated > value ? truncated - 1 : truncated
    }

    /// Raises Python's `TypeError` for values that cannot be dictionary keys.
    func requireHashable() throws(ValueFailure) {
        switch self {
        case .list, .dictionary:
            throw .type("unhashable type: '\(typeName)'")
        case .view(let view):
            guard case .range = view.kind else { throw .type("unhashable type: '\(typeName)'") }
        case .tuple(let items):
            for item in items { try item.requireHashable() }
        default:
            break
        }
    }
}
