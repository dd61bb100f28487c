/// Python's operators and protocols on template values: arithmetic, iteration, membership,
/// length, and jinja2's rules for `value.name` and `value[key]`.
extension TemplateValue {
    // MARK: Arithmetic

    /// A binary operator as Python applies it. An undefined operand raises, as jinja2's
    /// `Undefined` does for every arithmetic operator.
    static func binary(
        _ operation: BinaryOperator, _ lhs: TemplateValue, _ rhs: TemplateValue
    ) throws(ValueFailure) -> TemplateValue {
        if case .undefined(let message) = lhs { throw .undefined(message) }
        if case .undefined(let message) = rhs { throw .undefined(message) }

        switch operation {
        case .add: return try add(lhs, rhs)
        case .subtract: return try arithmetic(operation, lhs, rhs)
        case .multiply: return try multiply(lhs, rhs)
        case .divide: return try divide(lhs, rhs)
        case .floorDivide, .modulo:
            if case .string = lhs { throw .unsupported("printf-style '%' string formatting") }
            return try arithmetic(operation, lhs, rhs)
        case .power: return try power(lhs, rhs)
        }
    }

    private static func add(
        _ lhs: TemplateValue, _ rhs: TemplateValue
    ) throws(ValueFailure) -> TemplateValue {
        switch (lhs, rhs) {
        case (.string(let left), .string(let right)):
            return .string(left + right)
        case (.list(let left), .list(let right)):
            return .list(left + right)
        case (.tuple(let left), .tuple(let right)):
            return .tuple(left + right)
        case (.string, _), (.list, _), (.tuple, _):
            throw .type(
                "can only concatenate \(lhs.typeName) (not \"\(rhs.typeName)\") to \(lhs.typeName)")
        default:
            return try arithmetic(.add, lhs, rhs)
        }
    }

    private static func multiply(
        _ lhs: TemplateValue, _ rhs: TemplateValue
    ) throws(ValueFailure) -> TemplateValue {
        if let result = try repetition(of: lhs, count: rhs) { return result }
        if let result = try repetition(of: rhs, count: lhs) { return result }
        return try arithmetic(.multiply, lhs, rhs)
    }

    /// `sequence * count` when `sequence` is a string, list or tuple, else nil. A count below one
    /// gives an empty sequence.
    private static func repetition(
        of sequence: TemplateValue, count: TemplateValue
    ) throws(ValueFailure) -> TemplateValue? {
        switch sequence {
        case .string, .list, .tuple: break
        default: return nil
        }
        guard case .int(let times)? = numericValue(count) else {
            throw .type("can't multiply sequence by non-int of type '\(count.typeName)'")
        }

        let copies = max(times, 0)
        switch sequence {
        case .string(let text):
            try checkSize(PythonString.length(text), copies)
            return .string(text.isEmpty ? "" : String(repeating: text, count: copies))
        case .list(let items):
            try checkSize(items.count, copies)
            return .list(repeated(items, copies))
        case .tuple(let items):
            try checkSize(items.count, copies)
            return .tuple(repeated(items, copies))
        default:
            return nil
        }
    }

    private static func repeated(_ items: [TemplateValue], _ copies: Int) -> [TemplateValue] {
        guard !items.isEmpty else { return [] }
        var result: [TemplateValue] = []
        result.reserveCapacity(items.count * copies)
        for _ in 0..<copies { result += items }
        return result
    }

    /// Python would build any size; a template that asks for more than this is not a chat prompt.
    private static func checkSize(_ unit: Int, _ copies: Int) throws(ValueFailure) {
        let (total, overflow) = unit.multipliedReportingOverflow(by: copies)
        if overflow || total > 100_000_000 {
            throw .unsupported("repeating a sequence beyond 100 million items")
        }
    }

    /// True division: always a float, exact for integers up to 2^53 as Python's is.
    private static func divide(
        _ lhs: TemplateValue, _ rhs: TemplateValue
    ) throws(ValueFailure) -> TemplateValue {
        guard let left = numericValue(lhs), let right = numericValue(rhs) else {
            throw operandError("/", lhs, rhs)
        }
        if case .int(let a) = left, case .int(let b) = right {
            guard a.magnitude <= 1 << 53, b.magnitude <= 1 << 53 else {
                throw .unsupported("dividing integers beyond 2^53")
            }
            guard b != 0 else { throw .runtime("division by zero") }
            return .float(Double(a) / Double(b))
        }
        let (a, b) = (double(left), double(right))
        guard b != 0 else { throw .runtime("float division by zero") }
        return .float(a / b)
    }

