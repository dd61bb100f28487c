/// jinja2's built-in filters that chat templates use, with Hugging Face's `tojson`.
///
/// Each follows the function of the same name in jinja2's `filters.py` (3.1), including what it
/// does with an undefined value. A filter outside `supported` is rejected when the template is
/// parsed, as jinja2 rejects an unknown filter at compile time.
enum TemplateFilters {
    static let supported: Set<String> = [
        "abs", "capitalize", "count", "d", "default", "first", "items", "join", "last", "length",
        "list", "lower", "map", "reject", "rejectattr", "replace", "reverse", "select",
        "selectattr", "string", "title", "tojson", "trim", "upper",
    ]

    static func apply(
        _ name: String, to value: TemplateValue, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        switch name {
        case "abs":
            _ = try arguments.bind(name, [])
            return try absolute(value)
        case "capitalize", "lower", "upper", "title", "string":
            _ = try arguments.bind(name, [])
            return .string(try transformText(name, try value.pythonString()))
        case "count", "length":
            _ = try arguments.bind(name, [])
            return .int(try value.length())
        case "d", "default":
            let bound = try arguments.bind(
                name, [("default_value", .string("")), ("boolean", .bool(false))])
            let useDefault = value.isUndefined || (bound[1].isTruthy && !value.isTruthy)
            return useDefault ? bound[0] : value
        case "first":
            _ = try arguments.bind(name, [])
            return try first(value)
        case "last":
            _ = try arguments.bind(name, [])
            return try last(value)
        case "items":
            _ = try arguments.bind(name, [])
            return items(value)
        case "join":
            return try join(value, arguments)
        case "list":
            _ = try arguments.bind(name, [])
            return .list(try value.iterate())
        case "map":
            return .generator(
                TemplateGenerator(deferred: { () throws(ValueFailure) in try map(value, arguments) }
                ))
        case "select", "reject", "selectattr", "rejectattr":
            return .generator(
                TemplateGenerator(deferred: { () throws(ValueFailure) in
                    try select(name, value, arguments)
                }))
        case "replace":
            return try replace(value, arguments)
        case "reverse":
            _ = try arguments.bind(name, [])
            return try reverse(value)
        case "tojson":
            return try toJSON(value, arguments)
        case "trim":
            let characters = try arguments.bind(name, [("chars", TemplateValue.none)])[0]
            let set: String?
            switch characters {
            case .none: set = nil
            case .string(let text): set = text
            default: throw .type("strip arg must be None or str")
            }
            return .string(PythonString.strip(try value.pythonString(), characters: set))
        default:
            throw .unsupported("filter '\(name)'")
        }
    }

    /// The string filters, which all convert their input with `str()` first.
    private static func transformText(_ name: String, _ text: String) throws(ValueFailure) -> String
    {
        switch name {
        case "capitalize": PythonString.capitalized(text)
        case "lower": PythonString.lowercased(text)
        case "upper": PythonString.uppercased(text)
        case "title": PythonString.jinjaTitle(text)
        default: text
        }
    }

    private static func absolute(_ value: TemplateValue) throws(ValueFailure) -> TemplateValue {
        switch TemplateValue.numericValue(value) {
        case .int(let number)?:
            guard number != .min else { throw .unsupported("integer arithmetic beyond 64 bits") }
            return .int(abs(number))
        case .float(let number)?:
            return .float(abs(number))
        case nil:
            if case .undefined(let message) = value { throw .undefined(message) }
            throw .type("bad operand type for abs(): '\(value.typeName)'")
        }
    }

    /// `next(iter(value))`, or an undefined value when empty.
    private static func first(_ value: TemplateValue) throws(ValueFailure) -> TemplateValue {
        let empty = TemplateValue.undefined(message: "No first item, sequence was empty.")
        if case .generator(let generator) = value { return try generator.next() ?? empty }
        return try value.iterate().first ?? empty
    }

    /// `next(iter(reversed(value)))`, or an undefined value when empty. Generators are not
    /// reversible.
    private static func last(_ value: TemplateValue) throws(ValueFailure) -> TemplateValue {
        switch value {
        case .undefined, .string, .list, .tuple, .dictionary, .view:
            return try value.iterate().last
                ?? .undefined(message: "No last item, sequence was empty.")
        default:
            throw .type("'\(value.typeName)' object is not reversible")
        }
    }

    /// A deferred generator of `(key, value)` tuples.
    private static func items(_ value: TemplateValue) -> TemplateValue {
        .generator(
            TemplateGenerator(deferred: { () throws(ValueFailure) in
                switch value {
                case .undefined:
                    return []
                case .dictionary(let dictionary):
                    return dictionary.entries.map { .tuple([$0, $1]) }
                default:
                    throw .runtime("Can only get item pairs from a mapping.")
                }
            }))
    }