    /// `+`, `-`, `*`, `//` and `%` on numbers: integers stay integers, anything with a float
    /// becomes a float. Python's integers do not overflow; past 64 bits this refuses.
    private static func arithmetic(
        _ operation: BinaryOperator, _ lhs: TemplateValue, _ rhs: TemplateValue
    ) throws(ValueFailure) -> TemplateValue {
        guard let left = numericValue(lhs), let right = numericValue(rhs) else {
            throw operandError(operation.rawValue, lhs, rhs)
        }
        if case .int(let a) = left, case .int(let b) = right {
            return .int(try integerArithmetic(operation, a, b))
        }
        return .float(try floatArithmetic(operation, double(left), double(right)))
    }

    private static func integerArithmetic(
        _ operation: BinaryOperator, _ a: Int, _ b: Int
    ) throws(ValueFailure) -> Int {
        let result: (partialValue: Int, overflow: Bool)
        switch operation {
        case .add: result = a.addingReportingOverflow(b)
        case .subtract: result = a.subtractingReportingOverflow(b)
        case .multiply: result = a.multipliedReportingOverflow(by: b)
        case .floorDivide, .modulo:
            guard b != 0 else {
                throw .runtime(
                    operation == .modulo
                        ? "integer modulo by zero" : "integer division or modulo by zero")
            }
            guard !(a == .min && b == -1) else {
                result = (0, true)
                break
            }
            // Python rounds the quotient down and gives the remainder the divisor's sign.
            var quotient = a / b
            var remainder = a % b
            if remainder != 0 && (remainder < 0) != (b < 0) {
                quotient -= 1
                remainder += b
            }
            result = (operation == .modulo ? remainder : quotient, false)
        default:
            preconditionFailure("not an integer operator: \(operation)")
        }
        guard !result.overflow else { throw .unsupported("integer arithmetic beyond 64 bits") }
        return result.partialValue
    }

    /// CPython's `float_rem` and `float_floor_div`, which are not plain `fmod` and `floor`.
    private static func floatArithmetic(
        _ operation: BinaryOperator, _ a: Double, _ b: Double
    ) throws(ValueFailure) -> Double {
        switch operation {
        case .add: return a + b
        case .subtract: return a - b
        case .multiply: return a * b
        case .modulo, .floorDivide:
            guard b != 0 else {
                throw .runtime(
                    operation == .modulo ? "float modulo" : "float floor division by zero")
            }
            var remainder = a.truncatingRemainder(dividingBy: b)
            var quotient = (a - remainder) / b
            if remainder != 0 {
                // The remainder takes the divisor's sign.
                if (b < 0) != (remainder < 0) {
                    remainder += b
                    quotient -= 1
                }
            } else {
                remainder = Double(signOf: b, magnitudeOf: 0)
            }
            if operation == .modulo { return remainder }

            // `quotient` is within rounding of a whole number; snap it to the nearest one.
            guard quotient != 0 else { return Double(signOf: a / b, magnitudeOf: 0) }
            var floored = floor(quotient)
            if quotient - floored > 0.5 { floored += 1 }
            return floored
        default:
            preconditionFailure("not a float operator: \(operation)")
        }
    }

    /// Integer powers with a non-negative exponent; Python's other cases go through C's `pow`,
    /// whose rounding this does not reproduce.
    private static func power(
        _ lhs: TemplateValue, _ rhs: TemplateValue
    ) throws(ValueFailure) -> TemplateValue {
        guard let base = numericValue(lhs), let exponent = numericValue(rhs) else {
            throw operandError("** or pow()", lhs, rhs)
        }
        guard case .int(var factor) = base, case .int(var remaining) = exponent, remaining >= 0
        else {
            throw .unsupported("'**' with a float operand or a negative exponent")
        }

        var result = 1
        while remaining > 0 {
            if remaining & 1 == 1 {
                let (product, overflow) = result.multipliedReportingOverflow(by: factor)
                guard !overflow else { throw .unsupported("integer arithmetic beyond 64 bits") }
                result = product
            }
            remaining >>= 1
            if remaining > 0 {
                let (square, overflow) = factor.multipliedReportingOverflow(by: factor)
                guard !overflow else { throw .unsupported("integer arithmetic beyond 64 bits") }
                factor = square
            }
        }
        return .int(result)
    }

    private static func double(_ number: Numeric) -> Double {
        switch number {
        case .int(let value): Double(value)
        case .float(let value): value
        }
    }

    private static func operandError(
        _ symbol: String, _ lhs: TemplateValue, _ rhs: TemplateValue
    ) -> ValueFailure {
        .type("unsupported operand type(s) for \(symbol): '\(lhs.typeName)' and '\(rhs.typeName)'")
    }

    /// Unary `-` and `+`.
    func negated(_ negate: Bool) throws(ValueFailure) -> TemplateValue {
        if case .undefined(let message) = self { throw .undefined(message) }
        switch Self.numericValue(self) {
        case .int(let value)?:
            guard negate else { return .int(value) }
            guard value != .min else { throw .unsupported("integer arithmetic beyond 64 bits") }
            return .int(-value)
        case .float(let value)?:
            return .float(negate ? -value : value)
        case nil:
            throw .type("bad operand type for unary \(negate ? "-" : "+"): '\(typeName)'")
        }
    }

    // MARK: Sequences

    /// Python's `iter(value)`, drained. jinja2's `Undefined` iterates as empty.
    func iterate() throws(ValueFailure) -> [TemplateValue] {
        switch self {
        case .undefined: return []
        case .string(let text): return text.unicodeScalars.map { .string(String($0)) }
        case .list(let items), .tuple(let items): return items
        case .dictionary(let dictionary): return dictionary.keys
        case .view(let view): return view.items
        case .generator(let generator): return try generator.drain()
        default: throw .type("'\(typeName)' object is not iterable")
        }
    }

    /// Python's `len(value)`.
    func length() throws(ValueFailure) -> Int {
        switch self {
        case .undefined: 0
        case .string(let text): PythonString.length(text)
        case .list(let items), .tuple(let items): items.count
        case .dictionary(let dictionary): dictionary.count
        case .view(let view): view.items.count
        case .loop(let loop): loop.length
        default: throw .type("object of type '\(typeName)' has no len()")
        }
    }