    private static func join(
        _ value: TemplateValue, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        let bound = try arguments.bind(
            "join", [("d", .string("")), ("attribute", TemplateValue.none)])
        var items = try value.iterate()
        if case .none = bound[1] {
        } else {
            let getter = try attributeGetter(bound[1], default: nil)
            var mapped: [TemplateValue] = []
            for item in items { mapped.append(try getter(item)) }
            items = mapped
        }

        var pieces: [String] = []
        for item in items { pieces.append(try item.pythonString()) }
        return .string(pieces.joined(separator: try bound[0].pythonString()))
    }

    private static func replace(
        _ value: TemplateValue, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        let bound = try arguments.bind(
            "replace", [("old", nil), ("new", nil), ("count", TemplateValue.none)])
        var count = -1
        switch bound[2] {
        case .none: break
        case .int(let number): count = number
        default:
            throw .type("'\(bound[2].typeName)' object cannot be interpreted as an integer")
        }
        return .string(
            PythonString.replace(
                try value.pythonString(), old: try bound[0].pythonString(),
                new: try bound[1].pythonString(), count: count))
    }

    /// A string comes back reversed; other sequences as a reversed iterator (a generator here),
    /// except a generator, which becomes a reversed list.
    private static func reverse(_ value: TemplateValue) throws(ValueFailure) -> TemplateValue {
        switch value {
        case .string(let text):
            return .string(String(scalars: text.unicodeScalars.reversed()))
        case .generator(let generator):
            return .list(try generator.drain().reversed())
        case .undefined, .list, .tuple, .dictionary, .view:
            return .generator(TemplateGenerator(try value.iterate().reversed()))
        default:
            throw .type("argument must be iterable")
        }
    }

    // MARK: Higher-order filters

    /// The items of `map(attribute='name', default=...)` or `map('filter', arguments...)`.
    private static func map(
        _ value: TemplateValue, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> [TemplateValue] {
        guard value.isTruthy else { return [] }

        let transform: (TemplateValue) throws(ValueFailure) -> TemplateValue
        if arguments.positional.isEmpty,
            let attribute = arguments.keyword.first(where: { $0.name == "attribute" })?.value
        {
            let rest = arguments.keyword.filter { $0.name != "attribute" }
            let defaultValue = rest.first(where: { $0.name == "default" })?.value
            if let unexpected = rest.first(where: { $0.name != "default" }) {
                throw .runtime("Unexpected keyword argument '\(unexpected.name)'")
            }
            transform = try attributeGetter(attribute, default: defaultValue)
        } else {
            guard case .string(let filter)? = arguments.positional.first else {
                throw .runtime("map requires a filter argument")
            }
            guard supported.contains(filter) else { throw .unsupported("filter '\(filter)'") }
            var forwarded = arguments
            forwarded.positional.removeFirst()
            transform = { item throws(ValueFailure) in try apply(filter, to: item, forwarded) }
        }

        var results: [TemplateValue] = []
        for item in try value.iterate() { results.append(try transform(item)) }
        return results
    }

    /// The items `select`, `reject`, `selectattr` and `rejectattr` keep: those whose value (or
    /// attribute) passes the named test, or is true when no test is named.
    private static func select(
        _ name: String, _ value: TemplateValue, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> [TemplateValue] {
        guard value.isTruthy else { return [] }
        let keep = name.hasPrefix("select")
        var rest = arguments.positional

        var getter: (TemplateValue) throws(ValueFailure) -> TemplateValue = { $0 }
        if name.hasSuffix("attr") {
            guard !rest.isEmpty else { throw .runtime("Missing parameter for attribute name") }
            getter = try attributeGetter(rest.removeFirst(), default: nil)
        }

        var test: String? = nil
        if !rest.isEmpty {
            guard case .string(let testName) = rest.removeFirst() else {
                throw .type("test name must be a string")
            }
            guard TemplateTests.supported.contains(testName) else {
                throw .unsupported("test '\(testName)'")
            }
            test = testName
        }
        try arguments.requireNoKeywords(name)

        var kept: [TemplateValue] = []
        for item in try value.iterate() {
            let subject = try getter(item)
            let passes: Bool
            if let test {
                passes = try TemplateTests.apply(test, to: subject, rest)
            } else {
                passes = subject.isTruthy
            }
            if passes == keep { kept.append(item) }
        }
        return kept
    }

    /// jinja2's `make_attrgetter`: a dotted path of item lookups, digits meaning indexes.
    private static func attributeGetter(
        _ attribute: TemplateValue, default defaultValue: TemplateValue?
    ) throws(ValueFailure) -> (TemplateValue) throws(ValueFailure) -> TemplateValue {
        let parts: [TemplateValue]
        if case .string(let path) = attribute {
            parts = path.split(separator: ".", omittingEmptySubsequences: false).map { part in
                if !part.isEmpty, part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber),
                    let index = Int(part)
                {
                    return .int(index)
                }
                return .string(String(part))
            }
        } else {
            parts = [attribute]
        }

        return { item throws(ValueFailure) in
            var current = item
            for part in parts {
                current = try current.item(part)
                if let defaultValue, current.isUndefined { current = defaultValue }
            }
            return current
        }
    }

    // MARK: JSON

    /// Hugging Face's `tojson`, which replaces jinja2's: `json.dumps` with `ensure_ascii=False`
    /// by default and no HTML escaping.
    private static func toJSON(
        _ value: TemplateValue, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        let bound = try arguments.bind(
            "tojson",
            [
                ("ensure_ascii", .bool(false)), ("indent", TemplateValue.none),
                ("separators", TemplateValue.none),
                ("sort_keys", .bool(false)),
            ])

        var options = PythonJSON.Options(
            ensureASCII: bound[0].isTruthy, sortKeys: bound[3].isTruthy)
        switch bound[1] {
        case .none: break
        case .int(let width):
            guard width <= 1000 else { throw .unsupported("tojson indent wider than 1000") }
            options.indent = String(repeating: " ", count: max(width, 0))
        case .string(let text): options.indent = text
        default: throw .type("indent must be an int or a string")
        }
        if options.indent != nil { options.itemSeparator = "," }
        switch bound[2] {
        case .none: break
        case .list(let pair), .tuple(let pair):
            guard pair.count == 2, case .string(let item) = pair[0], case .string(let key) = pair[1]
            else { throw .type("separators must be a pair of strings") }
            options.itemSeparator = item
            options.keySeparator = key
        default:
            throw .type("separators must be a pair of strings")
        }
        return .string(try PythonJSON.dumps(value, options: options))
    }
}

/// jinja2's built-in tests (`value is name`), from its `tests.py`.
enum TemplateTests {
    static let supported: Set<String> = [
        "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number",
        "string", "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby",
        "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan",
        ">", "ge", ">=", "in",
    ]