    /// Python's `needle in self`.
    func contains(_ needle: TemplateValue) throws(ValueFailure) -> Bool {
        switch self {
        case .undefined:
            return false
        case .string(let text):
            guard case .string(let part) = needle else {
                throw .type("'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return PythonString.contains(text, part)
        case .list(let items), .tuple(let items):
            return try Self.anyEqual(needle, in: items)
        case .dictionary(let dictionary):
            try needle.requireHashable()
            return dictionary.value(for: needle) != nil
        case .view(let view):
            return try Self.anyEqual(needle, in: view.items)
        case .generator(let generator):
            // Like Python, consumes items up to and including the match.
            while let item = try generator.next() {
                if try item.pythonEquals(needle) { return true }
            }
            return false
        default:
            throw .type("argument of type '\(typeName)' is not iterable")
        }
    }

    private static func anyEqual(
        _ needle: TemplateValue, in items: [TemplateValue]
    ) throws(ValueFailure) -> Bool {
        for item in items where try item.pythonEquals(needle) { return true }
        return false
    }

    // MARK: Attributes and items

    /// jinja2's `getattr`, for `value.name`: the Python attribute if there is one, else the item
    /// of that name, else undefined.
    func attribute(_ name: String) throws(ValueFailure) -> TemplateValue {
        if case .undefined(let message) = self { throw .undefined(message) }
        if let value = try pythonAttribute(name) { return value }
        if case .dictionary(let dictionary) = self, let value = dictionary.value(for: name) {
            return value
        }
        return missingAttribute(name)
    }

    /// jinja2's `getitem`, for `value[key]`: the Python item if there is one, else for a string
    /// key the attribute of that name, else undefined. Out-of-range indexes are undefined too.
    func item(_ key: TemplateValue) throws(ValueFailure) -> TemplateValue {
        if case .undefined(let message) = self { throw .undefined(message) }
        if let value = try pythonItem(key) { return value }
        if case .string(let name) = key {
            return try pythonAttribute(name) ?? missingAttribute(name)
        }
        return .undefined(message: "\(objectDescription) has no element \(try key.pythonRepr())")
    }

    private func missingAttribute(_ name: String) -> TemplateValue {
        let object = PythonString.repr(objectDescription)
        return .undefined(message: "\(object) has no attribute \(PythonString.repr(name))")
    }

    /// `self[key]` as Python evaluates it, or nil where Python raises a `LookupError` or
    /// `TypeError`, which jinja2 catches.
    private func pythonItem(_ key: TemplateValue) throws(ValueFailure) -> TemplateValue? {
        switch self {
        case .dictionary(let dictionary):
            guard (try? key.requireHashable()) != nil else { return nil }
            return dictionary.value(for: key)
        case .list(let items), .tuple(let items):
            return Self.index(key, count: items.count).map { items[$0] }
        case .string(let text):
            let scalars = Array(text.unicodeScalars)
            return Self.index(key, count: scalars.count).map { .string(String(scalars[$0])) }
        case .view(let view):
            guard case .range = view.kind else { return nil }
            return Self.index(key, count: view.items.count).map { view.items[$0] }
        default:
            return nil
        }
    }

    /// A Python index (`bool` counts as an integer, negatives count from the end), or nil when
    /// the key is not an integer or out of range.
    private static func index(_ key: TemplateValue, count: Int) -> Int? {
        let position: Int
        switch key {
        case .int(let value): position = value
        case .bool(let value): position = value ? 1 : 0
        default: return nil
        }
        let resolved = position < 0 ? position + count : position
        return (0..<count).contains(resolved) ? resolved : nil
    }

    /// `value[start:stop:step]`. jinja2 compiles slices to a plain Python subscript, so unlike
    /// `value[key]` a failure raises instead of giving an undefined value.
    func slice(
        start: TemplateValue?, stop: TemplateValue?, step: TemplateValue?
    ) throws(ValueFailure) -> TemplateValue {
        if case .undefined(let message) = self { throw .undefined(message) }
        func bound(_ value: TemplateValue?) throws(ValueFailure) -> Int? {
            switch value {
            case nil, .none?: return nil
            case .int(let number)?: return number
            case .bool(let flag)?: return flag ? 1 : 0
            default:
                throw .type("slice indices must be integers or None or have an __index__ method")
            }
        }

        let stride = try bound(step) ?? 1
        guard stride != 0 else { throw .runtime("slice step cannot be zero") }
        let (first, last) = (try bound(start), try bound(stop))
        func indices(_ count: Int) -> [Int] {
            PythonString.sliceIndices(count: count, start: first, stop: last, step: stride)
        }

        switch self {
        case .list(let items): return .list(indices(items.count).map { items[$0] })
        case .tuple(let items): return .tuple(indices(items.count).map { items[$0] })
        case .string(let text):
            let scalars = Array(text.unicodeScalars)
            return .string(String(scalars: indices(scalars.count).map { scalars[$0] }))
        case .view(let view):
            guard case .range = view.kind else {
                throw .type("'\(typeName)' object is not subscriptable")
            }
            throw .unsupported("slicing a range")
        case .dictionary:
            throw .type("unhashable type: 'slice'")
        default:
            throw .type("'\(typeName)' object is not subscriptable")
        }
    }

    /// The attribute Python's `getattr` finds, or nil where it raises `AttributeError`. Methods
    /// this interpreter implements come back bound; real Python attributes it does not implement
    /// are refused rather than reported missing.
    private func pythonAttribute(_ name: String) throws(ValueFailure) -> TemplateValue? {
        switch self {
        case .namespace(let namespace):
            return namespace.attributes.value(for: name)
        case .loop(let loop):
            return try loop.attribute(name)
        case .string, .dictionary, .list, .tuple, .bool, .int, .float:
            if TemplateMethods.implements(self, name) { return .callable(.method(self, name)) }
            if TemplateMethods.pythonAttributes(of: self).contains(name) {
                throw .unsupported("attribute '\(typeName).\(name)'")
            }
            return nil
        default:
            return nil
        }
    }
}

extension LoopState {
    /// The attributes of jinja2's `LoopContext` for a non-recursive loop.
    func attribute(_ name: String) throws(ValueFailure) -> TemplateValue? {
        switch name {
        case "index": .int(index0 + 1)
        case "index0": .int(index0)
        case "revindex": .int(length - index0)
        case "revindex0": .int(length - index0 - 1)
        case "first": .bool(index0 == 0)
        case "last": .bool(index0 == length - 1)
        case "length": .int(length)
        case "depth": .int(1)
        case "depth0": .int(0)
        case "previtem":
            index0 > 0 ? items[index0 - 1] : .undefined(message: "there is no previous item")
        case "nextitem":
            index0 + 1 < length ? items[index0 + 1] : .undefined(message: "there is no next item")
        case "cycle": .callable(.loopCycle(self))
        case "changed": throw .unsupported("loop.changed")
        default: nil
        }
    }
}