    static func apply(
        _ name: String, to value: TemplateValue, _ arguments: [TemplateValue]
    ) throws(ValueFailure) -> Bool {
        let binaryTests: Set<String> = [
            "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=",
            "gt", "greaterthan", ">", "ge", ">=", "in",
        ]
        let expected = binaryTests.contains(name) ? 1 : 0
        guard arguments.count == expected else {
            throw .type(
                "test '\(name)' takes \(expected + 1) positional arguments but "
                    + "\(arguments.count + 1) were given")
        }

        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .float = value { return true } else { return false }
        case "number": return TemplateValue.numericValue(value) != nil
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .dictionary = value { return true } else { return false }
        case "iterable": return isIterable(value)
        case "sequence": return isSequence(value)
        case "callable": return isCallable(value)
        case "odd", "even":
            let remainder = try TemplateValue.binary(.modulo, value, .int(2))
            return try remainder.pythonEquals(.int(name == "odd" ? 1 : 0))
        case "divisibleby":
            return try TemplateValue.binary(.modulo, value, arguments[0]).pythonEquals(.int(0))
        case "eq", "equalto", "==":
            return try value.pythonEquals(arguments[0])
        case "ne", "!=":
            return !(try value.pythonEquals(arguments[0]))
        case "in":
            return try arguments[0].contains(value)
        default:
            return try compare(name, value, arguments[0])
        }
    }

    private static func compare(
        _ name: String, _ value: TemplateValue, _ other: TemplateValue
    ) throws(ValueFailure) -> Bool {
        let symbol: String
        switch name {
        case "lt", "lessthan", "<": symbol = "<"
        case "le", "<=": symbol = "<="
        case "gt", "greaterthan", ">": symbol = ">"
        default: symbol = ">="
        }
        guard let order = try value.pythonCompare(other, operatorSymbol: symbol) else {
            return false
        }
        switch symbol {
        case "<": return order == .less
        case "<=": return order != .greater
        case ">": return order == .greater
        default: return order != .less
        }
    }

    /// Whether Python's `iter(value)` succeeds.
    private static func isIterable(_ value: TemplateValue) -> Bool {
        switch value {
        case .undefined, .string, .list, .tuple, .dictionary, .view, .generator, .loop: true
        default: false
        }
    }

    /// jinja2's `sequence` test: the value has both `len()` and `__getitem__`.
    private static func isSequence(_ value: TemplateValue) -> Bool {
        switch value {
        case .undefined, .string, .list, .tuple, .dictionary: true
        case .view(let view):
            if case .range = view.kind { true } else { false }
        default: false
        }
    }

    /// Python's `callable()`: jinja2's `Undefined` and `LoopContext` define `__call__`.
    private static func isCallable(_ value: TemplateValue) -> Bool {
        switch value {
        case .callable, .undefined, .loop: true
        default: false
        }
    }
}
